"""One connection's life in the hub: admission, registration, limits, counters, the end.

A ``Session`` is made by ``hub.session(...)`` for each WebSocket handshake and owns
everything the hub knows about that connection, from the first decision to the last:

1. ``admit(origin)``: may it connect? (shutdown, origins, connection caps). An admitted
   session holds a slot, so handshakes that have not finished count against the caps.
2. ``register()``, at accept: it becomes a live connection of the hub (the slot is
   given back), reachable by id, by room and by broadcast.
3. ``received(size)`` for each inbound frame: it counts the frame and says what to do
   (see ``limits.inbound``); ``send(message)`` for the connection's own sends.
4. ``async with session:`` ends it, whatever ended the connection: the slot is given
   back or the connection unregistered (its rooms left, its outbox closed).

It is also the connection's bounded outbox (see ``outbox.py``), so a broadcast touches
one object per recipient, and it keeps the connection's counters, in one place.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..closecodes import CloseCode
from ..errors import InvalidState, RequestFailed, RequestTimeout
from ..types import ConnectionId, Message, Send
from .delivery import MessageCodec, message_size
from .envelope import encode_envelope
from .limits import Inbound, OverflowPolicy, RateLimiter, inbound
from .outbox import Outbox
from .registry import ConnectionInfo

if TYPE_CHECKING:
    from .hub import Hub

__all__ = ["CloseCallback", "Refusal", "Session"]

logger = logging.getLogger("bocadillo.hub")
#: Closes the connection with a code and a reason (the WebSocket's own close).
CloseCallback = Callable[[int, str], Awaitable[None]]


@dataclass(frozen=True)
class Refusal:
    """Why a connection may not be accepted.

    ``close`` is None when the handshake must be rejected (the client gets an HTTP 403);
    otherwise the connection is accepted and closed at once with that code, so that the
    client can read it (1013: try again later; 1001: the server is going away).
    """

    close: CloseCode | None
    reason: str = ""


_FORBIDDEN_ORIGIN = Refusal(None, "origin not allowed")
_REFUSALS = {
    CloseCode.TRY_AGAIN_LATER: Refusal(CloseCode.TRY_AGAIN_LATER, "server busy"),
    CloseCode.GOING_AWAY: Refusal(CloseCode.GOING_AWAY, "shutting down"),
}


class Session(Outbox):
    """One connection, from admission to its end (see the module docstring).

    Made by ``Hub.session``, which resolves its settings from the hub's limits.
    """

    __slots__ = (
        "_close",
        "_hub",
        "_slot",
        "aborted",
        "bytes_received",
        "codec",
        "connected_at",
        "id",
        "last_activity",
        "messages_received",
        "path",
        "rate",
        "registered",
        "remote_address",
        "_request_seq",
        "_requests",
        "task",
        "user",
        "user_data",
    )

    def __init__(
        self,
        hub: Hub,
        conn_id: ConnectionId,
        send: Send,
        codec: MessageCodec,
        close: CloseCallback,
        where: tuple[str, str | None],
        user_data: dict[str, Any],
        outbox: tuple[int, OverflowPolicy],
        rate: RateLimiter | None,
    ) -> None:
        limit, policy = outbox
        super().__init__(
            send,
            limit=limit,
            policy=policy,
            on_overflow=hub._on_overflow,
            on_error=hub._on_send_error,
            on_drop=hub._on_drop,
            driver=hub._driver,
        )
        self._hub = hub
        self.id = conn_id
        self.codec: MessageCodec = codec
        self._close = close
        #: The request path and the client's IP.
        self.path, self.remote_address = where
        self.user_data = user_data
        self.rate = rate
        self.connected_at = 0.0
        self.last_activity = 0.0
        self.messages_received = 0
        self.bytes_received = 0
        #: Whether the hub knows it as a live connection.
        self.registered = False
        self._slot = False
        #: The task serving the connection (cancelled if it cannot even be closed).
        self.task: asyncio.Task[Any] | None = None
        #: The hub cancelled that task: its handler must end quietly.
        self.aborted = False
        #: Who the connection is, for presence (``ws.user``): any JSON value.
        self.user: Any = None
        # Server-to-client requests waiting for their reply, by id (made on first use).
        self._requests: dict[str, asyncio.Future[Any]] | None = None
        self._request_seq = 0

    # Admission and registration ---------------------------------------------------------

    def admit(self, origin: str | None, host: str | None) -> Refusal | None:
        """Decide whether the connection may be accepted; if so, hold a slot for it.

        Args:
            origin, host: The handshake's ``Origin`` and ``Host`` headers.

        Returns:
            None to go on (then call ``register()`` at accept), or the refusal.
        """
        hub = self._hub
        if not hub.origin_allowed(origin, host):
            hub.counters.reject("origin")
            logger.info("rejecting WebSocket %s from origin %r", self.path, origin)
            return _FORBIDDEN_ORIGIN
        code = hub._refusal(self.remote_address)
        if code is not None:
            hub.counters.reject("busy" if code == CloseCode.TRY_AGAIN_LATER else "shutdown")
            return _REFUSALS[code]
        hub.slots.hold(self.remote_address)
        self._slot = True
        return None

    def register(self) -> None:
        """Make it a live connection of the hub (at accept).

        Raises:
            InvalidState: if its id is already registered.
        """
        self._give_back_slot()
        self._hub._add(self)

    def _give_back_slot(self) -> None:
        if self._slot:
            self._slot = False
            self._hub.slots.release(self.remote_address)

    async def __aenter__(self) -> Session:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        self.end()

    def end(self) -> None:
        """The connection is over: give back its slot, or unregister it."""
        self._give_back_slot()
        if self.registered:
            self._hub.unregister(self.id)

    # Traffic ----------------------------------------------------------------------------

    def received(self, size: int) -> Inbound | None:
        """Count a received frame of ``size`` bytes and apply the size and rate limits.

        Returns:
            None to deliver it, else what to do instead (see ``limits.inbound``).
        """
        hub = self._hub
        now = hub.clock()
        self.messages_received += 1
        self.bytes_received += size
        self.last_activity = now
        counters = hub.counters
        counters.messages_received += 1
        counters.bytes_received += size
        max_size = hub.limits.max_message_size
        if (max_size is None or size <= max_size) and self.rate is None:
            return None  # the common case, decided without a call
        verdict = inbound(size, now, max_size=max_size, rate=self.rate)
        if verdict is not None and verdict.close is not CloseCode.MESSAGE_TOO_BIG:
            counters.dropped += 1  # refused by the rate limit
        return verdict

    def send(self, message: Message, size: int | None = None) -> Awaitable[None]:
        """Send the connection's own ``message`` in order with what the hub queued for it.

        Raises:
            OSError: if the connection is gone (when called, or when awaited).
        """
        if size is None:
            size = message_size(message)
        counters = self._hub.counters
        counters.messages_sent += 1
        counters.bytes_sent += size
        return Outbox.send(self, message, size)  # its awaitable, not a frame of our own

    async def close_connection(self, code: int, reason: str = "") -> None:
        """Close the connection itself (errors of a dead transport are ignored).

        ``close()``, inherited from ``Outbox``, only stops the outbox."""
        try:
            await self._close(code, reason)
        except Exception:  # the client is gone or already closed: nothing left to do
            logger.debug("closing %s failed", self.id, exc_info=True)

    # Requests to the client ----------------------------------------------------------------

    async def request(self, type: str, data: Any, timeout: float) -> Any:
        """Send ``{"type", "data", "id"}`` with a fresh id and return the client's reply.

        The client answers ``{"type": "response", "data": ..., "id": <that id>}`` (or an
        ``error`` envelope with the id).

        Raises:
            InvalidState: if the connection is not a message-type one, or the call comes
                from the connection's own receive loop (it would wait for a reply that
                loop cannot read).
            RequestTimeout: if no reply came within ``timeout`` seconds.
            RequestFailed: if the client answered with an error envelope.
            OSError: if the connection is gone.
        """
        if self.codec != "envelope":
            raise InvalidState("server-to-client requests need a message-type connection")
        if self.task is not None and asyncio.current_task() is self.task:
            raise InvalidState(
                "ws.request() from the connection's own handler would wait for a reply that "
                "its receive loop cannot read: run it in another task "
                "(asyncio.create_task), or from another connection, a job or a view"
            )
        self._request_seq += 1
        request_id = f"s{self._request_seq}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        if self._requests is None:
            self._requests = {}
        self._requests[request_id] = future
        text = encode_envelope(type, data, request_id)
        try:
            await asyncio.wait_for(self._ask(text, future), timeout)
            return future.result()
        except asyncio.TimeoutError:
            raise RequestTimeout(type, timeout) from None
        finally:
            self._requests.pop(request_id, None)

    async def _ask(self, text: str, future: asyncio.Future[Any]) -> None:
        await self.send({"type": "websocket.send", "text": text})
        await asyncio.shield(future)

    def answer(self, kind: str, data: Any, request_id: object) -> bool:
        """Resolve the pending request ``request_id`` with a client's reply.

        Returns:
            False if no request with that id is pending (an unknown or repeated reply).
        """
        if not isinstance(request_id, str) or not self._requests:
            return False
        future = self._requests.pop(request_id, None)
        if future is None or future.done():
            return False
        if kind == "error":
            details = data if isinstance(data, dict) else {}
            code, message = details.get("code"), details.get("message")
            future.set_exception(RequestFailed(str(code), str(message)))
        else:
            future.set_result(data)
        return True

    # Views ------------------------------------------------------------------------------

    @property
    def outbox(self) -> Outbox:
        """The connection's outbox (the session itself)."""
        return self

    def info(self, rooms: frozenset[str]) -> ConnectionInfo:
        """A snapshot of what is known about the connection."""
        return ConnectionInfo(
            id=self.id,
            path=self.path,
            remote_address=self.remote_address,
            connected_at=self.connected_at,
            last_activity=self.last_activity,
            messages_received=self.messages_received,
            messages_sent=self.messages_sent,
            bytes_received=self.bytes_received,
            bytes_sent=self.bytes_sent,
            user_data=self.user_data,
            rooms=rooms,
        )

    def __repr__(self) -> str:
        return f"<Session {self.id} {self.path}>"
