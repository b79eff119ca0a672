"""Drain WebSockets on SIGTERM/SIGINT *before* the server closes them.

uvicorn, on a shutdown signal, first closes every WebSocket with 1012 and only then runs
the lifespan shutdown, too late for a graceful drain. So at startup the app wraps the
signal handlers the server installed: on the first signal it runs the hub's graceful
shutdown (notice, drain, close with 1001), then hands the signal to the server's own
handler. A second signal goes straight to the server (for a forced exit).

The drain runs in a task that ``DrainHandlers.tasks`` holds until it ends (the event loop
keeps only weak references to tasks). When the app shuts down, whether after serving or
because its startup failed, ``DrainHandlers.aclose()`` puts the previous handlers back and
waits for a drain still running.

This only works in the main thread (where signals are delivered); elsewhere, such as a
``LiveServer`` thread or the test client's thread, nothing is installed and the lifespan
shutdown drains instead.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

__all__ = ["DrainHandlers", "install_drain_handlers"]

logger = logging.getLogger("bocadillo.hub")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class DrainHandlers:
    """SIGINT/SIGTERM handlers that run ``drain()`` before the handlers they replace.

    Args:
        drain: The graceful shutdown to run on the first signal.
        loop: The event loop serving the app (the drain task runs on it).
    """

    def __init__(
        self, drain: Callable[[], Awaitable[None]], loop: asyncio.AbstractEventLoop
    ) -> None:
        self._drain = drain
        self._loop = loop
        #: The handler each signal had before ``install()``, for the signals we replaced.
        self._previous: dict[int, Any] = {}
        self._draining = False
        self._closed = False
        #: Drain tasks not finished yet: referenced here so they cannot be collected.
        self.tasks: set[asyncio.Task[None]] = set()

    def install(self) -> None:
        """Replace the SIGINT/SIGTERM handlers; a no-op outside the main thread."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in _SIGNALS:
            previous = signal.getsignal(sig)
            try:
                signal.signal(sig, self._on_signal)
            except (ValueError, OSError):  # not allowed here: leave the handler alone
                continue
            self._previous[sig] = previous

    def restore(self) -> None:
        """Put the previous handlers back (where ours is still the installed one).

        From then on a signal that still reaches ours (through a handler that wrapped it)
        goes straight to the previous handler, and a drain started earlier does not hand
        its signal on when it ends: the app is already shutting down.
        """
        if self._closed:
            return
        self._closed = True
        for sig, previous in self._previous.items():
            # A bound method is a new object at each access: compare with ==, not is.
            if signal.getsignal(sig) == self._on_signal:
                signal.signal(sig, previous)

    async def aclose(self) -> None:
        """``restore()``, then wait for a drain task still running."""
        self.restore()
        pending = [task for task in self.tasks if not task.done()]
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    def _forward(self, signum: int, frame: FrameType | None, previous: Any) -> None:
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        previous = self._previous.get(signum)
        if self._draining or self._closed:
            self._forward(signum, frame, previous)
            return
        self._draining = True
        logger.info("signal %s: draining WebSocket connections", signum)
        # Signal handlers run between two bytecodes of the main thread, maybe inside the
        # loop's own code: only call_soon_threadsafe may touch the loop from here.
        self._loop.call_soon_threadsafe(self._start_drain, signum, previous)

    def _start_drain(self, signum: int, previous: Any) -> None:
        if self._closed:  # the lifespan shutdown is draining already
            return
        task = self._loop.create_task(self._drain_then_forward(signum, previous))
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _drain_then_forward(self, signum: int, previous: Any) -> None:
        try:
            await self._drain()
        except Exception:
            logger.exception("graceful WebSocket drain failed")
        if not self._closed:
            self._forward(signum, None, previous)


def install_drain_handlers(
    drain: Callable[[], Awaitable[None]], loop: asyncio.AbstractEventLoop
) -> DrainHandlers:
    """Wrap the current SIGINT/SIGTERM handlers so that ``drain()`` runs first.

    Returns:
        The installed handlers: ``await handlers.aclose()`` when the app shuts down.
    """
    handlers = DrainHandlers(drain, loop)
    handlers.install()
    return handlers
