"""``HubBackend``: what the hub needs from the bus that joins processes.

Everything that must work across processes goes through it: publishing frames to the
other processes, and the shared view of connections and room membership. Frames are
opaque ``bytes`` (see ``_wire.py``); a backend never looks inside.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

__all__ = ["Deliver", "HubBackend"]

#: Called by the backend with each frame published by another process.
Deliver = Callable[[bytes], None]


class HubBackend(ABC):
    """The interface between one process's hub and the others.

    Methods that only enqueue are plain ``def``; queries are coroutines.
    """

    #: True when there are no other processes (deliveries stay local).
    local_only: bool = False

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
    def publish(self, frame: bytes) -> None:
        """Send ``frame`` to every other process (enqueue; never waits)."""

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

    def stats(self) -> dict[str, int]:
        """Backend counters (published, failed, reconnects...)."""
        return {}
