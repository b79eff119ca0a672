"""The in-process backend (the default): one process, nothing to install."""

from __future__ import annotations

from typing import Any

from .base import Deliver, HubBackend, Route

__all__ = ["MemoryBackend"]


class MemoryBackend(HubBackend):
    """Keeps presence in memory; there are no other processes to publish to."""

    local_only = True

    def __init__(self) -> None:
        self._connections: set[str] = set()
        self._members: dict[str, set[str]] = {}
        self._rooms: dict[str, set[str]] = {}

    @classmethod
    def from_url(cls, url: str, **options: Any) -> MemoryBackend:
        return cls()

    async def start(self, deliver: Deliver) -> None:
        return None

    async def stop(self) -> None:
        self._connections.clear()
        self._members.clear()
        self._rooms.clear()

    def publish(self, frame: bytes, route: Route) -> None:
        return None  # no other process: local delivery is the whole story

    def connection_added(self, conn_id: str) -> None:
        self._connections.add(conn_id)

    def connection_removed(self, conn_id: str) -> None:
        self._connections.discard(conn_id)
        for room in self._rooms.pop(conn_id, set()):
            self._leave(conn_id, room)

    def room_joined(self, conn_id: str, room: str) -> None:
        self._members.setdefault(room, set()).add(conn_id)
        self._rooms.setdefault(conn_id, set()).add(room)

    def _leave(self, conn_id: str, room: str) -> None:
        members = self._members.get(room)
        if members is not None:
            members.discard(conn_id)
            if not members:
                del self._members[room]

    def room_left(self, conn_id: str, room: str) -> None:
        self._leave(conn_id, room)
        rooms = self._rooms.get(conn_id)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms[conn_id]

    async def connection_count(self) -> int:
        return len(self._connections)

    async def room_members(self, room: str) -> set[str]:
        return set(self._members.get(room, ()))

    async def rooms_of(self, conn_id: str) -> set[str]:
        return set(self._rooms.get(conn_id, ()))
