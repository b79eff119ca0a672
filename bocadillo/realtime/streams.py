"""Nothing lost on reconnect: room history, resume, presence and server-to-client requests.

``Streams`` is a base of ``Hub`` (after ``Delivery``). A room with history (see
``history.py``) keeps its last publications with their positions; a client that comes
back names the last position it saw in each room, and ``resume`` re-joins it and hands
it exactly what it missed, in order and before anything newer, or says that it cannot
(``recovered: false``). Presence lists who is in a room, with the ``user`` each
connection set, and may tell a room's members when someone joins or leaves.

Everything here runs on the hub's loop between two awaits, so no publication can slip
between reading a room's history and joining it.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..errors import InvalidArgument, UnknownConnection
from ..jsoncodec import dumps
from .delivery import Delivery
from .directory import on_loop
from .history import Histories, Position, Publication, Recovery, RoomRules
from .rooms import check_room_name

__all__ = ["JoinGuard", "Streams"]

#: ``can_join(ws, room)``: may this connection join this room? Sync or async.
JoinGuard = Callable[[Any, str], "bool | Awaitable[bool]"]


class Streams(Delivery):
    """History, resume, presence and requests (see the module docstring)."""

    #: Who may join which room when a client asks (``@app.can_join``); None: anyone.
    join_guard: JoinGuard | None

    def _start_streams(self, rules: RoomRules | None) -> None:
        self.histories = Histories(rules or RoomRules())
        self.join_guard = None

    @property
    def rules(self) -> RoomRules:
        """Which rooms keep history and emit presence events."""
        return self.histories.rules

    # History and resume ---------------------------------------------------------------------

    async def history(self, room: str, since: int = 0) -> list[Publication]:
        """The publications ``room`` still keeps after offset ``since``, oldest first."""
        return self.histories.read(room, since, self.clock())

    async def position(self, room: str) -> Position | None:
        """Where ``room``'s stream is (``None`` if the room keeps no history)."""
        return self.histories.position(room, self.clock())

    async def may_join(self, ws: Any, room: str) -> bool:
        """Ask the app's ``can_join`` hook whether ``ws`` may join ``room``."""
        guard = self.join_guard
        if guard is None:
            return True
        allowed = guard(ws, room)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        return bool(allowed)

    @on_loop
    def resume(
        self, conn_id: str, positions: Mapping[str, tuple[str, int] | None]
    ) -> dict[str, Recovery | None]:
        """Re-join rooms and hand the connection what it missed in each.

        For each room: join it, then, if it keeps history and a position was given,
        replay exactly the publications after that position, in order. All of it happens
        before any other publication can reach the connection. Ask ``may_join`` first:
        this method trusts its caller.

        Args:
            conn_id: A connection of this process.
            positions: ``{room: (epoch, offset)}``, or ``{room: None}`` to join without
                a position.

        Returns:
            ``{room: Recovery}`` (``None`` for a room that keeps no history).

        Raises:
            UnknownConnection: if there is no such connection.
            InvalidArgument: for an offset after the room's last one in its current
                epoch, or an invalid room name; nothing is joined or replayed then.
            TypeError: for a room name that is not a ``str``.
            RoomFull, TooManyRooms: as ``join`` (rooms before it are joined).
        """
        session = self.connection(conn_id)
        now = self.clock()
        plans: list[tuple[str, Recovery | None]] = []
        for room, position in positions.items():
            check_room_name(room)
            stream = self.histories.stream(room, now)
            if stream is None:
                plans.append((room, None))
                continue
            if position is None:
                plans.append((room, Recovery(False, stream.position)))
                continue
            epoch, offset = position
            if epoch == stream.epoch and offset > stream.offset:
                raise InvalidArgument(
                    f"offset {offset} of room {room!r} is ahead of its stream ({stream.offset})"
                )
            plans.append((room, stream.since(epoch, offset, now)))
        for room, recovery in plans:
            self.join(conn_id, room)
            if recovery is not None and recovery.publications:
                self._replay(session, room, recovery)
        return dict(plans)

    # Presence -------------------------------------------------------------------------------

    @on_loop
    def set_user(self, conn_id: str, user: Any) -> None:
        """Say who a connection is, for presence (any JSON value, e.g. ``{"name": ...}``).

        Raises:
            UnknownConnection: if there is no such connection.
            TypeError, ValueError: if ``user`` is not JSON.
        """
        dumps(user)
        self.connection(conn_id).user = user

    async def presence(self, room: str) -> list[dict[str, Any]]:
        """Who is in ``room``: ``[{"id": conn_id, "user": user}, ...]``, by id."""
        return self._call_here(lambda: self._presence(room))

    def _presence(self, room: str) -> list[dict[str, Any]]:
        found = []
        for conn_id in sorted(self._rooms.members_view(room)):
            session = self._registry.get(conn_id)
            if session is not None:
                found.append({"id": conn_id, "user": session.user})
        return found

    async def presence_stats(self, room: str) -> dict[str, int]:
        """How many connections are in ``room``, and how many distinct users (a
        connection without a ``user`` counts as one)."""
        members = await self.presence(room)
        users = {dumps(m["user"]) if m["user"] is not None else m["id"] for m in members}
        return {"connections": len(members), "users": len(users)}

    def _joined(self, conn_id: str, room: str) -> None:
        self._presence_event("join", conn_id, room)

    def _left(self, conn_id: str, room: str) -> None:
        self._presence_event("leave", conn_id, room)

    def _presence_event(self, kind: str, conn_id: str, room: str) -> None:
        if not self.rules.for_room(room).presence_events:
            return
        session = self._registry.get(conn_id)
        user = session.user if session is not None else None
        groups = self._groups(room, None, (conn_id,))
        if groups:
            self._deliver(groups, {"room": room, "id": conn_id, "user": user}, kind)

    # Requests to clients --------------------------------------------------------------------

    async def request(
        self, conn_id: str, type: str, data: Any = None, *, timeout: float = 10.0
    ) -> Any:
        """Ask a message-type connection of this process and return its reply.

        Raises:
            UnknownConnection: if there is no such connection here.
            RequestTimeout, RequestFailed, InvalidState: see ``Session.request``.
        """
        session = self._registry.get(conn_id)
        if session is None:
            raise UnknownConnection(f"no connection with id {conn_id!r} in this process")
        return await session.request(type, data, timeout)
