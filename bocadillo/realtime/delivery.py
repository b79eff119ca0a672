"""Delivery: encode a payload once per codec and hand it to the recipients' outboxes.

A broadcast never awaits a client. Its recipients are grouped by the codec they take
messages in (``text``, ``bytes``, ``json`` or ``envelope``); the payload is encoded once
per group, every group before the first send (so bad data fails before any client got
it), then put in each recipient's bounded outbox.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import TYPE_CHECKING, Any, Literal

from ..closecodes import CloseCode
from ..jsoncodec import dumps
from ..types import JSONValue, Message
from ._wire import BroadcastFrame, DisconnectFrame, ReplyFrame, RequestFrame, encode_frame
from .backends import EVERYONE, Route
from .bus import Bus
from .directory import Directory, on_loop
from .envelope import encode_envelope, encode_publication
from .history import Histories, Recovery, RoomOptions

if TYPE_CHECKING:
    from .session import Session

__all__ = [
    "Delivery",
    "Groups",
    "MessageCodec",
    "deliver",
    "encode_for",
    "group",
    "message_size",
]

MessageCodec = Literal["text", "bytes", "json", "envelope"]
#: Recipients by the codec they take broadcasts in.
Groups = list[tuple[MessageCodec, list["Session"]]]


#: Where a publication stands in a room with history: ``(room, offset, epoch)``.
Where = tuple[str, int, str]


def encode_for(
    codec: MessageCodec, data: JSONValue, kind: str | None, where: Where | None = None
) -> Message:
    """The ASGI ``websocket.send`` message carrying ``data`` for a connection's codec.

    ``envelope`` connections get ``{"type": kind or "message", "data": data}`` (plus
    ``"room"``, ``"offset"`` and ``"epoch"`` for a publication to a room with history);
    ``json`` gets the data as JSON; ``text`` and ``bytes`` send ``str``/``bytes`` as they
    are and anything else as JSON.

    Raises:
        TypeError, ValueError: if ``data`` cannot be encoded as JSON where JSON is needed.
    """
    if codec == "envelope":
        if where is not None:
            room, offset, epoch = where
            text = encode_publication(kind or "message", data, room, offset, epoch)
            return {"type": "websocket.send", "text": text}
        return {"type": "websocket.send", "text": encode_envelope(kind or "message", data)}
    if codec == "json":
        return {"type": "websocket.send", "text": dumps(data)}
    if isinstance(data, (bytes, bytearray, memoryview)):
        return {"type": "websocket.send", "bytes": bytes(data)}
    text = data if isinstance(data, str) else dumps(data)
    if codec == "bytes":
        return {"type": "websocket.send", "bytes": text.encode("utf-8")}
    return {"type": "websocket.send", "text": text}


def message_size(message: Message) -> int:
    """The payload size of a ``websocket.send``/``receive`` message, in bytes."""
    payload = message.get("text")
    if payload is not None:
        # Bytes on the wire, not characters; ASCII text (checked in O(1)) needs no encode.
        return len(payload) if payload.isascii() else len(payload.encode("utf-8"))
    return len(message.get("bytes") or b"")


def group(sessions: Iterable[Session]) -> Groups:
    """``sessions`` grouped by codec."""
    by_codec: dict[MessageCodec, list[Session]] = {}
    for session in sessions:
        members = by_codec.get(session.codec)
        if members is None:
            members = by_codec[session.codec] = []
        members.append(session)
    return list(by_codec.items())


def deliver(
    groups: Groups, data: JSONValue, kind: str | None, where: Where | None = None
) -> tuple[int, int]:
    """Hand ``data`` to every recipient of ``groups``, encoded once per codec.

    Returns:
        How many recipients took it, and the bytes they took in all.

    Raises:
        TypeError, ValueError: if ``data`` cannot be encoded (before any send).
    """
    encoded = [(encode_for(codec, data, kind, where), members) for codec, members in groups]
    delivered = 0
    total = 0
    for message, members in encoded:
        size = message_size(message)
        taken = 0
        for session in members:  # the hot loop of every broadcast
            if session.put(message, size):
                taken += 1
        delivered += taken
        total += taken * size
    return delivered, total


class Delivery(Directory):
    """The hub's delivery: ``send``, ``broadcast`` and ``disconnect``, here and, through
    the bus, in the other processes. The base of ``Hub``.

    Its state is made by ``_start_delivery()``, which the hub calls once its tables exist.
    """

    #: Payload encodings done by deliveries (one per codec per delivery).
    encodes: int
    #: What crosses processes (``bus.py``).
    bus: Bus
    #: The streams of the rooms with history (``history.py``).
    histories: Histories
    _tasks: set[asyncio.Task[Any]]

    def _start_delivery(self) -> None:
        self.encodes = 0
        self.bus = Bus(
            self.backend,
            self.counters,
            on_broadcast=self._deliver_frame,
            on_disconnect=self._disconnect_frame,
            on_request=self._request_frame,
            on_reply=self._reply_frame,
        )
        self._tasks = set()

    @property
    def distributed(self) -> bool:
        """Whether other processes share this hub's connections (frames are published)."""
        return self.bus.distributed

    def _spawn(self, coro: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Delivery -------------------------------------------------------------------------------

    def _deliver(
        self, groups: Groups, data: JSONValue, kind: str | None, where: Where | None = None
    ) -> int:
        delivered, size = deliver(groups, data, kind, where)
        self.encodes += len(groups)
        counters = self.counters
        counters.messages_sent += delivered
        counters.bytes_sent += size
        return delivered

    @on_loop
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
            self.bus.publish(BroadcastFrame(data, type, None, (conn_id,)), Route(conns=(conn_id,)))
            return True
        return self._deliver([(session.codec, [session])], data, type) == 1

    @on_loop
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
            deliveries are not counted here. It is a plain call, not a coroutine: do
            not ``await`` it.

        Raises:
            TypeError, ValueError: if ``data`` cannot be encoded (nothing is sent).
        """
        wanted = None if to is None else tuple(dict.fromkeys(to))  # each id once
        excluded = tuple(exclude) if exclude else ()
        groups = self._groups(room, wanted, excluded)
        if room is not None and wanted is None and self.histories.rules.any_history:
            options = self.histories.rules.for_room(room)
            if options.history_size > 0:
                return self._publish(room, data, type, excluded, groups, options)
        if self.distributed:
            # Some recipients may live in other processes: publish once for all of them,
            # before the local delivery, so that bad data fails before any send.
            route: Route | None
            if wanted is None:
                route = EVERYONE if room is None else Route(room=room)
            else:
                registry = self._registry
                elsewhere = tuple(i for i in wanted if i not in registry)
                route = Route(conns=elsewhere) if elsewhere else None
            if route is not None:
                self.bus.publish(BroadcastFrame(data, type, room, wanted, excluded), route)
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
            self.bus.publish(
                DisconnectFrame(conn_id, code, reason, message, type, timeout),
                Route(conns=(conn_id,)),
            )
            return True
        if message is not None:
            self._deliver([(session.codec, [session])], message, type)
        await session.wait_drained(timeout)
        await session.close_connection(code, reason)
        return True

    def _publish(
        self,
        room: str,
        data: JSONValue,
        type: str | None,
        excluded: tuple[str, ...],
        groups: Groups,
        options: RoomOptions,
    ) -> int:
        """A publication to a room with history: kept with its position, delivered with
        it. Bad data is neither sent nor kept.

        Returns:
            How many local connections took it: with a backend that keeps history for
            every process, 0 (each process delivers it when the backend hands it back,
            in the room's order).
        """
        if self.backend.keeps_history and self.distributed:
            frame = encode_frame(BroadcastFrame(data, type, room, None, excluded))
            self.backend.publish_history(room, frame, options.history_size, options.history_ttl)
            self.counters.published += 1
            return 0
        now = self.clock()
        stream = self.histories.stream(room, now)
        assert stream is not None
        if not groups:
            encode_for("json", data, type)
        delivered = self._deliver(groups, data, type, (room, stream.offset + 1, stream.epoch))
        self.histories.append(room, data, type, now)
        return delivered

    def _replay(self, session: Session, room: str, recovery: Recovery) -> None:
        """Hand ``session`` what it missed in ``room``, in order; never dropped by the
        overflow policy (the replay is bounded by the history)."""
        epoch = recovery.position.epoch
        for publication in recovery.publications:
            where = (room, publication.offset, epoch)
            message = encode_for(session.codec, publication.data, publication.type, where)
            size = message_size(message)
            if session.put_kept(message, size):
                self.counters.messages_sent += 1
                self.counters.bytes_sent += size

    def _request_frame(self, frame: RequestFrame) -> None:
        """Another process asks a connection: ``Streams`` answers it."""

    def _reply_frame(self, frame: ReplyFrame) -> None:
        """The answer to a request of this process: ``Streams`` takes it."""

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
