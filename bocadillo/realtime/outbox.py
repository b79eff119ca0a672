"""A bounded, ordered outbox per connection, with a named overflow policy.

``put()`` hands a message over without awaiting the client. When nothing is queued it
starts the ASGI ``send`` right away and drives it by hand: with a healthy client the
server writes the frame to the socket buffer and the call completes without suspending,
so a broadcast costs no task switch per recipient. Only if ``send`` must wait (the
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
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal

from ..types import Message, Send

__all__ = ["OverflowPolicy", "Outbox"]

OverflowPolicy = Literal["drop_oldest", "drop_newest", "close"]
_POLICIES = ("drop_oldest", "drop_newest", "close")


async def _finish(coro: Coroutine[Any, Any, Any], yielded: Any) -> None:
    """Run a coroutine that was driven by hand until it first suspended on ``yielded``."""
    while True:
        if yielded is None:
            await asyncio.sleep(0)  # a bare yield (sleep(0)): just give the loop a turn
        else:
            # The hand-driven coroutine marked the future as "blocking" for a Task that
            # never saw it; clear the mark so this task may await the future itself.
            yielded._asyncio_future_blocking = False
            try:
                await yielded
            except asyncio.CancelledError:
                coro.close()
                raise
            except Exception:
                pass  # the coroutine sees the future's exception when resumed
        try:
            yielded = coro.send(None)
        except StopIteration:
            return


class Outbox:
    """Ordered delivery of ASGI messages to one connection.

    Args:
        send: The connection's ASGI ``send``.
        limit: How many messages may wait while the client is slow.
        policy: What to do when ``limit`` messages are waiting (see the module doc).
        on_overflow: Called once when the ``close`` policy is triggered.
        on_error: Called with the outbox and the exception when sending fails (the client
            is gone); the outbox then refuses everything.
    """

    __slots__ = (
        "_closed",
        "_on_error",
        "_on_overflow",
        "_pump",
        "_queue",
        "_send",
        "dropped",
        "limit",
        "overflowed",
        "owner",
        "policy",
        "sent",
    )

    def __init__(
        self,
        send: Send,
        *,
        limit: int = 256,
        policy: OverflowPolicy = "drop_oldest",
        on_overflow: Callable[[Outbox], None] | None = None,
        on_error: Callable[[Outbox, BaseException], None] | None = None,
    ) -> None:
        if policy not in _POLICIES:
            raise ValueError(f"overflow policy must be one of {', '.join(_POLICIES)}")
        if limit < 1:
            raise ValueError("an outbox limit must be at least 1")
        self._send = send
        self.limit = limit
        self.policy = policy
        self._on_overflow = on_overflow
        self._on_error = on_error
        #: Whatever the creator wants to find from the outbox in its callbacks.
        self.owner: Any = None
        # Made on first use: most outboxes never queue, and an empty deque is ~600 bytes.
        self._queue: deque[tuple[Message, asyncio.Future[None] | None]] | None = None
        self._pump: asyncio.Task[None] | None = None
        self._closed = False
        #: Messages written to the connection.
        self.sent = 0
        #: Messages dropped by the overflow policy.
        self.dropped = 0
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

    def put(self, message: Message) -> bool:
        """Hand ``message`` over for delivery, without awaiting the client.

        Returns:
            True if the message was written or queued; False if it was refused (outbox
            closed, or full under ``drop_newest``/``close``).
        """
        if self._closed:
            return False
        if self._pump is None and not self._queue:
            self._drive(message)
            return not self._closed
        if self._queue is None:
            self._queue = deque()
        elif len(self._queue) >= self.limit and not self._make_room():
            return False
        self._queue.append((message, None))
        return True

    def _make_room(self) -> bool:
        if self.policy == "drop_oldest":
            assert self._queue is not None
            for index, (_, waiter) in enumerate(self._queue):
                if waiter is None:
                    del self._queue[index]
                    self.dropped += 1
                    return True
            return True  # only awaited messages are queued: never drop those
        self.dropped += 1
        if self.policy == "close" and not self.overflowed:
            self.overflowed = True
            if self._on_overflow is not None:
                self._on_overflow(self)
        return False

    def send(self, message: Message) -> Awaitable[None]:
        """Send ``message`` in order with what is queued; await the result to wait until
        it is written.

        Used for the connection's own sends (``ws.send``): they wait for the client
        instead of being dropped. With nothing queued, the awaitable is the ASGI send
        itself (no extra coroutine on the hot path).

        Raises:
            OSError: if the connection is gone (when called, or when awaited).
        """
        if self._closed:
            raise ConnectionResetError("the connection is closed")
        if self._pump is None and not self._queue:
            self.sent += 1
            return self._send(message)
        return self._send_after_queue(message)

    async def _send_after_queue(self, message: Message) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if self._queue is None:
            self._queue = deque()
        self._queue.append((message, waiter))
        await waiter

    def _drive(self, message: Message) -> None:
        coro = self._send(message)
        try:
            yielded = coro.send(None)  # type: ignore[attr-defined]
        except StopIteration:
            self.sent += 1
            return
        except Exception as exc:
            self._fail(exc)
            return
        self._pump = asyncio.get_running_loop().create_task(self._resume(coro, yielded))

    async def _resume(self, coro: Any, yielded: Any) -> None:
        try:
            await _finish(coro, yielded)
            self.sent += 1
            while self._queue:
                message, waiter = self._queue.popleft()
                try:
                    await self._send(message)
                except Exception as exc:
                    if waiter is not None and not waiter.done():
                        waiter.set_exception(exc)
                    raise
                self.sent += 1
                if waiter is not None and not waiter.done():
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
            if waiter is not None and not waiter.done():
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
