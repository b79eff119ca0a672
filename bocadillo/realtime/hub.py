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
import functools
import logging
import secrets
import threading
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Concatenate, ParamSpec, TypeVar

from ..closecodes import CloseCode
from ..errors import InvalidState, UnknownConnection
from ..types import ConnectionId, JSONValue, Send
from ._wire import BroadcastFrame, DisconnectFrame
from .admission import Admission, origin_allowed
from .backends import HubBackend, backend_from_url
from .bus import Bus
from .delivery import Groups, MessageCodec, deliver, encode_for, group, message_size
from .limits import HubLimits, OverflowPolicy, is_idle
from .outbox import Driver, Outbox
from .registry import ConnectionInfo, Counters, Registry
from .rooms import RoomFull, Rooms
from .session import CloseCallback, Session

__all__ = [
    "Hub",
    "HubLimits",
    "MessageCodec",
    "RoomFull",
    "Session",
    "encode_for",
    "message_size",
]

logger = logging.getLogger("bocadillo.hub")
T = TypeVar("T")
P = ParamSpec("P")


def new_connection_id() -> ConnectionId:
    """Return a new random, URL-safe connection id (16 characters, 96 bits)."""
    return ConnectionId(secrets.token_urlsafe(12))


async def _call(func: Callable[[], T]) -> T:
    return func()


