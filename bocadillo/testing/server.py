"""``LiveServer``: run an app on a real uvicorn, on a free 127.0.0.1 port, in a thread."""

from __future__ import annotations

import socket
import threading
from types import TracebackType
from typing import Any

import uvicorn

from ..errors import InvalidState
from ..types import ASGIApp

__all__ = ["BaseURL", "LiveServer"]


class BaseURL(str):
    """A base URL that can be called with a path to make a full URL."""

    __slots__ = ()

    def __call__(self, path: str = "") -> str:
        """This URL followed by ``path`` (a leading ``/`` is added if missing)."""
        if path and not path.startswith("/"):
            path = "/" + path
        return str(self) + path


class _Server(uvicorn.Server):
    """A uvicorn server that reports when its startup is over (successful or not)."""

    def __init__(self, config: uvicorn.Config, ready: threading.Event) -> None:
        super().__init__(config)
        self._ready = ready

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        finally:
            self._ready.set()


class LiveServer:
    """Serve ``app`` with uvicorn on ``127.0.0.1`` and a free port until the block ends.

    The socket is bound (port 0) before uvicorn starts, and ``start()`` returns once
    uvicorn reports that startup (lifespan included) is complete, so no port can be taken
    by someone else and no sleep is needed.

    Args:
        app: The ASGI application.
        host: The loopback address to bind (``127.0.0.1`` or ``::1``).
        port: The port to bind; ``0`` (the default) picks a free one. Give the ``port``
            of a stopped server to restart the app on the same address (clients that
            reconnect find it there).
        timeout: Seconds to wait for startup and for shutdown.
        socket_options: ``(level, option, value)`` for ``setsockopt`` on the listening
            socket (accepted connections inherit most of them, e.g. ``SO_SNDBUF``).
        **config: More ``uvicorn.Config`` options (``ws="wsproto"``, ``log_level``...).

    Example::

        with LiveServer(app) as server:
            httpx.get(server.url + "/")
    """

    def __init__(
        self,
        app: ASGIApp,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        timeout: float = 10.0,
        socket_options: list[tuple[int, int, int]] | None = None,
        **config: Any,
    ) -> None:
        self.app = app
        self.socket_options = list(socket_options or [])
        self.host = host
        self.timeout = timeout
        config.setdefault("log_level", "warning")
        config.setdefault("lifespan", "on")
        self._config = config
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None
        self.port = port
        self._requested_port = port

    @property
    def url(self) -> BaseURL:
        """The server's base HTTP URL, e.g. ``http://127.0.0.1:54321``.

        It is a ``str``; call it to join a path, as in Bocadillo 0.18:
        ``server.url("/items")`` is ``server.url + "/items"``.
        """
        host = f"[{self.host}]" if ":" in self.host else self.host
        return BaseURL(f"http://{host}:{self.port}")

    @property
    def ws_url(self) -> BaseURL:
        """The server's base WebSocket URL, e.g. ``ws://127.0.0.1:54321`` (callable too)."""
        return BaseURL("ws" + self.url[len("http") :])

    def start(self) -> None:
        """Start serving; return when uvicorn is ready.

        Raises:
            InvalidState: if the server is already running, or did not start in time
                (for example because a startup handler failed).
        """
        if self._thread is not None:
            raise InvalidState("LiveServer is already running")
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        for level, option, value in self.socket_options:
            sock.setsockopt(level, option, value)
        sock.bind((self.host, self._requested_port))
        sock.listen(2048)
        self._socket = sock
        self.port = sock.getsockname()[1]
        ready = threading.Event()
        config = uvicorn.Config(self.app, **self._config)
        self._server = _Server(config, ready)
        self._thread = threading.Thread(
            target=self._serve, name=f"LiveServer:{self.port}", daemon=True
        )
        self._thread.start()
        if not ready.wait(self.timeout) or not self._server.started:
            self.stop()
            raise InvalidState("uvicorn did not start (see its log for the reason)")

    def _serve(self) -> None:
        assert self._server is not None and self._socket is not None
        try:
            self._server.run(sockets=[self._socket])
        except SystemExit:
            pass  # uvicorn exits after a failed startup: start() raises InvalidState
        finally:
            self._server._ready.set()

    def stop(self) -> None:
        """Ask uvicorn to shut down (lifespan shutdown included) and wait for it."""
        server, thread = self._server, self._thread
        if server is not None:
            server.should_exit = True
        if thread is not None:
            thread.join(self.timeout)
            if thread.is_alive() and server is not None:
                server.force_exit = True
                thread.join(self.timeout)
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> LiveServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
