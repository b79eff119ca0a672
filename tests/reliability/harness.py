"""What every reliability scenario shares: sizes, the server process, waits and logs.

Sizes: the CI size runs in ``make test``; ``BOCADILLO_SOAK=1`` (``make soak``) selects the
full size given in issue #9. ``size(ci, full)`` picks one.

``ServerProcess`` runs ``tests/reliability/soak_app.py`` under ``python -m uvicorn`` on a
loopback socket it is handed (``--fd``), with settings as ``BOCADILLO_*`` variables and
without asyncio's debug mode. Its stderr goes to a log file that ``assert_clean_log``
reads; its memory is read from ``/proc/<pid>/status``; it is stopped by its PID, whatever
happens.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import resource
import signal
import subprocess
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar, cast

import httpx2 as httpx

from tests import live
from tests.uvicorn_process import spawn_uvicorn

__all__ = [
    "SOAK",
    "ServerProcess",
    "eventually",
    "raise_file_limit",
    "record_figures",
    "size",
]

ROOT = Path(__file__).resolve().parents[2]
APP = "tests.reliability.soak_app:app"
SOAK = os.environ.get("BOCADILLO_SOAK", "").lower() in ("1", "true", "yes", "on")
T = TypeVar("T")


def size(ci: T, full: T) -> T:
    """The CI size, or the full size under ``BOCADILLO_SOAK=1``."""
    return full if SOAK else ci


def raise_file_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return the new limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY:
        hard = 1 << 20
    if soft == resource.RLIM_INFINITY or soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


async def eventually(
    check: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.05,
) -> T:
    """``tests.live.eventually`` for the scenarios: a timeout and a description always,
    and a poll every 50 ms (a check asks a loaded server for its ``/state`` over HTTP)."""
    return cast(T, await live.eventually(check, timeout, what=what, interval=interval))


#: uvicorn's own INFO lines ("Started server process", "Application startup complete"...).
_UVICORN_INFO = re.compile(r"^INFO:\s")


class ServerProcess:
    """``python -m uvicorn tests.reliability.soak_app:app`` on a loopback socket bound here.

    Args:
        log_path: Where its stdout and stderr go.
        env: ``BOCADILLO_*`` settings (and any other variable) for the app.
        args: More uvicorn options.
    """

    def __init__(
        self,
        log_path: Path,
        env: dict[str, str] | None = None,
        args: list[str] | None = None,
        *,
        sndbuf: int | None = None,
    ) -> None:
        self.log_path = log_path
        # uvicorn gets a listening socket bound here (--fd): no port can be taken between
        # choosing and binding it, and socket options are inherited by every connection.
        # A small ``sndbuf`` makes the server's transport pause after a few kilobytes for
        # a client that does not read, as megabytes would on a network.
        listener = live.listening_socket(sndbuf=sndbuf)
        self.port: int = listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        environ = {
            name: value for name, value in os.environ.items() if not name.startswith("BOCADILLO_")
        }
        environ.pop("COVERAGE_PROCESS_START", None)
        environ.update(env or {})
        options = ["--log-level", "warning", "--no-access-log", *(args or [])]
        self.process = spawn_uvicorn(APP, listener, log_path, environ, options)
        self.pid = self.process.pid

    # Lifecycle --------------------------------------------------------------------------

    async def wait_ready(self, timeout: float = 60.0) -> None:
        async def ready() -> bool:
            if self.process.poll() is not None:
                raise AssertionError(f"uvicorn exited early:\n{self.log}")
            try:
                async with httpx.AsyncClient(timeout=5) as client:
                    status: int = (await client.get(self.url + "/state")).status_code
                    return status == 200
            except httpx.TransportError:
                return False

        await eventually(ready, timeout=timeout, what=f"uvicorn answers on {self.url}")

    @property
    def alive(self) -> bool:
        return self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the server (by its PID) and reap it."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGKILL)
        self.process.wait(30)

    def stop(self) -> None:
        """SIGTERM (graceful), then SIGKILL if it has not exited within 30 s."""
        if self.process.poll() is None:
            os.kill(self.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.kill()

    # What the scenarios read ----------------------------------------------------------------

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def rss(self) -> int:
        """The server's resident set size, in bytes (``VmRSS`` of ``/proc/<pid>/status``)."""
        status = Path(f"/proc/{self.pid}/status").read_text()
        match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.MULTILINE)
        assert match is not None, status
        return int(match.group(1)) * 1024

    async def request(self, method: str, path: str, **options: Any) -> httpx.Response:
        """One HTTP request on a new connection (``options`` as for ``httpx``)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=120) as client:
            response: httpx.Response = await client.request(method, path, **options)
            return response

    async def state(self, **params: Any) -> dict[str, Any]:
        response = await self.request("GET", "/state", params=params)
        assert response.status_code == 200, response.text
        result: dict[str, Any] = response.json()
        return result

    async def post(self, path: str, json: Any = None, **params: Any) -> Any:
        response = await self.request("POST", path, params=params, json=json)
        assert response.status_code == 200, response.text
        return response.json()

    def records(self) -> list[str]:
        """The log split into records: one per logged line, tracebacks included."""
        return log_records(self.log)

    def assert_clean_log(
        self,
        *,
        expected: dict[str, int] | None = None,
        tolerated: dict[str, int] | None = None,
    ) -> dict[str, int]:
        """Check the server logged nothing unexpected; return how often each
        ``expected`` and ``tolerated`` pattern matched.

        Every record must be one of uvicorn's INFO lines (without a traceback), or match
        a regular expression of ``expected`` (exactly the given number of times) or of
        ``tolerated`` (at most the given number of times: a known bug, see the caller).
        """
        expected = expected or {}
        tolerated = tolerated or {}
        counts = dict.fromkeys([*expected, *tolerated], 0)
        unexpected = []
        for record in self.records():
            matched = [pattern for pattern in counts if re.search(pattern, record)]
            if matched:
                counts[matched[0]] += 1
            elif not (_UVICORN_INFO.match(record) and "Traceback" not in record):
                unexpected.append(record)
        assert unexpected == [], "unexpected log records:\n" + "\n".join(unexpected[:20])
        for pattern, count in expected.items():
            assert counts[pattern] == count, f"{counts[pattern]} records match {pattern!r}"
        for pattern, most in tolerated.items():
            assert counts[pattern] <= most, f"{counts[pattern]} records match {pattern!r}"
        return counts


_RECORD_START = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)[: ]")


def log_records(log: str) -> list[str]:
    """Split a log into records (a record starts with a level name)."""
    records: list[str] = []
    for line in log.splitlines():
        if _RECORD_START.match(line) or not records:
            records.append(line)
        else:
            records[-1] += "\n" + line
    return [record for record in records if record.strip()]


async def gather_bounded(coros: list[Awaitable[T]], limit: int) -> list[T | BaseException]:
    """Run awaitables at most ``limit`` at a time; exceptions are returned, not raised."""
    semaphore = asyncio.Semaphore(limit)

    async def run(coro: Awaitable[T]) -> T:
        async with semaphore:
            return await coro

    return await asyncio.gather(*(run(c) for c in coros), return_exceptions=True)


def record_figures(scenario: str, figures: dict[str, Any]) -> None:
    """Keep a scenario's figures in ``artifacts/reliability/<size>/<scenario>.json``
    (``docs/reliability.md`` quotes those of a full-size run) and print them."""
    folder = ROOT / "artifacts" / "reliability" / ("full" if SOAK else "ci")
    folder.mkdir(parents=True, exist_ok=True)
    text = json.dumps(figures, indent=2, sort_keys=True)
    (folder / f"{scenario}.json").write_text(text + "\n")
    print(f"{scenario}: {text}")