def _on_loop(method: Callable[Concatenate[Hub, P], T]) -> Callable[Concatenate[Hub, P], T]:
    """Run the hub method on the hub's loop when called from a worker thread (sync
    socket handlers and jobs run in threads): the tables and outboxes are not
    thread-safe, for reads as for writes."""

    @functools.wraps(method)
    def wrapper(self: Hub, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self._thread is not None and threading.get_ident() != self._thread:
            return self._call_in_loop(lambda: method(self, *args, **kwargs))
        return method(self, *args, **kwargs)

    return wrapper


class Hub:
    """Every live WebSocket connection of one app.

    Args:
        backend: A ``HubBackend``, or a URL (``"redis://..."``); ``None`` for memory.
        backend_options: Keyword options for a backend made from a URL (for Redis:
            ``prefix``, ``heartbeat_ttl``...); ignored when ``backend`` is an instance.
        limits: Connection, room, rate, size and idle limits.
        id_generator: Makes connection ids (default: 16 random URL-safe characters).
        clock: Returns the time in seconds (``time.time`` by default); the rate limits,
            ``last_activity`` and the idle sweeper read it.
    """

    def __init__(
        self,
        backend: HubBackend | str | None = None,
        *,
        backend_options: dict[str, Any] | None = None,
        limits: HubLimits | None = None,
        id_generator: Callable[[], str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend: HubBackend = (
            backend
            if isinstance(backend, HubBackend)
            else backend_from_url(backend, **(backend_options or {}))
        )
        self.limits = limits or HubLimits()
        self.id_generator = id_generator
        self.clock = clock
        self.counters = Counters()
        #: Payload encodings done by deliveries (one per codec per delivery).
        self.encodes = 0
        self.bus = Bus(
            self.backend,
            self.counters,
            on_broadcast=self._deliver_frame,
            on_disconnect=self._disconnect_frame,
        )
        self._registry: Registry[Session] = Registry()
        self._rooms: Rooms[str] = Rooms()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Bound once, shared by every session's outbox.
        self._on_overflow = self._overflowed
        self._on_send_error = self._send_failed
        self._on_drop = self._dropped
        self._driver = Driver()
        #: The recipients of each room broadcast to, by codec, kept until its
        #: membership changes.
        self._room_groups: dict[str, Groups] = {}
        #: Slots held by admitted connections that have not registered yet.
        self.slots = Admission()
        self._accepting = True
        self._idle_task: asyncio.Task[None] | None = None
        #: The loop the hub runs on and its thread (set at startup), so that sync code
        #: running in a worker thread can still use the hub.
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    @property
    def distributed(self) -> bool:
        """Whether other processes share this hub's connections (frames are published)."""
        return self.bus.distributed

    # Lifecycle ------------------------------------------------------------------------------

    @property
    def accepting(self) -> bool:
        """False once shutdown has begun: new connections are refused."""
        return self._accepting

    async def startup(self) -> None:
        """Start the backend and the idle sweeper. Called at app startup."""
        if self._loop is not None:
            return
        await self.backend.start(self.bus.received)
        self._loop = asyncio.get_running_loop()
        self._thread = threading.get_ident()
        self._accepting = True
        if self.limits.idle_timeout is not None:
            self._idle_task = self._loop.create_task(self._sweep_idle(self.limits.idle_timeout))

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
        if self._idle_task is not None:
            self._idle_task.cancel()
            await asyncio.gather(self._idle_task, return_exceptions=True)
            self._idle_task = None
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._loop is not None:
            await self.backend.stop()
        self._loop = None
        self._thread = None

    def _call_in_loop(self, func: Callable[[], T]) -> T:
        """Run ``func()`` on the hub's loop, from another thread, and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_call(func), self._loop).result()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
            outbox_limit, overflow: The outbox's size and policy (default: the limits').
        """
        return Session(
            self,
            conn_id,
            send,
            codec=codec,
            close=close,
            path=path,
            remote_address=remote_address,
            user_data=user_data,
            outbox_limit=outbox_limit,
            overflow=overflow,
        )

    def register(
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
        """Register a connection at once, without admission (for transports of your own);
        ``unregister`` it when it ends.

        Raises:
            InvalidState: if the id is already registered.
        """
        session = self.session(
            conn_id,
            send,
            codec=codec,
            close=close,
            path=path,
            remote_address=remote_address,
            user_data=user_data,
            outbox_limit=outbox_limit,
            overflow=overflow,
        )
        self._add(session)
        return session

    def origin_allowed(self, origin: str | None) -> bool:
        """Whether a handshake with this ``Origin`` header may proceed."""
        return origin_allowed(self.limits.allowed_origins, origin)

    def _refusal(self, ip: str | None) -> CloseCode | None:
        """The close code refusing a new connection from ``ip`` now, or None."""
        limits = self.limits
        code = self.slots.refusal(
            ip,
            accepting=self._accepting,
            live=len(self._registry),
            live_from_ip=self._registry.count_for_ip(ip) if ip is not None else 0,
            max_connections=limits.max_connections,
            max_per_ip=limits.max_connections_per_ip,
        )
        return None if code is None else CloseCode(code)

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
        session = self._registry.remove(conn_id)
        if session is None:
            return
        session.registered = False
        session.close()
        for room in self._rooms.leave_all(conn_id):
            self._room_groups.pop(room, None)
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
        self.counters.dropped += 1

    def _send_failed(self, outbox: Outbox, exc: BaseException) -> None:
        self.counters.errors += 1
        logger.debug("send to %s failed: %r", getattr(outbox, "id", "?"), exc)

    # Queries: this process ------------------------------------------------------------------

    @property
    def local_count(self) -> int:
        """Live connections in this process."""
        return len(self._registry)

    @property
    def local_ids(self) -> list[ConnectionId]:
        """Ids of the live connections in this process."""
        return [ConnectionId(i) for i in self._call_here(lambda: self._registry.ids)]

    @property
    def local_rooms(self) -> frozenset[str]:
        """Non-empty rooms in this process."""
        return self._call_here(lambda: self._rooms.names)

    def _call_here(self, func: Callable[[], T]) -> T:
        if self._thread is not None and threading.get_ident() != self._thread:
            return self._call_in_loop(func)
        return func()

    @_on_loop
    def is_connected(self, conn_id: str) -> bool:
        """Whether ``conn_id`` is a live connection of this process."""
        return conn_id in self._registry

    @_on_loop
    def connection(self, conn_id: str) -> Session:
        """The session of a live connection of this process.

        Raises:
            UnknownConnection: if there is none with that id.
        """
        session = self._registry.get(conn_id)
        if session is None:
            raise UnknownConnection(f"no connection with id {conn_id!r}")
        return session

    @_on_loop
    def info(self, conn_id: str) -> ConnectionInfo:
        """What the hub knows about a connection of this process (rooms included).

        Raises:
            UnknownConnection: if there is none with that id.
        """
        session = self.connection(conn_id)
        return session.info(self._rooms.rooms_of(session.id))

    @_on_loop
    def filter(self, predicate: Callable[[ConnectionInfo], bool]) -> list[ConnectionId]:
        """Ids of the connections of this process whose info satisfies ``predicate``."""
        rooms_of = self._rooms.rooms_of
        chosen = self._registry.filter(lambda s: predicate(s.info(rooms_of(s.id))))
        return [session.id for session in chosen]

    @_on_loop
    def local_members(self, room: str) -> frozenset[str]:
        """Members of ``room`` in this process."""
        return self._rooms.members(room)

    @_on_loop
    def local_rooms_of(self, conn_id: str) -> frozenset[str]:
        """Rooms of a connection of this process."""
        return self._rooms.rooms_of(conn_id)

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
    count = local_count
    ids = local_ids
    rooms = local_rooms
    members = local_members
    rooms_of = local_rooms_of
    connection_count = global_count
    room_members = global_members
    connection_rooms = global_rooms_of

    # Rooms ----------------------------------------------------------------------------------

    @_on_loop
    def join(self, conn_id: str, room: str) -> None:
        """Put a connection in ``room`` (created on first join).

        Raises:
            UnknownConnection: if there is no such connection.
            RoomFull: if the room has ``max_room_members`` members.
        """
        self.connection(conn_id)
        self._rooms.join(conn_id, room, limit=self.limits.max_room_members)
        self._room_groups.pop(room, None)
        self.backend.room_joined(conn_id, room)

    @_on_loop
    def leave(self, conn_id: str, room: str) -> None:
        """Take a connection out of ``room`` (no-op if it is not in it)."""
        self._rooms.leave(conn_id, room)
        self._room_groups.pop(room, None)
        self.backend.room_left(conn_id, room)

    # Delivery -------------------------------------------------------------------------------

    def _deliver(self, groups: Groups, data: JSONValue, kind: str | None) -> int:
        delivered, size = deliver(groups, data, kind)
        self.encodes += len(groups)
        counters = self.counters
        counters.messages_sent += delivered
        counters.bytes_sent += size
        return delivered

    @_on_loop
    def send(self, conn_id: str, data: JSONValue, *, type: str | None = None) -> bool:
        """Hand ``data`` to one connection (never waits for the client).

        Returns:
            True if a connection of this process took it, or, with a shared backend,
            if the id is not local and the message was published for the others;
            False if it is not here (memory backend) or its outbox dropped it.
        """
        session = self._registry.get(conn_id)
        if session is None:
            if not self.distributed:
                return False
            self.bus.publish(BroadcastFrame(data, type, None, (conn_id,)))
            return True
        return self._deliver([(session.codec, [session])], data, type) == 1

    @_on_loop
    def broadcast(
        self,
        data: JSONValue,
        *,
        type: str | None = None,
        room: str | None = None,
        to: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
    ) -> int:
        """Hand ``data`` to many connections at once (never waits for a client).

        Args:
            data: The payload, encoded once per codec.
            type: The event type for message-type (envelope) connections.
            room: Only the members of this room.
            to: Only these connection ids.
            exclude: Not these connection ids.

        Returns:
            How many connections of this process took the message. With a shared
            backend the frame is also published for the other processes, whose
            deliveries are not counted here.

        Raises:
            TypeError, ValueError: if ``data`` cannot be encoded (nothing is sent).
        """
        wanted = None if to is None else tuple(dict.fromkeys(to))  # each id once
        excluded = tuple(exclude) if exclude else ()
        groups = self._groups(room, wanted, excluded)
        if self.distributed and (wanted is None or any(i not in self._registry for i in wanted)):
            # Some recipients may live in other processes: publish once for all of them,
            # before the local delivery, so that bad data fails before any send.
            self.bus.publish(BroadcastFrame(data, type, room, wanted, excluded))
        return self._deliver(groups, data, type)

    def _groups(
        self, room: str | None, to: tuple[str, ...] | None, exclude: Iterable[str]
    ) -> Groups:
        """This process's recipients, by codec, of a broadcast to ``room`` and/or ``to``
        (less ``exclude``)."""
        registry = self._registry
        if to is not None:
            targets = (session for session in map(registry.get, to) if session is not None)
            if room is not None:
                members = self._rooms.members(room)
                targets = (session for session in targets if session.id in members)
            groups = group(targets)
        elif room is not None:
            # Kept until the room's membership changes (join, leave, disconnect): a
            # steady room is broadcast to without a lookup per member.
            cached = self._room_groups.get(room)
            if cached is None:
                found = map(registry.get, self._rooms.members_view(room))
                cached = group(session for session in found if session is not None)
                if cached:
                    self._room_groups[room] = cached
            groups = cached
        else:
            groups = group(registry.values())
        if not exclude:
            return groups
        excluded = set(exclude)
        return [
            (codec, [session for session in members if session.id not in excluded])
            for codec, members in groups
        ]

    async def disconnect(
        self,
        conn_id: str,
        code: int = CloseCode.NORMAL_CLOSURE,
        reason: str = "",
        *,
        message: JSONValue = None,
        type: str | None = None,
        timeout: float = 5.0,
    ) -> bool:
        """Close a connection, optionally after a last message.

        Returns:
            False if there is no such connection in this process; with a shared
            backend, a non-local id is published for the process that has it, and the
            result is True.
        """
        session = self._registry.get(conn_id)
        if session is None:
            if not self.distributed:
                return False
            self.bus.publish(DisconnectFrame(conn_id, code, reason, message, type, timeout))
            return True
        if message is not None:
            self._deliver([(session.codec, [session])], message, type)
        await session.wait_drained(timeout)
        await session.close_connection(code, reason)
        return True

    def _deliver_frame(self, frame: BroadcastFrame) -> None:
        groups = self._groups(frame.room, frame.to, frame.exclude)
        if groups:
            self._deliver(groups, frame.data, frame.type)

    def _disconnect_frame(self, frame: DisconnectFrame) -> None:
        if frame.conn_id in self._registry:
            self._spawn(
                self.disconnect(
                    frame.conn_id,
                    frame.code,
                    frame.reason,
                    message=frame.message,
                    type=frame.type,
                    timeout=frame.timeout,
                )
            )

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

    # Stats ----------------------------------------------------------------------------------

    @_on_loop
    def stats(self) -> dict[str, Any]:
        """Counters for monitoring: connections, rooms, messages and bytes, drops..."""
        return {
            "connections": len(self._registry),
            "rooms": len(self._rooms),
            **self.counters.as_dict(),
            "encodes": self.encodes,
            "backend": self.backend.stats(),
        }
