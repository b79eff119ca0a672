"""The test app (``tests/clients/app.py``) on a real uvicorn, driven over stdin/stdout by
the JavaScript client's tests (``clients/js/test/``), which cannot start a Python server
themselves.

``python -m tests.clients.serve '{"max_connections": 1}'`` (settings as JSON) binds
127.0.0.1 on a port the kernel picks (``LiveServer``), prints ``{"port": N}`` once
serving, then obeys one command a line, each answered by one JSON line:

- ``stop``: stop serving (the lifespan drains the hub); ``{"stopped": true}``
- ``start``: serve again on the same port, with a new app; ``{"port": N}``
- ``restart``: both; ``{"port": N}``

At the end of its input it stops and exits.
"""

from __future__ import annotations

import json
import sys
from typing import Any

from bocadillo import LiveServer
from tests.clients.app import create_app

__all__ = ["main"]


def main(argv: list[str]) -> None:
    settings: dict[str, Any] = json.loads(argv[1]) if len(argv) > 1 else {}
    server: LiveServer | None = LiveServer(create_app(**settings))
    assert server is not None
    server.start()
    port = server.port

    def say(value: Any) -> None:
        sys.stdout.write(json.dumps(value) + "\n")
        sys.stdout.flush()

    say({"port": port})
    try:
        for line in sys.stdin:
            command = line.strip()
            if command in ("stop", "restart") and server is not None:
                server.stop()
                server = None
            if command in ("start", "restart") and server is None:
                server = LiveServer(create_app(**settings), port=port)
                server.start()
            if command == "stop":
                say({"stopped": True})
            elif command in ("start", "restart"):
                say({"port": port})
            else:
                say({"error": f"unknown command {command!r}"})
    finally:
        if server is not None:
            server.stop()


if __name__ == "__main__":
    main(sys.argv)
