"""The hub's tables: live connections by id, rooms, and the queries about this process.

``Directory`` is the base of ``Hub``: it drives the pure ``Registry`` and ``Rooms``
tables and answers the ``local_*`` queries. It tells the backend when this process gets
its first member of a room and when the last one leaves (``subscribe``/``unsubscribe``),
so that a process receives the frames of the rooms it has members in only. It also
knows the hub's event loop, so that sync code running in a worker thread (sync socket
handlers and jobs) can still use the hub: every public method runs on that loop
(``on_loop``), reads as well as writes.
"""

from __future__ import annotations

import asyncio
import functools
import threading
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Concatenate, ParamSpec, TypeVar

from ..errors import BackendUnavailable, UnknownConnection
from ..types import ConnectionId
from .backends import HubBackend
from .limits import HubLimits
from .registry import ConnectionInfo, Counters, Registry
from .rooms import Rooms, check_room_name

if TYPE_CHECKING:
    from .delivery import Groups
    from .session import Session

__all__ = ["Directory", "on_loop"]

T = TypeVar("T")
P = ParamSpec("P")
D = TypeVar("D", bound="Directory")


async def _call(func: Callable[[], T]) -> T:
    return func()


def on_loop(method: Callable[Concatenate[D, P], T]) -> Callable[Concatenate[D, P], T]:
    """Run the method on the hub's loop when called from another thread: the tables and
    outboxes are not thread-safe."""

    @functools.wraps(method)
    def wrapper(self: D, /, *args: P.args, **kwargs: P.kwargs) -> T:
        if self._thread is not None and threading.get_ident() != self._thread:
            return self._call_in_loop(lambda: method(self, *args, **kwargs))
        return method(self, *args, **kwargs)

    return wrapper


