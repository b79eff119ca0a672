"""Drain WebSockets on SIGTERM/SIGINT *before* the server closes them.

uvicorn, on a shutdown signal, first closes every WebSocket with 1012 and only then runs
the lifespan shutdown, too late for a graceful drain. So at startup the hub wraps the
signal handlers the server installed: on the first signal it runs the hub's graceful
shutdown (notice, drain, close with 1001), then hands the signal to the server's own
handler. A second signal goes straight to the server (for a forced exit).

This only works in the main thread (where signals are delivered); elsewhere, such as a
``LiveServer`` thread, the lifespan shutdown drains instead.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import threading
from collections.abc import Awaitable, Callable
from types import FrameType
from typing import Any

__all__ = ["install_drain_handlers"]

logger = logging.getLogger("bocadillo.hub")
_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def install_drain_handlers(
    drain: Callable[[], Awaitable[None]], loop: asyncio.AbstractEventLoop
) -> Callable[[], None]:
    """Wrap the current SIGINT/SIGTERM handlers so that ``drain()`` runs first.

    Returns:
        A function restoring the wrapped handlers (if they are still ours).
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    previous: dict[int, Any] = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    state = {"draining": False}

    def forward(signum: int, frame: FrameType | None) -> None:
        handler = previous.get(signum)
        if callable(handler):
            handler(signum, frame)
        elif handler == signal.SIG_DFL:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)

    async def drain_then_forward(signum: int) -> None:
        try:
            await drain()
        except Exception:
            logger.exception("graceful WebSocket drain failed")
        forward(signum, None)

    def on_signal(signum: int, frame: FrameType | None) -> None:
        if state["draining"]:
            forward(signum, frame)
            return
        state["draining"] = True
        logger.info("signal %s: draining WebSocket connections", signum)
        loop.call_soon_threadsafe(lambda: loop.create_task(drain_then_forward(signum)))

    installed = {}
    for sig in _SIGNALS:
        try:
            signal.signal(sig, on_signal)
            installed[sig] = True
        except (ValueError, OSError):  # not allowed here: leave the handler alone
            continue

    def uninstall() -> None:
        for sig in installed:
            if signal.getsignal(sig) is on_signal:
                signal.signal(sig, previous[sig])

    return uninstall
