"""Connection records and counters. PURE: no I/O, no asyncio.

The hub keeps one ``ConnectionInfo`` per accepted WebSocket, under its id, and the
totals that ``hub.stats()`` reports.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

__all__ = ["ConnectionInfo", "Counters", "Registry"]

K = TypeVar("K")


@dataclass(slots=True)
class ConnectionInfo:
    """What the hub knows about one connection."""

    id: str
    path: str
    remote_address: str | None
    connected_at: float
    last_activity: float
    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    #: Your own data about the connection (the same object as ``ws.state``'s dict).
    user_data: dict[str, Any] = field(default_factory=dict)
    rooms: frozenset[str] = frozenset()

    def as_dict(self) -> dict[str, Any]:
        """A JSON-friendly copy."""
        return {
            "id": self.id,
            "path": self.path,
            "remote_address": self.remote_address,
            "connected_at": self.connected_at,
            "last_activity": self.last_activity,
            "messages_received": self.messages_received,
            "messages_sent": self.messages_sent,
            "bytes_received": self.bytes_received,
            "bytes_sent": self.bytes_sent,
            "rooms": sorted(self.rooms),
        }


@dataclass
class Counters:
    """Totals since the hub started."""

    connections_total: int = 0
    messages_received: int = 0
    messages_sent: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    dropped: int = 0
    rejected: int = 0
    errors: int = 0
    #: Replies to server-to-client requests that matched no pending request.
    unknown_replies: int = 0
    #: Frames published for other processes, received from them, and undecodable.
    published: int = 0
    remote_frames: int = 0
    invalid_frames: int = 0
    #: Resume requests served (``ws.resume()`` or a client's ``resume`` message).
    resumes: int = 0
    #: ``dropped`` by overflow policy, ``rejected`` by reason.
    dropped_by_policy: dict[str, int] = field(default_factory=dict)
    rejected_by_reason: dict[str, int] = field(default_factory=dict)

    def drop(self, policy: str) -> None:
        """Count a message dropped by an outbox's ``policy``."""
        self.dropped += 1
        self.dropped_by_policy[policy] = self.dropped_by_policy.get(policy, 0) + 1

    def reject(self, reason: str) -> None:
        """Count a connection refused for ``reason``."""
        self.rejected += 1
        self.rejected_by_reason[reason] = self.rejected_by_reason.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        return {
            key: dict(value) if isinstance(value, dict) else value
            for key, value in self.__dict__.items()
        }


class Registry(Generic[K]):
    """Live connections by id, with a per-IP count for connection caps."""

    def __init__(self) -> None:
        self._items: dict[str, K] = {}
        self._per_ip: dict[str, int] = {}
        self._ip_of: dict[str, str] = {}

    def add(self, conn_id: str, item: K, ip: str | None) -> None:
        """Register ``item`` under ``conn_id``.

        Raises:
            KeyError: if the id is already registered (ids must be unique).
        """
        if conn_id in self._items:
            raise KeyError(f"connection id {conn_id!r} is already registered")
        self._items[conn_id] = item
        if ip is not None:
            self._ip_of[conn_id] = ip
            self._per_ip[ip] = self._per_ip.get(ip, 0) + 1

    def remove(self, conn_id: str) -> K | None:
        """Forget ``conn_id``; returns what was registered, or None."""
        item = self._items.pop(conn_id, None)
        ip = self._ip_of.pop(conn_id, None)
        if ip is not None:
            left = self._per_ip[ip] - 1
            if left:
                self._per_ip[ip] = left
            else:
                del self._per_ip[ip]
        return item

    def get(self, conn_id: str) -> K | None:
        return self._items.get(conn_id)

    def count_for_ip(self, ip: str) -> int:
        """How many live connections come from ``ip``."""
        return self._per_ip.get(ip, 0)

    def filter(self, predicate: Callable[[K], bool]) -> list[K]:
        """The items for which ``predicate`` is true."""
        return [item for item in self._items.values() if predicate(item)]

    @property
    def ids(self) -> list[str]:
        return list(self._items)

    def values(self) -> Iterator[K]:
        return iter(self._items.values())

    def __contains__(self, conn_id: object) -> bool:
        return conn_id in self._items

    def __len__(self) -> int:
        return len(self._items)