class Directory:
    """Live connections and rooms of one process (see the module docstring).

    Args:
        backend: Told of every registration and room change (for the other processes).
        limits: The hub's limits (``max_room_members`` applies here).
        clock: Returns the time in seconds.
    """

    def __init__(
        self,
        backend: HubBackend,
        limits: HubLimits | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.limits = limits or HubLimits()
        self.clock = clock
        self.counters = Counters()
        self._registry: Registry[Session] = Registry()
        self._rooms: Rooms[str] = Rooms()
        #: The recipients of each room broadcast to, by codec, kept until its
        #: membership changes.
        self._room_groups: dict[str, Groups] = {}
        #: Rooms subscribed to without a local member yet (a resume reading their
        #: history), with how many holds each.
        self._held: dict[str, int] = {}
        #: Connection id -> the rooms its joins subscribed the backend to, not yet
        #: confirmed (only on a ``routed`` backend: see ``_settle_joins``).
        self._subscribing: dict[str, set[str]] = {}
        self._confirms = backend.routed and not backend.local_only
        #: The loop the hub runs on and its thread (set at startup).
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: int | None = None

    def _call_in_loop(self, func: Callable[[], T]) -> T:
        """Run ``func()`` on the hub's loop, from another thread, and return its result."""
        assert self._loop is not None
        return asyncio.run_coroutine_threadsafe(_call(func), self._loop).result()

    def _call_here(self, func: Callable[[], T]) -> T:
        if self._thread is not None and threading.get_ident() != self._thread:
            return self._call_in_loop(func)
        return func()

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

    @on_loop
    def is_connected(self, conn_id: str) -> bool:
        """Whether ``conn_id`` is a live connection of this process."""
        return conn_id in self._registry

    @on_loop
    def connection(self, conn_id: str) -> Session:
        """The session of a live connection of this process.

        Raises:
            UnknownConnection: if there is none with that id.
        """
        session = self._registry.get(conn_id)
        if session is None:
            raise UnknownConnection(f"no connection with id {conn_id!r}")
        return session

    @on_loop
    def info(self, conn_id: str) -> ConnectionInfo:
        """What the hub knows about a connection of this process (rooms included).

        Raises:
            UnknownConnection: if there is none with that id.
        """
        session = self.connection(conn_id)
        return session.info(self._rooms.rooms_of(session.id))

    @on_loop
    def filter(self, predicate: Callable[[ConnectionInfo], bool]) -> list[ConnectionId]:
        """Ids of the connections of this process whose info satisfies ``predicate``."""
        rooms_of = self._rooms.rooms_of
        chosen = self._registry.filter(lambda s: predicate(s.info(rooms_of(s.id))))
        return [session.id for session in chosen]

    @on_loop
    def local_members(self, room: str) -> frozenset[str]:
        """Members of ``room`` in this process."""
        return self._rooms.members(room)

    @on_loop
    def local_rooms_of(self, conn_id: str) -> frozenset[str]:
        """Rooms of a connection of this process."""
        return self._rooms.rooms_of(conn_id)

    # Rooms ----------------------------------------------------------------------------------

    @on_loop
    def join(self, conn_id: str, room: str) -> None:
        """Put a connection in ``room`` (created on first join).

        Raises:
            UnknownConnection: if there is no such connection.
            TypeError, InvalidArgument: if ``room`` is not a valid room name (see
                ``rooms.check_room_name``).
            RoomFull: if the room has ``max_room_members`` members.
            TooManyRooms: if the connection is in ``max_rooms_per_connection`` rooms.
        """
        check_room_name(room)
        self.connection(conn_id)
        if conn_id in self._rooms.members_view(room):
            return
        limits = self.limits
        created = self._rooms.join(
            conn_id,
            room,
            limit=limits.max_room_members,
            max_rooms=limits.max_rooms_per_connection,
        )
        self._room_groups.pop(room, None)
        if created and room not in self._held:
            self.backend.subscribe(room)  # before the membership: see backends/redis.py
            if self._confirms:
                self._subscribing.setdefault(conn_id, set()).add(room)
        self.backend.room_joined(conn_id, room)
        self._joined(conn_id, room)

    @on_loop
    def leave(self, conn_id: str, room: str) -> None:
        """Take a connection out of ``room`` (no-op if it is not in it).

        Raises:
            TypeError: if ``room`` is not a ``str``.
        """
        if not isinstance(room, str):
            raise TypeError(f"a room name is a str, not {type(room).__name__}")
        if conn_id not in self._rooms.members_view(room):
            return
        emptied = self._rooms.leave(conn_id, room)
        self._room_groups.pop(room, None)
        self.backend.room_left(conn_id, room)
        if emptied and room not in self._held:
            self.backend.unsubscribe(room)
        self._left(conn_id, room)

    def _leave_all(self, conn_id: str) -> None:
        """Take a connection out of every room (it ended)."""
        self._subscribing.pop(conn_id, None)
        rooms = self._rooms.rooms_of(conn_id)
        for room in self._rooms.leave_all(conn_id):
            if room not in self._held:
                self.backend.unsubscribe(room)
        for room in rooms:
            self._room_groups.pop(room, None)
            self._left(conn_id, room)

    async def wait_subscribed(self, rooms: Iterable[str]) -> None:
        """Wait until this process receives what other processes publish to ``rooms``
        (those it has members in).

        On Redis and NATS, a process subscribes to a room's channel (subjects) when its
        first connection joins the room, about one round trip to the server after
        ``join`` returns; a message published meanwhile by another process does not
        reach it. Replies of message-type handlers and of ``resume`` already wait for
        this; a plain view that needs it awaits this method after ``ws.join(room)``.
        Returns at once on the memory backend.

        Raises:
            BackendUnavailable: if the backend cannot be reached.
        """
        if self._confirms:
            await self.backend.wait_subscribed(list(rooms))

    async def _settle_joins(self, conn_id: str) -> None:
        """Wait until the rooms that ``conn_id`` made this process subscribe to are
        subscribed (best effort: not if the backend is unreachable). Called before a
        message-type handler's reply is sent."""
        rooms = self._subscribing.pop(conn_id, None)
        if rooms:
            try:
                await self.backend.wait_subscribed(rooms)
            except BackendUnavailable:
                pass  # subscribed again on reconnection

    def _hold(self, room: str) -> None:
        """Subscribe to ``room`` even without a local member, until ``_release``."""
        held = self._held.get(room, 0)
        if held == 0 and room not in self._rooms:
            self.backend.subscribe(room)
        self._held[room] = held + 1

    def _release(self, room: str) -> None:
        """Undo one ``_hold``: unsubscribe if nothing else needs the room."""
        held = self._held[room] - 1
        if held:
            self._held[room] = held
            return
        del self._held[room]
        if room not in self._rooms:
            self.backend.unsubscribe(room)

    def _joined(self, conn_id: str, room: str) -> None:
        """Called after a connection joined ``room`` (the hub sends presence events)."""

    def _left(self, conn_id: str, room: str) -> None:
        """Called after a connection left ``room``."""
