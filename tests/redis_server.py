"""Real ``redis-server`` processes for the tests, on loopback ports.

A missing ``redis-server`` fails the tests that need it (``.ci/run`` installs the
Debian package): the Redis backend is never tested against a mock.

The port: ``redis-server`` cannot be handed a listening socket as uvicorn can (``--fd``),
and ``--port 0`` does not let it choose one (it turns TCP off). So ``start()`` asks the
kernel for a port that is unused right now and starts the server on it; if something took
the port in between, the collision is seen (the server exits with "Address already in
use", or a process other than ours answers on the port) and it starts again on another
port, ``ATTEMPTS`` times at most. Every test reaches the server through ``url`` after
``start()``: the port it ends up on is the only one the test ever uses.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

__all__ = ["RedisServer"]

#: How many ports ``start()`` tries before it gives up.
ATTEMPTS = 10


class _PortTaken(Exception):
    """The port was taken by another process before ``redis-server`` could bind it."""


def _unused_port() -> int:
    """A port of 127.0.0.1 that nothing is bound to right now (see the module docstring:
    the caller detects a collision and retries)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class RedisServer:
    """One ``redis-server`` on 127.0.0.1, keeping nothing on disk; restartable on its port.

    Args:
        workdir: Its working directory (its log is ``redis.log`` there).
        port: A port to use; by default ``start()`` picks one (see the module docstring).
    """

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError(
                "redis-server is not installed (Debian package 'redis-server'; .ci/run "
                "installs it): the Redis tests need a real server"
            )
        self.executable = executable
        self.workdir = workdir
        self.port: int = port or 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        assert self.port, "start the server first: its port is chosen when it starts"
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def log_path(self) -> Path:
        return self.workdir / "redis.log"

    def start(self, timeout: float = 10.0) -> None:
        """Start the server and wait until it answers; later starts reuse the port.

        Raises:
            RuntimeError: if it exits or does not answer within ``timeout``, or its port
                (given, or chosen at an earlier start) is taken by another process, or
                ``ATTEMPTS`` chosen ports were all taken.
        """
        assert self.process is None, "already running"
        self.workdir.mkdir(parents=True, exist_ok=True)
        if self.port:
            try:
                self._start_on(self.port, timeout)
            except _PortTaken:
                raise RuntimeError(f"port {self.port} is taken by another process") from None
            return
        for _ in range(ATTEMPTS):
            port = _unused_port()
            try:
                self._start_on(port, timeout)
            except _PortTaken:
                continue
            self.port = port
            return
        raise RuntimeError(f"redis-server found no free port in {ATTEMPTS} attempts")

    def _start_on(self, port: int, timeout: float) -> None:
        logged = self.log_path.stat().st_size if self.log_path.exists() else 0
        process = subprocess.Popen(
            [
                self.executable,
                "--port",
                str(port),
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
            ],  # fmt: skip
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self.process = process
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                self.process = None
                with open(self.log_path, "rb") as file:
                    file.seek(logged)
                    log = file.read().decode(errors="replace")
                if "Address already in use" in log:
                    raise _PortTaken(port)
                raise RuntimeError(f"redis-server exited at start:\n{log}")
            answering = _server_pid(port)
            if answering == process.pid:
                return
            if answering is not None:  # someone else's server on this port
                self.stop(kill=True)
                raise _PortTaken(port)
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer on port {port}")

    def ping(self) -> bool:
        """Whether this server answers on its port."""
        return self.process is not None and _server_pid(self.port) == self.process.pid

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
