"""The bus: what crosses processes when several share one hub through a backend (Redis).

A delivery that may concern connections of other processes is published once, as a
frame (see ``_wire.py``), with the route of the processes that need it (see
``backends/base.py``); each process's bus decodes the frames the backend hands it and
gives them to its hub. The queries that span every process (global counts, room members,
a connection's rooms) are asked of the backend here too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ._wire import (
    BroadcastFrame,
    DisconnectFrame,
    Frame,
    ReplyFrame,
    RequestFrame,
    WireError,
    decode_frame,
    encode_frame,
)
from .backends import HubBackend, Route
from .registry import Counters

__all__ = ["Bus"]

logger = logging.getLogger("bocadillo.hub")


class Bus:
    """Frames to and from the other processes of an app.

    Args:
        backend: The hub's backend.
        counters: The hub's counters (``published``, ``remote_frames``, ``invalid_frames``).
        on_broadcast: Delivers a broadcast frame to this process's connections.
        on_disconnect: Disconnects a connection of this process as a frame asks.
        on_request: Asks a connection of this process, as a frame asks.
        on_reply: Takes the answer to a request this process made.
    """

    __slots__ = (
        "_on_broadcast",
        "_on_disconnect",
        "_on_reply",
        "_on_request",
        "backend",
        "counters",
        "distributed",
    )

    def __init__(
        self,
        backend: HubBackend,
        counters: Counters,
        *,
        on_broadcast: Callable[[BroadcastFrame], None],
        on_disconnect: Callable[[DisconnectFrame], None],
        on_request: Callable[[RequestFrame], None],
        on_reply: Callable[[ReplyFrame], None],
    ) -> None:
        self.backend = backend
        self.counters = counters
        #: Whether other processes share the hub (frames are published).
        self.distributed = not backend.local_only
        self._on_broadcast = on_broadcast
        self._on_disconnect = on_disconnect
        self._on_request = on_request
        self._on_reply = on_reply

    def publish(self, frame: Frame, route: Route) -> None:
        """Publish ``frame`` for the other processes that ``route`` names (never waits).

        Raises:
            TypeError, ValueError: if the frame's data cannot be encoded.
        """
        self.backend.publish(encode_frame(frame), route)
        self.counters.published += 1

    def received(self, raw: bytes) -> None:
        """Handle a frame published by another process (the backend calls this)."""
        try:
            frame = decode_frame(raw)
        except WireError as exc:
            self.counters.invalid_frames += 1
            logger.warning("ignoring an undecodable frame from the bus: %s", exc)
            return
        self.counters.remote_frames += 1
        if isinstance(frame, BroadcastFrame):
            self._on_broadcast(frame)
        elif isinstance(frame, DisconnectFrame):
            self._on_disconnect(frame)
        elif isinstance(frame, RequestFrame):
            self._on_request(frame)
        else:
            self._on_reply(frame)

    async def count(self) -> int:
        """Live connections across every process."""
        return await self.backend.connection_count()

    async def members(self, room: str) -> set[str]:
        """Members of ``room`` across every process."""
        return await self.backend.room_members(room)

    async def rooms_of(self, conn_id: str) -> set[str]:
        """Rooms of a connection wherever it lives."""
        return await self.backend.rooms_of(conn_id)
