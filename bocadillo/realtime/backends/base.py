"""``HubBackend``: what the hub needs from the bus that joins processes.

Everything that must work across processes goes through it: publishing frames to the
other processes, and the shared view of connections and room membership. Frames are
opaque ``bytes`` (see ``_wire.py``); a backend never looks inside.

Each frame is published with a ``Route`` that says which processes need it, so that a
backend may carry it to those only (Redis does: a channel per room, per process and one
for everyone; NATS does the same with subjects); a backend that hands every frame to
every process (``routed`` false) is correct too, only slower, because each hub delivers a
frame to its own matching connections and ignores the rest. The hub names the routes as
follows:

======================================================  ==========================
what the hub publishes                                   route
======================================================  ==========================
a broadcast to everyone (``exclude=`` or not)            ``EVERYONE``
a broadcast to a room, with or without history;          ``Route(room=room)``
presence ``join``/``leave`` events
``send``, ``disconnect``, ``request`` to a connection    ``Route(conns=(id,))``
of another process; a ``to=`` list (its other ids)
the reply to a request of another process                ``Route(node=its node)``
======================================================  ==========================

``Route(room=room)`` reaches the processes that subscribed to the room: the hub calls
``subscribe(room)`` when its first local connection joins the room (or when a ``resume``
is about to read the room's history) and ``unsubscribe(room)`` when the last one leaves.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...errors import InvalidArgument

__all__ = [
    "EVERYONE",
    "Deliver",
    "HistoryRead",
    "HubBackend",
    "PublicationSink",
    "Route",
    "cancel_and_wait",
]

#: Called by the backend with each frame published by another process.
Deliver = Callable[[bytes], None]
#: Called by a backend that keeps history with each publication to a room with history,
#: from every process (this one included), in the room's order: ``(offset, epoch, frame)``.
PublicationSink = Callable[[int, str, bytes], None]
#: What ``read_history`` returns: the room's epoch, its last offset, and the kept
#: publications after the offset asked for, as ``(offset, time, frame)``, oldest first.
HistoryRead = tuple[str, int, list[tuple[int, float, bytes]]]


@dataclass(frozen=True, slots=True)
class Route:
    """Which processes need a frame (see the module docstring). At most one field is
    set; none means every process (``EVERYONE``).

    Attributes:
        room: The processes subscribed to this room (those with a member in it).
        conns: The processes holding these connections (ids of other processes'
            connections; an id no process holds reaches nobody).
        node: The process whose backend has this ``node`` id.

    Raises:
        InvalidArgument: if more than one field is set.
    """

    room: str | None = None
    conns: tuple[str, ...] | None = None
    node: str | None = None

    def __post_init__(self) -> None:
        if (self.room is not None) + (self.conns is not None) + (self.node is not None) > 1:
            raise InvalidArgument("a route names a room, connections or a node: one of them")


#: The route of a frame for every process.
EVERYONE = Route()


class HubBackend(ABC):
    """The interface between one process's hub and the others.

    Methods that only enqueue are plain ``def``; queries are coroutines.
    """

    #: True when there are no other processes (deliveries stay local).
    local_only: bool = False
    #: True when a frame reaches only the processes its ``Route`` names; False when every
    #: process receives every frame (and its hub ignores what concerns none of its
    #: connections).
    routed: bool = False
    #: True when the frames one process publishes reach each other process in the order
    #: they were published, whatever their routes; False when only the frames of one
    #: route keep their order (Redis Cluster: each room's, each inbox's and everyone's
    #: channel lives on the master of its own slot).
    ordered: bool = True
    #: This process's id among the processes of the app: where replies to its requests
    #: go (``Route(node=...)``). Empty for a ``local_only`` backend.
    node: str = ""
    #: True when the backend keeps room history for every process (``publish_history``,
    #: ``read_history``); otherwise the hub keeps it in its own process.
    keeps_history: bool = False
    #: Set by the hub before ``start`` when the backend keeps history.
    publication_sink: PublicationSink | None = None

    @classmethod
    @abstractmethod
    def from_url(cls, url: str, **options: Any) -> HubBackend:
        """Make the backend from its URL and options (unknown options are ignored)."""

    @abstractmethod
    async def start(self, deliver: Deliver) -> None:
        """Connect, and call ``deliver(frame)`` for frames from other processes."""

    @abstractmethod
    async def stop(self) -> None:
        """Flush what can be flushed, forget this process's presence, disconnect."""

    @abstractmethod
    def publish(self, frame: bytes, route: Route) -> None:
        """Send ``frame`` to the other processes that ``route`` names (enqueue; never
        waits). A process never gets its own frames back: it delivered them already."""

    def subscribe(self, room: str) -> None:  # noqa: B027
        """From now on, deliver this process the frames routed to ``room`` (enqueue;
        ``wait_subscribed`` waits until they arrive). Called once when the room gets its
        first local member; optional for a backend that delivers every frame anyway."""

    def unsubscribe(self, room: str) -> None:  # noqa: B027
        """Stop delivering the frames routed to ``room`` (its last local member left)."""

    async def wait_subscribed(self, rooms: Iterable[str]) -> None:  # noqa: B027
        """Wait until the frames routed to ``rooms`` (those subscribed to) reach this
        process: every frame published after this returns is delivered.

        Raises:
            BackendUnavailable: if the backend cannot be reached.
        """

    @abstractmethod
    def connection_added(self, conn_id: str) -> None:
        """Record a new local connection in the shared presence."""

    @abstractmethod
    def connection_removed(self, conn_id: str) -> None:
        """Remove a local connection from the shared presence."""

    @abstractmethod
    def room_joined(self, conn_id: str, room: str) -> None:
        """Record that a local connection joined ``room``."""

    @abstractmethod
    def room_left(self, conn_id: str, room: str) -> None:
        """Record that a local connection left ``room``."""

    @abstractmethod
    async def connection_count(self) -> int:
        """Connections across every process."""

    @abstractmethod
    async def room_members(self, room: str) -> set[str]:
        """Members of ``room`` across every process."""

    @abstractmethod
    async def rooms_of(self, conn_id: str) -> set[str]:
        """Rooms of a connection, wherever it lives."""

    def user_set(self, conn_id: str, user: bytes | None) -> None:  # noqa: B027
        """Record who a local connection is (JSON bytes; ``None`` forgets it), for
        presence across processes. Optional: a single-process backend needs nothing."""

    async def users(self, conn_ids: list[str]) -> list[bytes | None]:
        """The users recorded for ``conn_ids``, in order (``None`` where none is).

        Raises:
            NotImplementedError: on a backend without shared presence (the hub then
                reads its own tables).
        """
        raise NotImplementedError

    def publish_history(self, room: str, frame: bytes, size: int, ttl: float) -> None:
        """Append ``frame`` to ``room``'s stream (keeping ``size`` publications for ``ttl``
        seconds) with the room's next offset, and publish it to every process subscribed
        to ``room``, this one included, through ``publication_sink`` (enqueue; never
        waits).

        Raises:
            NotImplementedError: unless ``keeps_history``.
        """
        raise NotImplementedError

    async def read_history(self, room: str, since: int, ttl: float, size: int) -> HistoryRead:
        """``room``'s epoch (made if it has none), last offset, and the publications
        after ``since`` still kept (younger than ``ttl`` seconds; ``ttl`` and ``size`` are
        the room's, as given to ``publish_history``).

        Raises:
            NotImplementedError: unless ``keeps_history``.
            BackendUnavailable: if the backend cannot be reached.
        """
        raise NotImplementedError

    def stats(self) -> dict[str, int]:
        """Backend counters (published, failed, reconnects, frames received...)."""
        return {}


async def cancel_and_wait(tasks: Iterable[asyncio.Task[Any] | None]) -> None:
    """Cancel a backend's ``tasks`` (``None`` entries skipped) and wait for them to end.

    Cancels again until they do: on Python < 3.12, ``asyncio.wait_for`` (which the
    drivers use around socket writes) can swallow a cancellation that races with
    completion. Their exceptions are retrieved: a failure while stopping is expected.
    """
    started = [task for task in tasks if task is not None]
    pending = {task for task in started if not task.done()}
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=0.1)
    for task in started:
        if not task.cancelled():
            task.exception()
