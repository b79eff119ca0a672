"""Real ``python -m uvicorn`` and ``bocadillo run`` processes for tests, on loopback ports.

Each serves a listening socket bound by the test (``tests.live.listening_socket``) and
handed over with ``--fd``, so no port is chosen and then bound later by someone else. Each
is stopped by its own PID (and its workers' PIDs), whatever happens in the test.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from tests.live import listening_socket

__all__ = ["BOCADILLO", "BocadilloRun", "UvicornProcess", "bocadillo_run", "spawn_uvicorn"]

ROOT = Path(__file__).resolve().parents[1]
#: The ``bocadillo`` command of this virtualenv.
BOCADILLO = Path(sys.executable).with_name("bocadillo")


def spawn_uvicorn(
    app: str,
    listener: socket.socket,
    log_path: Path,
    environ: Mapping[str, str],
    args: Sequence[str] = (),
) -> subprocess.Popen[bytes]:
    """Start ``python -m uvicorn <app> --fd N <args>`` serving ``listener`` (see
    ``tests.live.listening_socket``), in the project's root, its output appended to
    ``log_path``; close the test's copy of the socket.

    Once the child has its copy, the test's is closed: when uvicorn is gone, connections
    are refused, not queued on a socket of the test process. asyncio's debug mode (on in
    ``make test``) is left out of ``environ``: these servers carry load.
    """
    environ = dict(environ)
    # Any value, even "0", turns asyncio's debug mode on: remove the variable.
    environ.pop("PYTHONASYNCIODEBUG", None)
    fd = listener.fileno()
    try:
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "uvicorn", app, "--fd", str(fd), *args],
                cwd=ROOT,
                env=environ,
                stdout=log,
                stderr=subprocess.STDOUT,
                pass_fds=[fd],
            )
    finally:
        listener.close()


class UvicornProcess:
    """``python -m uvicorn <app>`` on 127.0.0.1, its output in ``log_path``."""

    def __init__(
        self,
        app: str,
        log_path: Path,
        *,
        env: dict[str, str] | None = None,
        args: tuple[str, ...] = (),
    ) -> None:
        self.app = app
        # Held until start() hands it to uvicorn: the port is never free in between.
        self._listener: socket.socket | None = listening_socket()
        self.port: int = self._listener.getsockname()[1]
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self._environ = {**os.environ, **(env or {})}
        self._args = args
        self.process: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> UvicornProcess:
        """Start the server and wait until it accepts TCP connections."""
        listener, self._listener = self._listener, None
        assert listener is not None, "a UvicornProcess starts once"
        self.process = spawn_uvicorn(self.app, listener, self.log_path, self._environ, self._args)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"uvicorn exited at start:\n{self.log}")
            if "Application startup complete" in self.log and self._accepts():
                return self
            time.sleep(0.05)
        self.kill()
        raise RuntimeError(f"uvicorn did not start within {timeout}s:\n{self.log}")

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                return True
        except OSError:
            return False

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def children(self) -> list[int]:
        """PIDs of the child processes."""
        path = Path(f"/proc/{self.pid}/task/{self.pid}/children")
        try:
            return [int(pid) for pid in path.read_text().split()]
        except OSError:
            return []

    def workers(self) -> list[int]:
        """PIDs of the ``--workers`` processes (not multiprocessing's resource tracker)."""
        pids = []
        for pid in self.children():
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
            except OSError:
                continue
            if b"spawn_main" in cmdline:
                pids.append(pid)
        return pids

    def kill(self) -> None:
        """SIGKILL the server (and its workers): no cleanup of any kind."""
        if self._listener is not None:  # never started
            self._listener.close()
            self._listener = None
        if self.process is None or self.process.poll() is not None:
            return
        for pid in [*self.children(), self.pid]:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.process.wait(timeout=10)

    def stop(self, timeout: float = 20.0) -> int | None:
        """SIGTERM, wait (then SIGKILL if it hangs); the exit status."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.process.returncode


@dataclass
class BocadilloRun:
    """A ``bocadillo run`` process and the loopback port it serves."""

    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def rss_kib(self) -> int:
        """The server's resident set size in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
        raise AssertionError("no VmRSS line")

    def stop(self) -> int:
        """SIGTERM, wait (then SIGKILL if it hangs); the exit status."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return self.process.returncode


def bocadillo_run(
    app: str,
    log: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    command: Path = BOCADILLO,
    cwd: Path = ROOT,
    inherit_env: bool = True,
) -> BocadilloRun:
    """``<command> run <app> --fd N <args>`` on a loopback socket bound here, in ``cwd``
    (the project's root), its output in ``log``; wait for "Application startup complete".

    ``command`` is this virtualenv's ``bocadillo`` unless another is given (a fresh
    install's). The environment is this process's updated with ``env``, or ``env`` alone
    without ``inherit_env``; asyncio's debug mode (on in ``make test``) is left out.
    """
    listener = listening_socket()
    environ = {**(os.environ if inherit_env else {}), **(env or {})}
    environ.pop("PYTHONASYNCIODEBUG", None)
    with listener, open(log, "wb") as out:
        process = subprocess.Popen(
            [str(command), "run", app, "--fd", str(listener.fileno()), *args],
            cwd=cwd,
            env=environ,
            pass_fds=[listener.fileno()],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        served = BocadilloRun(process, listener.getsockname()[1], log)
    deadline = time.monotonic() + timeout
    while "Application startup complete" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            served.stop()
            raise AssertionError(f"bocadillo run did not start:\n{log.read_text()}")
        time.sleep(0.05)
    return served
