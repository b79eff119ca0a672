"""Serve one benchmark target with uvicorn, on a listening socket made by ``run.py``.

This is what ``uvicorn bench.apps.<target>:app --loop uvloop --http httptools
--ws websockets-sansio --workers 1 --no-access-log --log-level warning`` does (the CLI
builds the same ``Config`` and calls ``Server.run``), except that the socket comes
pre-bound from the parent (``--fd``), so there is no race for a free port, and that the
fan-out scenario can set ``SO_SNDBUF`` on it (accepted sockets inherit it): a fixed,
modest kernel send buffer per connection, the same for every target, so that a stalled
client's buffers fill after a few hundred KiB rather than the 4 MiB the kernel would
otherwise grant each socket. Keepalive pings are off for every target, so that stalled
clients stay connected for the length of a run.
"""

from __future__ import annotations

import argparse
import resource
import socket

import uvicorn

WS_IMPLEMENTATION = "websockets-sansio"  # uvicorn 0.54's default ("auto"), named for all


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.serve")
    parser.add_argument("app", help="import string, e.g. bench.apps.raw:app")
    parser.add_argument("--fd", type=int, required=True, help="a bound, listening socket")
    parser.add_argument("--sndbuf", type=int, default=0, help="SO_SNDBUF; 0 keeps the default")
    args = parser.parse_args(argv)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    sock = socket.socket(fileno=args.fd)  # family and type are read from the descriptor
    if args.sndbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, args.sndbuf)
    config = uvicorn.Config(
        args.app,
        loop="uvloop",
        http="httptools",
        ws=WS_IMPLEMENTATION,
        ws_ping_interval=None,
        ws_ping_timeout=None,
        lifespan="on",
        workers=1,
        access_log=False,
        log_level="warning",
    )
    uvicorn.Server(config).run(sockets=[sock])


if __name__ == "__main__":
    main()
