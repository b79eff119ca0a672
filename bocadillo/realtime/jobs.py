"""``@app.every(seconds)``: periodic jobs started with the app and cancelled at shutdown."""

from __future__ import annotations

import asyncio
import difflib
import inspect
import logging
from collections.abc import Callable
from typing import Any

from starlette.concurrency import run_in_threadpool

from ..errors import ConfigurationError

__all__ = ["Job", "Jobs"]

logger = logging.getLogger("bocadillo.jobs")
#: The parameters a job is given, by name.
_FILLED = ("app", "hub")


class Job:
    """One periodic job.

    Args:
        func: Sync (run in a thread) or async; parameters named ``app`` and ``hub`` are
            filled in.
        seconds: The period, measured from the start of one run to the next.
        immediately: Also run once right at startup.

    Raises:
        ConfigurationError: for a period that is not positive, or a parameter other than
            ``app`` and ``hub`` without a default (jobs get no providers, so nothing could
            ever fill it).
    """

    def __init__(
        self, func: Callable[..., Any], seconds: float, *, immediately: bool = False
    ) -> None:
        if seconds <= 0:
            raise ConfigurationError("a job's period must be positive")
        self.func = func
        self.seconds = seconds
        self.immediately = immediately
        self.name = getattr(func, "__name__", repr(func))
        signature = inspect.signature(func).parameters
        self.params = tuple(signature)
        for param in signature.values():
            if (
                param.name not in _FILLED
                and param.default is param.empty
                and param.kind not in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
            ):
                close = difflib.get_close_matches(param.name.lower(), _FILLED, n=1, cutoff=0.6)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise ConfigurationError(
                    f"job {self.name!r}: cannot fill parameter {param.name!r}; {hint}a job "
                    "may take app and hub (give other parameters a default)"
                )
        self.runs = 0
        self.failures = 0

    async def run_once(self, available: dict[str, Any]) -> None:
        """Run the job once; an exception is logged and counted, never raised."""
        kwargs = {name: available[name] for name in self.params if name in available}
        try:
            if inspect.iscoroutinefunction(self.func):
                await self.func(**kwargs)
            else:
                await run_in_threadpool(self.func, **kwargs)
        except Exception:
            self.failures += 1
            logger.exception("job %s failed", self.name)
        finally:
            self.runs += 1

    async def loop(self, available: dict[str, Any]) -> None:
        loop = asyncio.get_running_loop()
        next_run = loop.time() + (0 if self.immediately else self.seconds)
        while True:
            await asyncio.sleep(max(0.0, next_run - loop.time()))
            next_run += self.seconds
            await self.run_once(available)


class Jobs:
    """The periodic jobs of an app, and the tasks running them."""

    def __init__(self) -> None:
        self.jobs: list[Job] = []
        self._tasks: list[asyncio.Task[None]] = []

    def add(self, job: Job) -> None:
        self.jobs.append(job)

    def start(self, available: dict[str, Any]) -> None:
        """Start one task per job (at app startup)."""
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(job.loop(available)) for job in self.jobs]

    async def stop(self) -> None:
        """Cancel the jobs and wait for them to end (at app shutdown)."""
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
