"""The hub: every live WebSocket of an app, rooms, delivery, limits and shutdown.

This is the asyncio layer that drives the pure parts (``registry``, ``rooms``,
``limits``, ``envelope``, ``_wire``) and the outboxes. It does not know about HTTP or
the ``WebSocket`` class: a connection registers with its ASGI ``send``, its codec and a
``close`` callback (see ``connection.py``).

Delivery never awaits a client: ``send`` and ``broadcast`` encode the payload once per
codec, hand the ASGI message to each recipient's bounded outbox and return how many
recipients took it. With a shared backend (Redis), what may concern connections of
other processes is also published once, as a frame, for their hubs to deliver.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ..errors import InvalidState, UnknownConnection
from ..types import ConnectionId, JSONValue, Send
from ._wire import BroadcastFrame, DisconnectFrame, WireError, decode_frame, encode_frame
from .admission import GOING_AWAY, TRY_AGAIN_LATER, Admission, origin_allowed
from .backends import HubBackend, backend_from_url
from .connection import (
    CloseCallback,
    Connection,
    HubLimits,
    MessageCodec,
    encode_for,
    message_size,
)
from .limits import RateLimiter
from .outbox import Driver, Outbox, OverflowPolicy
from .registry import ConnectionInfo, Counters, Registry
from .rooms import RoomFull, Rooms

__all__ = [
    "Connection",
    "Hub",
    "HubLimits",
    "MessageCodec",
    "RoomFull",
    "encode_for",
    "message_size",
]

logger = logging.getLogger("bocadillo.hub")
#: Outboxes by the codec their connections take broadcasts in.
Groups = list[tuple[MessageCodec, list[Outbox]]]
T = TypeVar("T")


async def _call(func: Callable[[], T]) -> T:
    return func()


class Hub:
    """Every live WebSocket connection of one app.

    Args:
        backend: A ``HubBackend``, or a URL (``"redis://..."``); ``None`` for memory.
        backend_options: Keyword options for a backend made from a URL (for Redis:
            ``prefix``, ``heartbeat_ttl``...); ignored when ``backend`` is an instance.
        limits: Connection, room, rate, size and idle limits.
        id_generator: Makes connection ids (default: 16 random URL-safe characters).
        clock: Returns the time in seconds (``time.time`` by default).
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
        self._backend_spec = backend
        self.backend: HubBackend = (
            backend
            if isinstance(backend, HubBackend)
            else backend_from_url(backend, **(backend_options or {}))
        )
        #: Whether other processes share this hub's connections (frames are published).
        self.distributed = not self.backend.local_only
        self.limits = limits or HubLimits()
        self.id_generator = id_generator
        self.clock = clock
        self.counters = Counters()
        self.encodes = 0
        self._registry: Registry[Connection] = Registry()
        self._rooms: Rooms[str] = Rooms()
        self._tasks: set[asyncio.Task[Any]] = set()
        # Bound once, shared by every outbox (each finds its connection as ``owner``).
        self._on_overflow = self._overflowed
        self._on_send_error = self._send_failed
        self._on_drop = self._dropped
        self._driver = Driver()
        #: The outboxes of each room broadcast to, by codec, kept until its membership
        #: changes.
        self._room_groups: dict[str, Groups] = {}
        #: Slots held by admitted connections that have not registered yet.
        self.slots = Admission()
        self._started = False
        self._accepting = True
        self._idle_task: asyncio.Task[None] | None = None
        #: The loop the hub runs on (set at startup), so that sync code running in a
        #: worker thread (sync socket handlers and jobs) can still use the hub.
        self._loop: asyncio.AbstractEventLoop | None = None

    # Lifecycle ------------------------------------------------------------------------------

    @property
    def started(self) -> bool:
        return self._started

    @property
    def accepting(self) -> bool:
        """False once shutdown has begun: new connections are refused."""
        return self._accepting

    async def startup(self) -> None:
        """Start the backend and the idle sweeper. Called at app startup."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        await self.backend.start(self._deliver_remote)
        self._started = True
        self._accepting = True
        if self.limits.idle_timeout is not None:
            self._idle_task = asyncio.get_running_loop().create_task(self._sweep_idle())

    async def shutdown(
        self, message: JSONValue = None, timeout: float = 5.0, *, kind: str = "shutdown"
    ) -> None:
        """Close every connection gracefully.

        New connections are refused from now on; every client gets ``message`` (if
        given, as a ``kind`` event); outboxes drain for up to ``timeout`` seconds; then
        every connection is closed with 1001 (going away).
        """
        self._accepting = False
        connections = list(self._registry.values())
        if message is not None:
            self._deliver(_group(connections), message, kind)
        if connections:
            drains = [conn.outbox.wait_drained(timeout) for conn in connections]
            await asyncio.gather(*drains, return_exceptions=True)
            closes = [
                asyncio.wait_for(conn.close(GOING_AWAY, "server shutdown"), timeout)
                for conn in connections
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
        if self._started:
            await self.backend.stop()
        self._started = False
        self._loop = None

    def _in_worker_thread(self) -> bool:
        """Whether the caller runs outside the hub's loop (a sync handler's or job's thread)."""
        loop = self._loop
        if loop is None:
            return False
        try:
            return asyncio.get_running_loop() is not loop
        except RuntimeError:  # no running loop in this thread
            return True

    def _call_in_loop(self, func: Callable[[], T]) -> T:
        """Run ``func()`` on the hub's loop, from another thread, and return its result:
        the tables and outboxes are not thread-safe, and outboxes write through the loop."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_call(func), self._loop).result()

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Admission and registration -------------------------------------------------------------

    def check_origin(self, origin: str | None) -> bool:
        """Whether a handshake with this ``Origin`` header may proceed."""
        return origin_allowed(self.limits.allowed_origins, origin)

    def admission(self, ip: str | None) -> int | None:
        """The close code refusing a new connection from ``ip``, or None to admit it.

        Connections admitted but not yet registered (``reserve``) count against the caps.
        """
        limits = self.limits
        return self.slots.refusal(
            ip,
            accepting=self._accepting,
            live=len(self._registry),
            live_from_ip=self._registry.count_for_ip(ip) if ip is not None else 0,
            max_connections=limits.max_connections,
            max_per_ip=limits.max_connections_per_ip,
        )

    def reserve(self, ip: str | None) -> None:
        """Hold a slot for an admitted connection until it registers or ends (``release``)."""
        self.slots.hold(ip)

    def release(self, ip: str | None) -> None:
        """Give back a slot held by ``reserve``."""
        self.slots.release(ip)

    def new_id(self) -> ConnectionId:
        """A new connection id from the id generator (None if there is no custom one)."""
        if self.id_generator is None:
            raise LookupError("no custom id generator")
        return ConnectionId(str(self.id_generator()))

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
    ) -> Connection:
        """Register an accepted connection.

        Raises:
            InvalidState: if the id is already registered.
        """
        now = self.clock()
        info = ConnectionInfo(
            id=conn_id,
            path=path,
            remote_address=remote_address,
            connected_at=now,
            last_activity=now,
            user_data=user_data if user_data is not None else {},
        )
        outbox = Outbox(
            send,
            limit=outbox_limit or self.limits.outbox_limit,
            policy=overflow or self.limits.overflow,
            on_overflow=self._on_overflow,
            on_error=self._on_send_error,
            on_drop=self._on_drop,
            driver=self._driver,
        )
        rate = None
        if self.limits.rate_limit is not None:
            count, window = self.limits.rate_limit
            rate = RateLimiter(count, window, self.limits.rate_limit_violations)
        conn = outbox.owner = Connection(conn_id, info, outbox, codec, close, rate)
        try:
            self._registry.add(conn_id, conn, remote_address)
        except KeyError:
            raise InvalidState(f"connection id {conn_id!r} is already registered") from None
        conn.task = asyncio.current_task()
        self.counters.connections_total += 1
        self.backend.connection_added(conn_id)
        return conn

    def unregister(self, conn_id: str) -> None:
        """Forget a connection and leave all its rooms (called when it ends)."""
        conn = self._registry.remove(conn_id)
        if conn is None:
            return
        conn.outbox.close()
        for room in self._rooms.rooms_of(conn_id):
            self._rooms.leave(conn_id, room)
            self._room_groups.pop(room, None)
        self.backend.connection_removed(conn_id)
        if not conn.outbox.idle:
            self._spawn(conn.outbox.aclose())

    def _overflowed(self, outbox: Outbox) -> None:
        conn: Connection = outbox.owner
        logger.info("closing slow client %s: its outbox is full", conn.id)
        self._spawn(self._force_close(conn, TRY_AGAIN_LATER, "too slow"))

    async def _force_close(self, conn: Connection, code: int, reason: str) -> None:
        await conn.outbox.aclose()
        try:
            await asyncio.wait_for(conn.close(code, reason), 1.0)
        except asyncio.TimeoutError:
            # The client reads nothing, so not even the close frame gets through:
            # end its handler; the server drops the TCP connection.
            if conn.task is not None and not conn.task.done():
                conn.task.cancel()
        self.unregister(conn.id)

    def _dropped(self, outbox: Outbox) -> None:
        self.counters.dropped += 1

    def _send_failed(self, outbox: Outbox, exc: BaseException) -> None:
        self.counters.errors += 1
        logger.debug("send to %s failed: %r", outbox.owner.id, exc)

    # Queries --------------------------------------------------------------------------------

    @property
    def count(self) -> int:
        """Live connections in this process."""
        return len(self._registry)

    @property
    def ids(self) -> list[ConnectionId]:
        """Ids of the live connections in this process."""
        return [ConnectionId(i) for i in self._registry.ids]

    def is_connected(self, conn_id: str) -> bool:
        """Whether ``conn_id`` is a live connection of this process."""
        return conn_id in self._registry

    def connection(self, conn_id: str) -> Connection:
        """The handle of a live connection.

        Raises:
            UnknownConnection: if there is none with that id.
        """
        conn = self._registry.get(conn_id)
        if conn is None:
            raise UnknownConnection(f"no connection with id {conn_id!r}")
        return conn

    def info(self, conn_id: str) -> ConnectionInfo:
        """What the hub knows about a connection (rooms included).

        Raises:
            UnknownConnection: if there is none with that id.
        """
        return self._record(self.connection(conn_id))

    def filter(self, predicate: Callable[[ConnectionInfo], bool]) -> list[ConnectionId]:
        """Ids of the connections whose info satisfies ``predicate``."""
        return [conn.id for conn in self._registry.values() if predicate(self._record(conn))]

    def _record(self, conn: Connection) -> ConnectionInfo:
        """The connection's info, with what is counted elsewhere brought up to date."""
        info = conn.info
        info.rooms = self._rooms.rooms_of(conn.id)
        # Counted by the outbox, so that a broadcast touches one object per recipient.
        info.messages_sent = conn.outbox.taken
        info.bytes_sent = conn.outbox.taken_bytes
        return info

    async def connection_count(self) -> int:
        """Live connections across every process (through the backend)."""
        return await self.backend.connection_count()

    # Rooms ----------------------------------------------------------------------------------

    def join(self, conn_id: str, room: str) -> None:
        """Put a connection in ``room`` (created on first join).

        Raises:
            UnknownConnection: if there is no such connection.
            RoomFull: if the room has ``max_room_members`` members.
        """
        if self._in_worker_thread():
            return self._call_in_loop(lambda: self.join(conn_id, room))
        self.connection(conn_id)
        self._rooms.join(conn_id, room, limit=self.limits.max_room_members)
        self._room_groups.pop(room, None)
        self.backend.room_joined(conn_id, room)

    def leave(self, conn_id: str, room: str) -> None:
        """Take a connection out of ``room`` (no-op if it is not in it)."""
        if self._in_worker_thread():
            return self._call_in_loop(lambda: self.leave(conn_id, room))
        self._rooms.leave(conn_id, room)
        self._room_groups.pop(room, None)
        self.backend.room_left(conn_id, room)

    def members(self, room: str) -> frozenset[str]:
        """Members of ``room`` in this process."""
        return self._rooms.members(room)

    def rooms_of(self, conn_id: str) -> frozenset[str]:
        """Rooms of a connection of this process."""
        return self._rooms.rooms_of(conn_id)

    @property
    def rooms(self) -> frozenset[str]:
        """Non-empty rooms in this process."""
        return self._rooms.names

    async def room_members(self, room: str) -> set[str]:
        """Members of ``room`` across every process (through the backend)."""
        return await self.backend.room_members(room)

    # Delivery -------------------------------------------------------------------------------

    def _deliver(self, groups: Groups, data: JSONValue, kind: str | None) -> int:
        """Hand ``data`` to every outbox of ``groups``, encoded once per codec (all
        encoded before the first send, so that bad data fails before any)."""
        encoded = [(encode_for(codec, data, kind), outboxes) for codec, outboxes in groups]
        self.encodes += len(encoded)
        delivered = 0
        bytes_sent = 0
        for message, outboxes in encoded:
            size = message_size(message)
            taken = 0
            for outbox in outboxes:  # the hot loop of every broadcast
                if outbox.put(message, size):
                    taken += 1
            delivered += taken
            bytes_sent += taken * size
        counters = self.counters
        counters.messages_sent += delivered
        counters.bytes_sent += bytes_sent
        return delivered

    def send(self, conn_id: str, data: JSONValue, *, type: str | None = None) -> bool:
        """Hand ``data`` to one connection (never waits for the client).

        Returns:
            True if a connection of this process took it, or, with a shared backend,
            if the id is not local and the message was published for the others;
            False if it is not here (memory backend) or its outbox dropped it.
        """
        if self._in_worker_thread():
            return self._call_in_loop(lambda: self.send(conn_id, data, type=type))
        conn = self._registry.get(conn_id)
        if conn is None:
            if not self.distributed:
                return False
            self._publish(BroadcastFrame(data, type, None, (conn_id,)))
            return True
        return self._deliver(_group((conn,)), data, type) == 1

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
        """
        if self._in_worker_thread():
            return self._call_in_loop(
                lambda: self.broadcast(data, type=type, room=room, to=to, exclude=exclude)
            )
        wanted = None if to is None else tuple(dict.fromkeys(to))  # each id once
        excluded = tuple(exclude) if exclude else ()
        groups = self._groups(room, wanted, excluded)
        if self.distributed and (wanted is None or any(i not in self._registry for i in wanted)):
            # Some recipients may live in other processes: publish once for all of them.
            # Encoded before the local delivery so that bad data fails before any send.
            self._publish(BroadcastFrame(data, type, room, wanted, excluded))
        return self._deliver(groups, data, type)

    def _groups(
        self, room: str | None, to: tuple[str, ...] | None, exclude: Iterable[str] = ()
    ) -> Groups:
        """The local outboxes, by codec, that a broadcast to ``room`` and/or ``to``
        (less ``exclude``) is for."""
        registry = self._registry
        if to is not None:
            found = (registry.get(i) for i in to)
            targets = [conn for conn in found if conn is not None]
            if room is not None:
                members = self._rooms.members(room)
                targets = [conn for conn in targets if conn.id in members]
            groups = _group(targets)
        elif room is not None:
            # Kept until the room's membership changes (join, leave, disconnect): a
            # steady room is broadcast to without a lookup per member.
            cached = self._room_groups.get(room)
            if cached is None:
                found = (registry.get(i) for i in self._rooms.members_view(room))
                cached = _group(conn for conn in found if conn is not None)
                if cached:
                    self._room_groups[room] = cached
            groups = cached
        else:
            groups = _group(registry.values())
        if not exclude:
            return groups
        excluded = set(exclude)
        return [
            (codec, [outbox for outbox in outboxes if outbox.owner.id not in excluded])
            for codec, outboxes in groups
        ]

    async def disconnect(
        self,
        conn_id: str,
        code: int = 1000,
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
        conn = self._registry.get(conn_id)
        if conn is None:
            if not self.distributed:
                return False
            self._publish(DisconnectFrame(conn_id, code, reason, message, type, timeout))
            return True
        if message is not None:
            self._deliver(_group((conn,)), message, type)
        await conn.outbox.wait_drained(timeout)
        await conn.close(code, reason)
        return True

    # Other processes -----------------------------------------------------------------------

    def _publish(self, frame: BroadcastFrame | DisconnectFrame) -> None:
        self.backend.publish(encode_frame(frame))
        self.counters.published += 1

    def _deliver_remote(self, raw: bytes) -> None:
        """Deliver a frame published by another process (the backend calls this)."""
        try:
            frame = decode_frame(raw)
        except WireError as exc:
            self.counters.invalid_frames += 1
            logger.warning("ignoring an undecodable frame from the bus: %s", exc)
            return
        self.counters.remote_frames += 1
        if isinstance(frame, BroadcastFrame):
            groups = self._groups(frame.room, frame.to, frame.exclude)
            if groups:
                self._deliver(groups, frame.data, frame.type)
        elif frame.conn_id in self._registry:
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

    async def connection_rooms(self, conn_id: str) -> set[str]:
        """Rooms of a connection wherever it lives (through the backend)."""
        conn = self._registry.get(conn_id)
        if conn is not None:
            return set(self._rooms.rooms_of(conn_id))
        return await self.backend.rooms_of(conn_id)

    # Idle sweeper ---------------------------------------------------------------------------

    async def _sweep_idle(self) -> None:
        timeout = self.limits.idle_timeout
        assert timeout is not None
        period = max(min(timeout / 4, 1.0), 0.01)
        while True:
            await asyncio.sleep(period)
            now = self.clock()
            for conn in list(self._registry.values()):
                if now - conn.info.last_activity >= timeout:
                    logger.info("closing idle connection %s", conn.id)
                    self._spawn(self._close_idle(conn))
                    conn.info.last_activity = now  # do not schedule it twice

    async def _close_idle(self, conn: Connection) -> None:
        await conn.close(GOING_AWAY, "idle timeout")

    # Stats ----------------------------------------------------------------------------------

    def stats(self) -> dict[str, Any]:
        """Counters for monitoring: connections, rooms, messages and bytes, drops..."""
        return {
            "connections": len(self._registry),
            "rooms": len(self._rooms),
            **self.counters.as_dict(),
            "encodes": self.encodes,
            "backend": self.backend.stats(),
        }


def _group(connections: Iterable[Connection]) -> Groups:
    by_codec: dict[MessageCodec, list[Outbox]] = {}
    for conn in connections:
        outboxes = by_codec.get(conn.codec)
        if outboxes is None:
            outboxes = by_codec[conn.codec] = []
        outboxes.append(conn.outbox)
    return list(by_codec.items())
