"""A bounded, ordered outbox per connection, with a named overflow policy.

``put()`` hands a message over without awaiting the client. When nothing is queued it
starts the ASGI ``send`` right away and drives it by hand: with a healthy client the
server writes the frame to the socket buffer and the call completes without suspending,
so a broadcast costs no task switch per recipient (the plain form, a pump task started by
``put()``, makes a broadcast about ten times slower: see "Tricks and what they buy" in
bench/README.md). Only if ``send`` must wait (the
client's TCP buffer is full, so the server paused writing) does the outbox start a pump
task, which finishes that send and then drains the queue in order. Messages that arrive
meanwhile are queued, up to ``limit``; beyond that the policy decides:

- ``"drop_oldest"``: forget the oldest queued message (live data: the newest matters);
- ``"drop_newest"``: refuse the new message;
- ``"close"``: refuse it and report the overflow, so the hub closes the connection
  with 1013 (try again later).

Messages to one connection are written in the order they were handed over.
"""

from __future__ import annotations

import asyncio
import types
from collections import deque
from collections.abc import Awaitable, Callable, Generator
from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigurationError
from ..types import Message, Send
from .limits import OverflowPolicy

__all__ = ["Driver", "OverflowPolicy", "Outbox"]

_POLICIES = ("drop_oldest", "drop_newest", "close")


#: What a runner yields once the send it was handed has completed.
_DONE: Any = object()


class _Kept:
    """Marks a queued message that the overflow policy must not drop (a replay)."""


_KEPT = _Kept()
# Queued with each message: who waits for it to be written (``send``), ``_KEPT`` (never
# dropped, nobody waits: ``put_kept``), or ``None`` (``put``: may be dropped).


@types.coroutine
def _runner() -> Generator[Any, Any, None]:
    """Run each coroutine sent in, yielding ``_DONE`` after each one completes.

    Driving a send through this generator rather than with ``coro.send(None)`` spares
    the ``StopIteration`` that a completed coroutine raises to a direct caller, once per
    recipient of every broadcast. If a send suspends, the runner yields what the send
    waits on, and from then on belongs to that send (see ``Driver.run``).
    """
    coro = yield None
    while True:
        yield from coro
        coro = yield _DONE


if TYPE_CHECKING:
    Runner = types.GeneratorType[Any, Any, None]


def _start_runner() -> Runner:
    runner = cast("Runner", _runner())
    runner.send(None)  # to its first `yield`
    return runner


# bench.micro fanout: 0.25 vs 2.30 us/recipient at 1,000 clients, 0.29 vs 3.5 at 5,000,
# with a pump task per recipient instead of the driver (2026-11-30)
class Driver:
    """Runs ASGI sends by hand, without a task, for as long as they do not wait.

    One driver serves many outboxes on the same event loop (the hub shares one); it
    keeps one runner and replaces it only when a send suspends or fails.
    """

    __slots__ = ("_runner",)

    def __init__(self) -> None:
        self._runner: Runner | None = None

    def run(self, send: Awaitable[None]) -> tuple[Runner, Any] | None:
        """Run ``send`` until it completes or first suspends.

        Returns:
            None if it completed; else the runner, now holding the suspended send, and
            what it yielded: finish it with ``finish(runner, yielded)``.

        Raises:
            Exception: whatever the send raised.
        """
        runner = self._runner
        if runner is None or runner.gi_running:  # first use, or called from a send
            runner = self._runner = _start_runner()
        try:
            yielded = runner.send(send)
        except BaseException:
            self._runner = None  # the send's exception ended the runner
            raise
        if yielded is _DONE:
            return None
        self._runner = None
        return runner, yielded


async def finish(runner: Runner, yielded: Any) -> None:
    """Finish a send that ``Driver.run`` left suspended on ``yielded``.

    Raises:
        Exception: whatever the send raised.
    """
    while yielded is not _DONE:
        if yielded is None:
            await asyncio.sleep(0)  # a bare yield (sleep(0)): just give the loop a turn
        else:
            # The hand-driven send marked the future as "blocking" for a Task that never
            # saw it; clear the mark so this task may await the future itself.
            yielded._asyncio_future_blocking = False
            try:
                await yielded
            except asyncio.CancelledError:
                runner.close()
                raise
            except Exception:
                pass  # the send sees the future's exception when resumed
        yielded = runner.send(None)
    runner.close()


