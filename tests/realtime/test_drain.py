"""The drain signal handlers: the task is held until done, the previous handlers come back.

Signals are delivered to the main thread, and anyio runs these tests' event loop there,
so the handlers really are installed. Each test puts a recording handler in place first
(and the original back at the end), raises real signals with ``signal.raise_signal`` and
drives the app's real lifespan through the ASGI ``lifespan`` protocol, in this thread.
"""

from __future__ import annotations

import asyncio
import gc
import signal
import threading
from collections.abc import Awaitable, Callable, Iterator, MutableMapping
from types import FrameType
from typing import Any

import pytest

from bocadillo import App, create_client
from bocadillo.realtime.drain import install_drain_handlers
from tests.live import eventually

pytestmark = pytest.mark.anyio

SIGNALS = (signal.SIGINT, signal.SIGTERM)


def handler_of(sig: signal.Signals) -> object:
    """The handler installed for ``sig`` (typed ``object``: compared by identity only)."""
    return signal.getsignal(sig)


class Recorder:
    """A signal handler that records the signals it gets."""

    def __init__(self) -> None:
        self.calls: list[int] = []

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.calls.append(signum)


@pytest.fixture
def previous() -> Iterator[Recorder]:
    """A recording handler for SIGINT and SIGTERM, as the server's own handlers."""
    assert threading.current_thread() is threading.main_thread()
    originals = {sig: signal.getsignal(sig) for sig in SIGNALS}
    recorder = Recorder()
    for sig in SIGNALS:
        signal.signal(sig, recorder)
    try:
        yield recorder
    finally:
        for sig, original in originals.items():
            signal.signal(sig, original)


class GatedDrain:
    """A drain that records its steps and ends only once ``gate`` is set."""

    def __init__(self) -> None:
        self.gate = asyncio.Event()
        self.steps: list[str] = []

    async def __call__(self) -> None:
        self.steps.append("started")
        await self.gate.wait()
        self.steps.append("done")


async def run_lifespan(
    app: App, while_serving: Callable[[], Awaitable[None]] | None = None
) -> list[str]:
    """Run ``app``'s lifespan (startup, then shutdown unless startup failed) in this thread.

    Returns:
        The types of the messages the app sent.
    """
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    sent: list[str] = []
    outbox: asyncio.Queue[str] = asyncio.Queue()

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message["type"])
        await outbox.put(message["type"])

    scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
    server = asyncio.ensure_future(app(scope, inbox.get, send))
    await inbox.put({"type": "lifespan.startup"})
    started = await asyncio.wait_for(outbox.get(), 10)
    if started == "lifespan.startup.complete":
        if while_serving is not None:
            await while_serving()
        await inbox.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(outbox.get(), 10)
    try:
        await asyncio.wait_for(server, 10)
    except Exception:
        pass  # Starlette re-raises a failed startup after reporting it
    return sent


async def test_drain_task_is_held_until_done_then_the_signal_goes_on(previous: Recorder) -> None:
    drain = GatedDrain()
    handlers = install_drain_handlers(drain, asyncio.get_running_loop())
    try:
        assert handler_of(signal.SIGTERM) is not previous
        signal.raise_signal(signal.SIGTERM)
        await eventually(lambda: drain.steps == ["started"])
        # The loop itself keeps only a weak reference: the set is what keeps it alive.
        gc.collect()
        assert len(handlers.tasks) == 1
        (task,) = handlers.tasks
        assert not task.done()
        assert previous.calls == []  # held back until the drain ends

        # A second signal during the drain goes straight to the previous handler.
        signal.raise_signal(signal.SIGTERM)
        assert previous.calls == [signal.SIGTERM]

        drain.gate.set()
        await eventually(lambda: not handlers.tasks)
        assert task.done() and task.exception() is None
        assert drain.steps == ["started", "done"]
        assert previous.calls == [signal.SIGTERM, signal.SIGTERM]
    finally:
        await handlers.aclose()
    assert handler_of(signal.SIGTERM) is previous
    assert handler_of(signal.SIGINT) is previous


async def test_aclose_restores_the_handlers_and_awaits_a_running_drain(previous: Recorder) -> None:
    drain = GatedDrain()
    handlers = install_drain_handlers(drain, asyncio.get_running_loop())
    signal.raise_signal(signal.SIGINT)
    await eventually(lambda: drain.steps == ["started"])
    closing = asyncio.ensure_future(handlers.aclose())
    await eventually(lambda: handler_of(signal.SIGINT) is previous)
    assert handler_of(signal.SIGTERM) is previous
    assert not closing.done()  # waiting for the drain
    drain.gate.set()
    await asyncio.wait_for(closing, 10)
    assert drain.steps == ["started", "done"]
    assert not handlers.tasks
    # The app was already shutting down: the signal is not handed on after the fact.
    assert previous.calls == []


async def test_lifespan_restores_the_handlers_at_shutdown(previous: Recorder) -> None:
    app = App()
    seen: dict[str, Any] = {}

    async def while_serving() -> None:
        seen["term"] = handler_of(signal.SIGTERM)
        seen["int"] = handler_of(signal.SIGINT)

    sent = await run_lifespan(app, while_serving)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert seen["term"] is not previous and callable(seen["term"])
    assert seen["int"] is not previous and callable(seen["int"])
    assert handler_of(signal.SIGTERM) is previous
    assert handler_of(signal.SIGINT) is previous
    assert previous.calls == []


async def test_lifespan_restores_the_handlers_when_startup_fails(previous: Recorder) -> None:
    app = App()
    installed: list[Any] = []

    @app.on("startup")
    async def fail() -> None:
        installed.append(handler_of(signal.SIGTERM))
        raise RuntimeError("startup failed")

    sent = await run_lifespan(app)
    assert sent == ["lifespan.startup.failed"]
    assert installed and installed[0] is not previous  # it was installed, then failed
    assert handler_of(signal.SIGTERM) is previous
    assert handler_of(signal.SIGINT) is previous


async def test_lifespan_drains_on_a_signal_then_hands_it_to_the_server(previous: Recorder) -> None:
    app = App()

    async def while_serving() -> None:
        assert app.hub.accepting
        signal.raise_signal(signal.SIGTERM)
        # The server's handler gets the signal once the hub has drained.
        await eventually(lambda: previous.calls == [signal.SIGTERM])
        assert not app.hub.accepting
        handlers = app._drain_handlers
        assert handlers is not None
        await eventually(lambda: not handlers.tasks)

    sent = await run_lifespan(app, while_serving)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert previous.calls == [signal.SIGTERM]
    assert handler_of(signal.SIGTERM) is previous


def test_test_client_thread_leaves_the_handlers_alone(previous: Recorder) -> None:
    # create_client runs the app in another thread, where signals are not delivered:
    # nothing is installed, and the lifespan shutdown drains instead.
    app = App()
    with create_client(app):
        assert handler_of(signal.SIGTERM) is previous
    assert handler_of(signal.SIGTERM) is previous
