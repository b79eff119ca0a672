"""The hub: every live WebSocket of an app, its rooms, delivery, limits and shutdown.

This is the asyncio layer that drives the pure parts (``registry``, ``rooms``,
``limits``, ``admission``, ``envelope``, ``_wire``). It does not know about HTTP or the
``WebSocket`` class: each connection is a ``Session`` (``session.py``) made by
``hub.session(...)``, which owns its life from admission to its end.

Queries say what they cover: ``local_*`` ones (plain attributes and methods) answer for
this process; ``global_*`` ones (coroutines) ask the backend about every process.
Delivery never awaits a client (``delivery.py``); what may concern other processes
crosses through the bus (``bus.py``).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import threading
import time
from collections.abc import Callable
from typing import Any

from ..closecodes import CloseCode
from ..errors import ConfigurationError, InvalidState
from ..types import ConnectionId, JSONValue, Send
from .admission import Admission, origin_allowed
from .backends import HubBackend, backend_from_url
from .delivery import MessageCodec, encode_for, group, message_size
from .directory import on_loop
from .history import RoomRules
from .limits import HubLimits, OverflowPolicy, RateLimiter, is_idle
from .outbox import Driver, Outbox
from .rooms import RoomFull
from .session import CloseCallback, Session
from .streams import Streams

__all__ = [
    "Hub",
    "HubLimits",
    "MessageCodec",
    "RoomFull",
    "Session",
    "encode_for",
    "message_size",
    "new_connection_id",
]

logger = logging.getLogger("bocadillo.hub")


def new_connection_id() -> ConnectionId:
    """Return a new random, URL-safe connection id (16 characters, 96 bits)."""
    return ConnectionId(secrets.token_urlsafe(12))


class Hub(Streams):
    """Every live WebSocket connection of one app.

    Its tables and ``local_*`` queries come from ``Directory`` (``directory.py``), its
    ``send``/``broadcast``/``disconnect`` from ``Delivery`` (``delivery.py``), history,
    resume, presence and requests from ``Streams`` (``streams.py``); the hub adds the
    lifecycle, the sessions and the queries about every process.

    Args:
        backend: A ``HubBackend``, or a URL (``"redis://..."``); ``None`` for memory.
        backend_options: Keyword options for a backend made from a URL (for Redis:
            ``prefix``, ``heartbeat_ttl``...); ignored when ``backend`` is an instance.
        limits: Connection, room, rate, size and idle limits.
        id_generator: Makes connection ids (default: 16 random URL-safe characters).
        clock: Returns the time in seconds (``time.time`` by default); the rate limits,
            ``last_activity``, the idle sweeper and room history read it.
        rooms: Which rooms keep history and emit presence events (default: none).
    """

    def __init__(
        self,
        backend: HubBackend | str | None = None,
        *,
        backend_options: dict[str, Any] | None = None,
        limits: HubLimits | None = None,
        id_generator: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
        rooms: RoomRules | None = None,
    ) -> None:
        super().__init__(
            backend
            if isinstance(backend, HubBackend)
            else backend_from_url(backend, **(backend_options or {})),
            limits,
            clock,
        )
        self._start_delivery()
        self._start_streams(rooms)
        self.id_generator = id_generator
        # Bound once, shared by every session's outbox.
        self._on_overflow = self._overflowed
        self._on_send_error = self._send_failed
        self._on_drop = self._dropped
        self._driver = Driver()
        #: Slots held by admitted connections that have not registered yet.
        self.slots = Admission()
        self._accepting = True
        self._idle_task: asyncio.Task[None] | None = None
        self._history_task: asyncio.Task[None] | None = None

    # Lifecycle ------------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """False once shutdown has begun: new connections are refused."""
        return self._accepting

    async def startup(self) -> None:
        """Start the backend, the idle sweeper and the history pruner. Called at app
        startup.

        Raises:
            ConfigurationError: if rooms keep history on a shared backend that cannot
                keep it for every process.
        """
        if self._loop is not None:
            return
        if self.distributed and self.rules.any_history and not self.backend.keeps_history:
            raise ConfigurationError(
                f"{type(self.backend).__name__} does not keep room history for every "
                "process: set history_size=0, or use a backend that does (Redis, NATS)"
            )
        if self.backend.keeps_history:
            self.backend.publication_sink = self._publication_arrived
        await self.backend.start(self.bus.received)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._accepting = True
        if self.limits.idle_timeout is not None:
            self._idle_task = self._loop.create_task(self._sweep_idle(self.limits.idle_timeout))
        if self.rules.any_history:
            self._history_task = self._loop.create_task(self._prune_history())

    async def shutdown(
        self, message: JSONValue = None, timeout: float = 5.0, *, kind: str = "shutdown"
    ) -> None:
        """Close every connection gracefully.

        New connections are refused from now on; every client gets ``message`` (if
        given, as a ``kind`` event); outboxes drain for up to ``timeout`` seconds; then
        every connection is closed with 1001 (going away).
        """
        self._accepting = False
        sessions = list(self._registry.values())
        if message is not None:
            self._deliver(group(sessions), message, kind)
        if sessions:
            await asyncio.gather(
                *(session.wait_drained(timeout) for session in sessions), return_exceptions=True
            )
            closes = [
                asyncio.wait_for(
                    session.close_connection(CloseCode.GOING_AWAY, "server shutdown"), timeout
                )
                for session in sessions
            ]
            await asyncio.gather(*closes, return_exceptions=True)
        for task in (self._idle_task, self._history_task):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        self._idle_task = self._history_task = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._loop is not None:
            await self.backend.stop()
        self._loop = None
        self._thread = None

    # Sessions -------------------------------------------------------------------------------

    def new_id(self) -> ConnectionId:
        """A new connection id: from the app's id generator if it has one, else random."""
        if self.id_generator is None:
            return new_connection_id()
        return ConnectionId(str(self.id_generator()))

    def session(
        self,
        conn_id: ConnectionId,
        send: Send,
        *,
        codec: MessageCodec,
        close: CloseCallback,
        path: str,
        remote_address: str | None,
        user_data: dict[str, Any] | None = None,
        outbox_limit: int | None = None,
        overflow: OverflowPolicy | None = None,
    ) -> Session:
        """Start the life of one connection: call ``admit()``, ``register()`` at accept,
        and end it with ``async with`` (see ``session.py``).

        Args:
            conn_id: The connection id (``new_id()``).
            send: The connection's ASGI ``send``.
            codec: How deliveries are encoded for it.
            close: Closes the connection with a code and a reason.
            path: The request path (for ``info``).
            remote_address: The client's IP, for per-IP caps.
            user_data: The connection's user data (``ws.state``).
            outbox_limit: The outbox's size (default: the limits').
            overflow: The outbox's overflow policy (default: the limits').
        """
        limits = self.limits
        rate = None
        if limits.rate_limit is not None:
            count, window = limits.rate_limit
            rate = RateLimiter(count, window, limits.rate_limit_violations)
        return Session(
            self,
            conn_id,
            send,
            codec,
            close,
            (path, remote_address),
            user_data if user_data is not None else {},
            (outbox_limit or limits.outbox_limit, overflow or limits.overflow),
            rate,
        )

    def origin_allowed(self, origin: str | None, host: str | None) -> bool:
        """Whether a handshake with these ``Origin`` and ``Host`` headers may proceed
        (see ``admission.origin_allowed``)."""
        limits = self.limits
        return origin_allowed(limits.allowed_origins, origin, host, limits.allowed_hosts)

    def _refusal(self, ip: str | None) -> CloseCode | None:
        """The close code refusing a new connection from ``ip`` now, or None."""
        limits = self.limits
        return self.slots.refusal(
            ip,
            accepting=self._accepting,
            live=len(self._registry),
            live_from_ip=self._registry.count_for_ip(ip) if ip is not None else 0,
            max_connections=limits.max_connections,
            max_per_ip=limits.max_connections_per_ip,
        )

    def _add(self, session: Session) -> None:
        try:
            self._registry.add(session.id, session, session.remote_address)
        except KeyError:
            raise InvalidState(f"connection id {session.id!r} is already registered") from None
        session.connected_at = session.last_activity = self.clock()
        session.registered = True
        session.task = asyncio.current_task()
        self.counters.connections_total += 1
        self.backend.connection_added(session.id)

    def unregister(self, conn_id: str) -> None:
        """Forget a connection and leave all its rooms (called when it ends)."""
        session = self._registry.get(conn_id)
        if session is None:
            return
        self._leave_all(conn_id)  # while it is registered: leave events name its user
        self._registry.remove(conn_id)
        session.registered = False
        session.close()
        self.backend.connection_removed(conn_id)
        if not session.idle:
            self._spawn(session.aclose())

    def _overflowed(self, outbox: Outbox) -> None:
        assert isinstance(outbox, Session)
        logger.info("closing slow client %s: its outbox is full", outbox.id)
        self._spawn(self._force_close(outbox, CloseCode.TRY_AGAIN_LATER, "too slow"))

    async def _force_close(self, session: Session, code: int, reason: str) -> None:
        await session.aclose()
        try:
            await asyncio.wait_for(session.close_connection(code, reason), 1.0)
        except asyncio.TimeoutError:
            # The client reads nothing, so not even the close frame gets through: end its
            # handler (which ends quietly, see ``Session.aborted``); the server then
            # drops the TCP connection.
            task = session.task
            if task is not None and not task.done():
                session.aborted = True
                task.cancel()
        self.unregister(session.id)

    def _dropped(self, outbox: Outbox) -> None:
        self.counters.drop(outbox.policy)

    def _send_failed(self, outbox: Outbox, exc: BaseException) -> None:
        self.counters.errors += 1
        logger.debug("send to %s failed: %r", getattr(outbox, "id", "?"), exc)

    # Queries: every process (through the backend) -------------------------------------------

    async def global_count(self) -> int:
        """Live connections across every process."""
        return await self.bus.count()

    async def global_members(self, room: str) -> set[str]:
        """Members of ``room`` across every process."""
        return await self.bus.members(room)

    async def global_rooms_of(self, conn_id: str) -> set[str]:
        """Rooms of a connection wherever it lives."""
        if conn_id in self._registry:
            return set(self._rooms.rooms_of(conn_id))
        return await self.bus.rooms_of(conn_id)

    # The names of Bocadillo 0.x and of the first hub releases, kept as aliases.
    count = Streams.local_count
    ids = Streams.local_ids
    rooms = Streams.local_rooms
    members = Streams.local_members
    rooms_of = Streams.local_rooms_of
    connection_count = global_count
    room_members = global_members
    connection_rooms = global_rooms_of

    # Idle sweeper ---------------------------------------------------------------------------

    async def _sweep_idle(self, timeout: float) -> None:
        period = max(min(timeout / 4, 1.0), 0.01)
        while True:
            await asyncio.sleep(period)
            self.close_idle()

    def close_idle(self) -> int:
        """Close (with 1001) every connection idle for ``idle_timeout`` by the hub's clock.

        The hub calls it periodically while ``idle_timeout`` is set.

        Returns:
            How many connections it started closing.
        """
        now = self.clock()
        timeout = self.limits.idle_timeout
        idle = self._registry.filter(lambda s: is_idle(now, s.last_activity, timeout))
        for session in idle:
            logger.info("closing idle connection %s", session.id)
            session.last_activity = now  # do not close it twice
            self._spawn(session.close_connection(CloseCode.GOING_AWAY, "idle timeout"))
        return len(idle)

    async def _prune_history(self) -> None:
        """Forget expired publications (memory stays bounded by the history settings)."""
        period = min(max(min(o.history_ttl for o in self._ttls()) / 4, 0.05), 30.0)
        while True:
            await asyncio.sleep(period)
            self.histories.prune(self.clock())

    def _ttls(self) -> list[Any]:
        rules = self.rules
        return [rules.default, *(options for _, options in rules.patterns)]

    # Stats ----------------------------------------------------------------------------------

    @on_loop
    def stats(self) -> dict[str, Any]:
        """Counters for monitoring: connections, rooms, messages and bytes, drops..."""
        return {
            "connections": len(self._registry),
            "rooms": len(self._rooms),
            **self.counters.as_dict(),
            "encodes": self.encodes,
            "backend": self.backend.stats(),
        }
