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

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..errors import (
    InvalidArgument,
    InvalidState,
    RequestFailed,
    RequestTimeout,
    UnknownConnection,
    WireError,
)
from ..jsoncodec import dumps, loads
from ._wire import BroadcastFrame, ReplyFrame, RequestFrame, decode_frame
from .backends import EVERYONE, Route
from .delivery import Delivery
from .directory import on_loop
from .history import Histories, Position, Publication, Recovery, RoomRules
from .rooms import check_room_name

__all__ = ["JoinGuard", "Streams"]

#: An offset after any real one: reading from it gives a room's position only.
_BEYOND = 2**53


def _publication(offset: int, time: float, raw: bytes) -> Publication:
    frame = decode_frame(raw)
    assert isinstance(frame, BroadcastFrame)
    return Publication(offset, frame.data, frame.type, time)


#: ``can_join(ws, room)``: may this connection join this room? Sync or async.
JoinGuard = Callable[[Any, str], "bool | Awaitable[bool]"]


class Streams(Delivery):
    """History, resume, presence and requests (see the module docstring)."""

    #: Who may join which room when a client asks (``@app.can_join``); None: anyone.
    join_guard: JoinGuard | None

    def _start_streams(self, rules: RoomRules | None) -> None:
        self.histories = Histories(rules or RoomRules())
        self.join_guard = None
        # Publications arriving while connections catch up on a room (shared history).
        self._catching_up: dict[str, list[list[tuple[int, str, BroadcastFrame]]]] = {}
        # Requests this process made to connections of other processes, by request id.
        self._asking: dict[str, asyncio.Future[Any]] = {}
        self._asked = 0

    @property
    def _shared_history(self) -> bool:
        return self.distributed and self.backend.keeps_history

    @property
    def rules(self) -> RoomRules:
        """Which rooms keep history and emit presence events."""
        return self.histories.rules

    # History and resume ---------------------------------------------------------------------

    async def history(self, room: str, since: int = 0) -> list[Publication]:
        """The publications ``room`` still keeps after offset ``since``, oldest first.

        Raises:
            BackendUnavailable: if a shared backend cannot be reached.
        """
        options = self.rules.for_room(room)
        if not self._shared_history or options.history_size <= 0:
            return self.histories.read(room, since, self.clock())
        _, _, entries = await self.backend.read_history(
            room, since, options.history_ttl, options.history_size
        )
        return [_publication(offset, time, raw) for offset, time, raw in entries]

    async def position(self, room: str) -> Position | None:
        """Where ``room``'s stream is (``None`` if the room keeps no history).

        Raises:
            BackendUnavailable: if a shared backend cannot be reached.
        """
        options = self.rules.for_room(room)
        if not self._shared_history or options.history_size <= 0:
            return self.histories.position(room, self.clock())
        epoch, offset, _ = await self.backend.read_history(
            room, _BEYOND, options.history_ttl, options.history_size
        )
        return Position(epoch, offset)

    def _publication_arrived(self, offset: int, epoch: str, raw: bytes) -> None:
        """A publication to a room with history, from the shared backend, in the room's
        order (every process, this one included, gets it here)."""
        try:
            frame = decode_frame(raw)
        except WireError:
            self.counters.invalid_frames += 1
            return
        if not isinstance(frame, BroadcastFrame) or frame.room is None:
            self.counters.invalid_frames += 1
            return
        self.counters.remote_frames += 1
        room = frame.room
        for buffer in self._catching_up.get(room, ()):
            buffer.append((offset, epoch, frame))
        groups = self._groups(room, None, frame.exclude)
        if groups:
            self._deliver(groups, frame.data, frame.type, (room, offset, epoch))

    async def may_join(self, ws: Any, room: str) -> bool:
        """Ask the app's ``can_join`` hook whether ``ws`` may join ``room``."""
        guard = self.join_guard
        if guard is None:
            return True
        allowed = guard(ws, room)
        if inspect.isawaitable(allowed):
            allowed = await allowed
        return bool(allowed)

    async def resume(
        self, conn_id: str, positions: Mapping[str, tuple[str, int] | None]
    ) -> dict[str, Recovery | None]:
        """Re-join rooms and hand the connection what it missed in each.

        For each room: join it, then, if it keeps history and a position was given,
        replay exactly the publications after that position, in order. All of it happens
        before any other publication can reach the connection, and when it returns this
        process receives the rooms' publications from every process. Ask ``may_join``
        first: this method trusts its caller.

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
            BackendUnavailable: if a shared backend cannot be reached.
        """
        if self._shared_history:
            recoveries = await self._resume_shared(conn_id, positions)
        else:
            recoveries = self._call_here(lambda: self._resume_here(conn_id, positions))
        # The rooms without history it joined are subscribed before the reply too.
        await self._settle_joins(conn_id)
        self.counters.resumes += 1
        return recoveries

    def _resume_here(
        self, conn_id: str, positions: Mapping[str, tuple[str, int] | None]
    ) -> dict[str, Recovery | None]:
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

    async def _resume_shared(
        self, conn_id: str, positions: Mapping[str, tuple[str, int] | None]
    ) -> dict[str, Recovery | None]:
        """``resume`` with the history in the shared backend.

        Publications to the rooms that arrive while their history is read are kept aside;
        once read, everything after the client's position (read, then kept aside, without
        duplicates) is handed over and the rooms are joined, with no await in between.
        """
        self.connection(conn_id)
        for room in positions:
            check_room_name(room)
        shared = [room for room in positions if self.rules.for_room(room).history_size > 0]
        buffers: dict[str, list[tuple[int, str, BroadcastFrame]]] = {}
        for room in shared:
            buffers[room] = []
            self._catching_up.setdefault(room, []).append(buffers[room])
            # Receive the room's publications before its history is read, even if no
            # connection of this process is in it yet: none may fall in between.
            self._hold(room)
        try:
            await self.backend.wait_subscribed(shared)
            reads = {}
            for room in shared:
                position = positions[room]
                since = position[1] if position is not None else _BEYOND
                options = self.rules.for_room(room)
                reads[room] = await self.backend.read_history(
                    room, since, options.history_ttl, options.history_size
                )
            for room, (epoch, last, _) in reads.items():
                position = positions[room]
                if position is not None and position[0] == epoch and position[1] > last:
                    raise InvalidArgument(
                        f"offset {position[1]} of room {room!r} is ahead of its stream ({last})"
                    )
            session = self.connection(conn_id)
            result: dict[str, Recovery | None] = {}
            for room, position in positions.items():
                self.join(conn_id, room)
                if room not in reads:
                    result[room] = None
                    continue
                epoch, last, entries = reads[room]
                handed: list[Publication] = []
                recovered = False
                if position is not None and position[0] == epoch:
                    wanted = [e for e in entries if e[0] > position[1]]
                    # All of the gap, or nothing: it must start right after the position.
                    recovered = position[1] == last or (
                        bool(wanted) and wanted[0][0] == position[1] + 1
                    )
                    if recovered:
                        handed = [_publication(offset, t, raw) for offset, t, raw in wanted]
                newest = handed[-1].offset if handed else last
                for offset, frame_epoch, frame in buffers[room]:
                    if frame_epoch == epoch and offset > newest:
                        handed.append(Publication(offset, frame.data, frame.type, 0.0))
                        newest = offset
                missed = Recovery(recovered, Position(epoch, newest), tuple(handed))
                self._replay(session, room, missed)
                result[room] = Recovery(recovered, missed.position, missed.publications)
            return result
        finally:
            for room, buffer in buffers.items():
                waiting = self._catching_up.get(room, [])
                waiting.remove(buffer)
                if not waiting:
                    self._catching_up.pop(room, None)
                self._release(room)

    # Presence -------------------------------------------------------------------------------

    @on_loop
    def set_user(self, conn_id: str, user: Any) -> None:
        """Say who a connection is, for presence (any JSON value, e.g. ``{"name": ...}``).

        Raises:
            UnknownConnection: if there is no such connection.
            TypeError, ValueError: if ``user`` is not JSON.
        """
        encoded = dumps(user)
        self.connection(conn_id).user = user
        self.backend.user_set(conn_id, None if user is None else encoded.encode())

    async def presence(self, room: str) -> list[dict[str, Any]]:
        """Who is in ``room`` in every process: ``[{"id": conn_id, "user": user}, ...]``,
        by id.

        Raises:
            BackendUnavailable: if a shared backend cannot be reached.
        """
        if not self.distributed:
            return self._call_here(lambda: self._presence(room))
        ids = sorted(await self.bus.members(room))
        users = await self.backend.users(ids)
        return [
            {"id": conn_id, "user": None if user is None else loads(user)}
            for conn_id, user in zip(ids, users, strict=True)
        ]

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
        event = {"room": room, "id": conn_id, "user": session.user if session else None}
        if self.distributed:  # the room's members in other processes too (no history)
            self.bus.publish(BroadcastFrame(event, kind, room, None, (conn_id,)), Route(room=room))
        groups = self._groups(room, None, (conn_id,))
        if groups:
            self._deliver(groups, event, kind)

    # Requests to clients --------------------------------------------------------------------

    async def request(
        self, conn_id: str, type: str, data: Any = None, *, timeout: float = 10.0
    ) -> Any:
        """Ask a message-type connection, wherever it lives, and return its reply.

        Raises:
            UnknownConnection: if it is not here and no other process shares the hub.
            RequestTimeout: no reply within ``timeout`` (also when no process has it).
            RequestFailed, InvalidState: see ``Session.request``.
        """
        session = self._registry.get(conn_id)
        if session is not None:
            return await session.request(type, data, timeout)
        if not self.distributed:
            raise UnknownConnection(f"no connection with id {conn_id!r} in this process")
        self._asked += 1
        request_id = f"{id(self):x}.{self._asked}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._asking[request_id] = future
        try:
            frame = RequestFrame(conn_id, request_id, type, data, timeout, self.backend.node)
            self.bus.publish(frame, Route(conns=(conn_id,)))
            return await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            raise RequestTimeout(type, timeout) from None
        finally:
            self._asking.pop(request_id, None)

    def _request_frame(self, frame: RequestFrame) -> None:
        session = self._registry.get(frame.conn_id)
        if session is not None:
            self._spawn(self._answer_for(session, frame))

    async def _answer_for(self, session: Any, frame: RequestFrame) -> None:
        try:
            reply = ReplyFrame(
                frame.request_id, await session.request(frame.type, frame.data, frame.timeout)
            )
        except RequestTimeout:
            reply = ReplyFrame(frame.request_id, None, ("timeout", "no reply in time"))
        except RequestFailed as exc:
            reply = ReplyFrame(frame.request_id, None, (exc.code, exc.message))
        except (InvalidState, OSError) as exc:
            reply = ReplyFrame(frame.request_id, None, ("unavailable", str(exc)))
        # To the asking process (to everyone if an older process asked, naming none).
        self.bus.publish(reply, Route(node=frame.node) if frame.node else EVERYONE)

    def _reply_frame(self, frame: ReplyFrame) -> None:
        future = self._asking.pop(frame.request_id, None)
        if future is None or future.done():
            return  # another process's request, or one that timed out
        if frame.error is None:
            future.set_result(frame.data)
        elif frame.error[0] == "timeout":
            future.set_exception(RequestTimeout("request", 0.0))
        else:
            future.set_exception(RequestFailed(*frame.error))