class Outbox:
    """Ordered delivery of ASGI messages to one connection.

    Args:
        send: The connection's ASGI ``send``.
        limit: How many messages may wait while the client is slow.
        policy: What to do when ``limit`` messages are waiting (see the module doc).
        on_overflow: Called once when the ``close`` policy is triggered.
        on_error: Called with the outbox and the exception when sending fails (the client
            is gone); the outbox then refuses everything.
        on_drop: Called with the outbox each time the policy drops a message.
        driver: Runs the sends that ``put`` starts; outboxes on one event loop may share
            one (a private one is made when omitted).
    """

    __slots__ = (
        "_closed",
        "_driver",
        "_on_drop",
        "_on_error",
        "_on_overflow",
        "_pump",
        "_queue",
        "_send",
        "bytes_sent",
        "limit",
        "messages_sent",
        "overflowed",
        "policy",
    )

    def __init__(
        self,
        send: Send,
        *,
        limit: int = 256,
        policy: OverflowPolicy = "drop_oldest",
        on_overflow: Callable[[Outbox], None] | None = None,
        on_error: Callable[[Outbox, BaseException], None] | None = None,
        on_drop: Callable[[Outbox], None] | None = None,
        driver: Driver | None = None,
    ) -> None:
        if policy not in _POLICIES:
            raise ConfigurationError(f"overflow policy must be one of {', '.join(_POLICIES)}")
        if limit < 1:
            raise ConfigurationError("an outbox limit must be at least 1")
        self._send = send
        self.limit = limit
        self.policy = policy
        self._on_overflow = on_overflow
        self._on_error = on_error
        self._on_drop = on_drop
        self._driver = driver if driver is not None else Driver()
        # Made on first use: most outboxes never queue, and an empty deque is ~600 bytes.
        self._queue: deque[tuple[Message, asyncio.Future[None] | _Kept | None]] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        #: Messages (and their bytes) taken for delivery by ``put`` or ``send``: written,
        #: queued, or queued and later dropped (drops are reported to ``on_drop``).
        self.messages_sent = 0
        self.bytes_sent = 0
        #: The ``close`` policy was triggered.
        self.overflowed = False

    @property
    def pending(self) -> int:
        """Messages waiting to be written."""
        return len(self._queue) if self._queue is not None else 0

    @property
    def idle(self) -> bool:
        """Nothing is waiting and nothing is being written."""
        return self._pump is None and not self._queue

    def put(self, message: Message, size: int = 0) -> bool:
        """Hand ``message`` (of ``size`` bytes, for the counters) over for delivery,
        without awaiting the client.

        Returns:
            True if the message was written or queued; False if it was refused (outbox
            closed, or full under ``drop_newest``/``close``).
        """
        if self._closed:
            return False
        if self._pump is None and not self._queue:
            # Start the send now; with a healthy client it completes right here.
            try:
                pending = self._driver.run(self._send(message))
            except Exception as exc:
                self._fail(exc)
                return False
            if pending is not None:
                self._pump = asyncio.get_running_loop().create_task(self._resume(*pending))
            self.messages_sent += 1
            self.bytes_sent += size
            return True
        if self._queue is None:
            self._queue = deque()
        elif len(self._queue) >= self.limit and not self._make_room():
            return False
        self._queue.append((message, None))
        self.messages_sent += 1
        self.bytes_sent += size
        return True

    def put_kept(self, message: Message, size: int = 0) -> bool:
        """Like ``put``, but the message is queued even past ``limit`` and never dropped
        by the overflow policy (a replay of missed messages: bounded by the history).

        Returns:
            False if the outbox is closed.
        """
        if self._closed:
            return False
        if self._pump is None and not self._queue:
            return self.put(message, size)
        if self._queue is None:
            self._queue = deque()
        self._queue.append((message, _KEPT))
        self.messages_sent += 1
        self.bytes_sent += size
        return True

    def _make_room(self) -> bool:
        if self.policy == "drop_oldest":
            assert self._queue is not None
            for index, (_, waiter) in enumerate(self._queue):
                if waiter is None:
                    del self._queue[index]
                    self._count_drop()
                    return True
            return True  # only awaited messages are queued: never drop those
        self._count_drop()
        if self.policy == "close" and not self.overflowed:
            self.overflowed = True
            if self._on_overflow is not None:
                self._on_overflow(self)
        return False

    def _count_drop(self) -> None:
        if self._on_drop is not None:
            self._on_drop(self)

    def send(self, message: Message, size: int = 0) -> Awaitable[None]:
        """Send ``message`` (of ``size`` bytes, for the counters) in order with what is
        queued; await the result to wait until it is written.

        Used for the connection's own sends (``ws.send``): they wait for the client
        instead of being dropped. With nothing queued, the awaitable is the ASGI send
        itself (no extra coroutine on the hot path).

        Raises:
            OSError: if the connection is gone (when called, or when awaited).
        """
        if self._closed:
            raise ConnectionResetError("the connection is closed")
        self.messages_sent += 1
        self.bytes_sent += size
        if self._pump is None and not self._queue:
            # bench.micro echo: 3.21 vs 3.34 us/msg with send() and Session.send as
            # coroutines awaiting it (2026-11-30)
            return self._send(message)
        return self._send_after_queue(message)

    async def _send_after_queue(self, message: Message) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._queue is None:
            self._queue = deque()
        self._queue.append((message, waiter))
        await waiter

    async def _resume(self, runner: Runner, yielded: Any) -> None:
        try:
            await finish(runner, yielded)
            while self._queue:
                message, waiter = self._queue.popleft()
                try:
                    await self._send(message)
                except Exception as exc:
                    if isinstance(waiter, asyncio.Future) and not waiter.done():
                        waiter.set_exception(exc)
                    raise
                if isinstance(waiter, asyncio.Future) and not waiter.done():
                    waiter.set_result(None)
            self._queue = None  # drained: give its memory back
        except Exception as exc:
            self._fail(exc)
        finally:
            self._pump = None

    def _fail(self, exc: BaseException) -> None:
        if self._closed:
            return
        self.close()
        if self._on_error is not None:
            self._on_error(self, exc)

    def close(self) -> None:
        """Refuse new messages and forget queued ones (their waiters get an error)."""
        self._closed = True
        while self._queue:
            _, waiter = self._queue.popleft()
            if isinstance(waiter, asyncio.Future) and not waiter.done():
                waiter.set_exception(ConnectionResetError("the connection is closed"))

    @property
    def closed(self) -> bool:
        return self._closed

    async def wait_drained(self, timeout: float | None = None) -> bool:
        """Wait until everything queued is written (or ``timeout`` seconds pass).

        Returns:
            True if the outbox is drained.
        """
        pump = self._pump
        if pump is None:
            return not self._queue
        try:
            await asyncio.wait_for(asyncio.shield(pump), timeout)
        except asyncio.TimeoutError:
            return False
        return self.idle

    async def aclose(self) -> None:
        """Close, and cancel and await the pump task (the owner calls this at the end)."""
        self.close()
        pump = self._pump
        if pump is not None:
            pump.cancel()
            try:
                await pump
            except asyncio.CancelledError:
                pass
            self._pump = None
