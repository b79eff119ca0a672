"""A connection registered on a ``Hub`` directly, recording what the hub sends it.

The tests of the hub and of its backends use it instead of a WebSocket: ``send`` and
``close`` are the callbacks a real connection would give the hub.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from bocadillo.realtime.hub import Hub
from bocadillo.types import ConnectionId, Message

__all__ = ["HubClient"]


class HubClient:
    """Register ``conn_id`` on ``hub`` with recording callbacks.

    Args:
        hub: The hub to register on.
        conn_id: The connection's id.
        codec: How the hub encodes what it sends this connection.

    Attributes:
        messages: Every ASGI message the hub sent, in order.
        closed: ``(code, reason)`` once the hub closed the connection (which also
            unregisters it, as a real connection's end would).
        writable: Cleared, ``send`` waits: a client that stopped reading.
    """

    def __init__(self, hub: Hub, conn_id: str, codec: Any = "json") -> None:
        self.id = conn_id
        self.hub = hub
        self.messages: list[Message] = []
        self.closed: tuple[int, str] | None = None
        self.writable = asyncio.Event()
        self.writable.set()
        hub.session(
            ConnectionId(conn_id),
            self._send,
            codec=codec,
            close=self._close,
            path="/test",
            remote_address="127.0.0.1",
        ).register()

    async def _send(self, message: Message) -> None:
        await self.writable.wait()
        self.messages.append(message)

    async def _close(self, code: int, reason: str) -> None:
        self.closed = (code, reason)
        self.hub.unregister(self.id)

    @property
    def texts(self) -> list[str]:
        """The text frames received."""
        return [m["text"] for m in self.messages]

    @property
    def received(self) -> list[Any]:
        """The text frames received, decoded as JSON."""
        return [json.loads(text) for text in self.texts]
