"""``bocadillo run module:app`` and ``bocadillo dev module:app``: serve an app with its limits.

A bare ``uvicorn module:app`` enforces uvicorn's own limits, not the app's: 16 MiB
WebSocket messages, permessage-deflate on, headers of any size (httptools), no cap on
connections, proxy headers trusted from 127.0.0.1. This command imports the app, reads
its settings and starts uvicorn with limits derived from them (``uvicorn_options`` says
which, ``docs/deployment.md`` says why):

- ``ws_max_size``: twice ``max_message_size``. A message up to twice the limit is read and
  refused by the app, so a ``/ws`` client gets the ``message_too_large`` error envelope
  before the 1009 close; anything larger is refused by the server from the frame header
  (1009), before its payload is read.
- ``ws_per_message_deflate``: the app's ``ws_per_message_deflate`` setting (off).
- ``ws``: uvicorn's WebSocket protocol with write backpressure (``bocadillo.serving``): a
  client that sends pings and never reads the pongs stops being read, and one client's
  burst of frames is parsed a slice per turn of the event loop.
- ``http``: uvicorn's h11 protocol (``bocadillo.serving``) with
  ``h11_max_incomplete_event_size`` = ``max_header_size``: httptools buffers a request head
  of any size; h11 answers 400 past the bound. A connection sending in bulk (a body
  streaming in) is read once per turn of the event loop.
- ``limit_concurrency``: the ``limit_concurrency`` setting; ``"auto"`` is the process's
  open-file limit minus a margin, so the server answers 503 before it runs out of file
  descriptors.
- ``timeout_graceful_shutdown``: the hub's ``shutdown_timeout`` plus one second.
- Proxy headers (``X-Forwarded-For``/``-Proto``) are trusted only with
  ``--forwarded-allow-ips`` (or ``--proxy-headers``, which trusts 127.0.0.1).

``bocadillo dev`` is ``run`` with ``--reload``, for development.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import socket
import sys
from collections.abc import Mapping, Sequence
from typing import Any

import uvicorn
from uvicorn.importer import ImportFromStringError, import_from_string
from uvicorn.supervisors import ChangeReload, Multiprocess

from .errors import ConfigurationError
from .serving import http_protocol, websocket_protocol

__all__ = ["build_parser", "load_app", "main", "uvicorn_options"]

#: File descriptors kept free under ``limit_concurrency="auto"``: listening sockets,
#: log files, a Redis connection, files the app opens.
FD_MARGIN = 64


def _concurrency(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() in ("none", "off", ""):
        value = None  # as given in BOCADILLO_LIMIT_CONCURRENCY
    if value is None:
        return None
    if value == "auto":
        soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft == resource.RLIM_INFINITY:
            return None
        return max(1, int(soft) - FD_MARGIN)
    if isinstance(value, bool) or not isinstance(value, int) and not str(value).isdigit():
        raise ConfigurationError(
            f"limit_concurrency={value!r}: use a number of connections, 'auto' or None"
        )
    return int(value)


def uvicorn_options(settings: Mapping[str, Any]) -> dict[str, Any]:
    """The ``uvicorn.Config`` options that enforce an app's settings.

    Args:
        settings: The app's settings (``app.settings``).

    Returns:
        Keyword arguments for ``uvicorn.Config``: ``ws``, ``ws_max_size``,
        ``ws_per_message_deflate``, ``http``, ``h11_max_incomplete_event_size``,
        ``limit_concurrency`` and ``timeout_graceful_shutdown``.

    Raises:
        ConfigurationError: for a ``limit_concurrency`` that is not a number, ``"auto"``
            or ``None``.
    """
    max_message = settings.get("max_message_size")
    options: dict[str, Any] = {
        # uvicorn's own default (16 MiB) when the app sets no message limit.
        "ws_max_size": 2 * int(max_message) if max_message else 16 * 1024 * 1024,
        "ws_per_message_deflate": bool(settings.get("ws_per_message_deflate", False)),
        "ws": websocket_protocol(),
        "http": http_protocol(),
        "h11_max_incomplete_event_size": int(settings.get("max_header_size") or 32 * 1024),
        "limit_concurrency": _concurrency(settings.get("limit_concurrency", "auto")),
    }
    shutdown = settings.get("shutdown_timeout")
    options["timeout_graceful_shutdown"] = (
        math.ceil(float(shutdown)) + 1 if shutdown is not None else None
    )
    return options


def load_app(target: str, app_dir: str = ".") -> Any:
    """Import ``module:attribute`` (``app_dir`` first on ``sys.path``) and return it.

    Raises:
        ConfigurationError: if it cannot be imported, or is not a Bocadillo app.
    """
    path = os.path.abspath(app_dir)
    if path not in sys.path:
        sys.path.insert(0, path)
    try:
        app = import_from_string(target)
    except ImportFromStringError as exc:
        raise ConfigurationError(f"cannot load {target!r}: {exc}") from None
    if not isinstance(getattr(app, "settings", None), Mapping):
        raise ConfigurationError(
            f"{target!r} is {app!r}, not a Bocadillo App: serve other ASGI apps with uvicorn"
        )
    return app


def build_parser() -> argparse.ArgumentParser:
    """The ``bocadillo`` command line: ``run`` and ``dev``."""
    parser = argparse.ArgumentParser(
        prog="bocadillo", description="Serve a Bocadillo app with uvicorn, with the app's limits."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    for name, summary in (
        ("run", "serve in production (no reload)"),
        ("dev", "serve for development: reload on code changes"),
    ):
        command = commands.add_parser(name, help=summary, description=summary)
        command.add_argument("app", help="the app to serve, as module:attribute (app:app)")
        command.add_argument("--host", default="127.0.0.1", help="address to bind (127.0.0.1)")
        command.add_argument("--port", type=int, default=8000, help="port to bind (8000)")
        command.add_argument("--uds", help="bind a Unix domain socket instead")
        command.add_argument(
            "--fd", type=int, help="serve on this already bound, listening socket descriptor"
        )
        command.add_argument(
            "--workers", type=int, default=None, help="worker processes (run only; default 1)"
        )
        command.add_argument(
            "--reload",
            action="store_true",
            default=name == "dev",
            help="restart on code changes (the default of dev)",
        )
        command.add_argument(
            "--proxy-headers",
            action="store_true",
            help="trust X-Forwarded-For/-Proto from 127.0.0.1 (or --forwarded-allow-ips)",
        )
        command.add_argument(
            "--forwarded-allow-ips",
            help="comma-separated proxy addresses whose X-Forwarded-* headers are trusted",
        )
        command.add_argument(
            "--http",
            choices=["h11", "httptools"],
            default=None,
            help="HTTP parser (h11: bounded request heads; httptools: faster, unbounded)",
        )
        command.add_argument("--root-path", default="", help="ASGI root_path behind a proxy")
        command.add_argument("--log-level", default=None, help="uvicorn's log level (info)")
        command.add_argument(
            "--app-dir", default=".", help="look for the app's module here first (.)"
        )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``bocadillo`` command; the process exit status.

    Raises:
        SystemExit: on bad arguments (status 2, as ``argparse`` does), or an app that
            cannot be loaded or configured (status 1).
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.reload and args.workers and args.workers > 1:
        parser.error("--reload and --workers cannot be combined")
    try:
        app = load_app(args.app, args.app_dir)
        options = uvicorn_options(app.settings)
    except ConfigurationError as exc:
        parser.exit(1, f"bocadillo: {exc}\n")
    if args.http == "httptools":  # "h11" is the default: Bocadillo's h11 protocol
        options["http"] = args.http
    trusted = args.forwarded_allow_ips
    config = uvicorn.Config(
        args.app if (args.reload or (args.workers or 1) > 1) else app,
        host=args.host,
        port=args.port,
        uds=args.uds,
        workers=args.workers,
        reload=args.reload,
        reload_dirs=[os.path.abspath(args.app_dir)] if args.reload else None,
        proxy_headers=bool(args.proxy_headers or trusted),
        forwarded_allow_ips=trusted,
        root_path=args.root_path,
        log_level=args.log_level,
        **options,
    )
    server = uvicorn.Server(config)
    # A descriptor handed over is used as it is (socket() detects its family), rather
    # than through uvicorn's fromfd(AF_UNIX), which hides a TCP peer's address.
    sock = socket.socket(fileno=args.fd) if args.fd is not None else None
    if config.should_reload:
        ChangeReload(config, target=server.run, sockets=[sock or config.bind_socket()]).run()
    elif config.workers > 1:
        Multiprocess(config, sockets=[sock or config.bind_socket()]).run()
    else:
        server.run(sockets=[sock] if sock is not None else None)
        if not server.started:
            return 3
    return 0


if __name__ == "__main__":  # python -m bocadillo.cli
    sys.exit(main())
