"""Real ``nats-server`` processes with JetStream for the tests, on loopback ports.

A missing ``nats-server`` fails the tests that need it (``.ci/run`` installs the Debian
package): the NATS backend is never tested against a mock.

The port is held as ``tests/redis_server.py`` holds Redis's (see its docstring): a socket
bound with ``SO_REUSEADDR`` on a port the kernel chose, never listening, kept from creation
to ``close()``. ``nats-server`` (Go listeners set ``SO_REUSEADDR``) can bind it and listen,
nobody else can take it, and a restart gets the same port back.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import uuid
from pathlib import Path

from tests.redis_server import ReservedServer

__all__ = ["NatsServer"]


class NatsServer(ReservedServer):
    """One ``nats-server -js`` on 127.0.0.1; restartable on its port.

    The port is chosen (and reserved) at creation: ``url`` is known before ``start()``.
    ``close()`` stops the server and gives the port back.

    Args:
        workdir: Its working directory (its log is ``nats.log``, its JetStream store
            ``jetstream/``, there).
    """

    def __init__(self, workdir: Path) -> None:
        executable = shutil.which("nats-server") or shutil.which("/usr/sbin/nats-server")
        if executable is None:
            raise RuntimeError(
                "nats-server is not installed (Debian package 'nats-server'; .ci/run "
                "installs it): the NATS tests need a real server"
            )
        super().__init__(executable, workdir)
        #: The server's name, to tell it from any other process on the port.
        self.name = f"bocadillo-test-{uuid.uuid4().hex[:12]}"

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.workdir / "nats.log"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server on its port and wait until it answers."""
        assert self.process is None, "already running"
        assert self._reservation is not None, "closed"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                self.executable,
                "-a",
                "127.0.0.1",
                "-p",
                str(self.port),
                "-n",
                self.name,
                "-js",
                "-sd",
                str(self.workdir / "jetstream"),
                "-l",
                str(self.log_path),
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                log = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
                raise RuntimeError(f"nats-server exited at start:\n{log}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"nats-server did not answer on port {self.port}")

    def ping(self) -> bool:
        """Whether this server (not another process) answers on its port."""
        return self.process is not None and _server_name(self.port) == self.name


def _server_name(port: int) -> str | None:
    """The ``server_name`` in the ``INFO`` line of the server on ``port``, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            reply = b""
            while b"\r\n" not in reply:
                chunk = sock.recv(65536)
                if not chunk or len(reply) > 65536:
                    return None
                reply += chunk
    except OSError:
        return None
    line = reply.split(b"\r\n", 1)[0]
    if not line.startswith(b"INFO "):
        return None
    name = json.loads(line[5:]).get("server_name")
    return name if isinstance(name, str) else None
