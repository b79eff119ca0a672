"""One live connection as the hub sees it, the hub's limits, and per-codec encoding.

Nothing here does I/O by itself: a ``Connection`` holds the outbox and the ``close``
callback that its WebSocket registered.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from ..types import ConnectionId, JSONValue, Message
from .envelope import encode_envelope
from .limits import RateLimiter
from .outbox import Outbox, OverflowPolicy
from .registry import ConnectionInfo

__all__ = [
    "CloseCallback",
    "Connection",
    "HubLimits",
    "MessageCodec",
    "encode_for",
    "message_size",
]

logger = logging.getLogger("bocadillo.hub")
MessageCodec = Literal["text", "bytes", "json", "envelope"]
CloseCallback = Callable[[int, str], Awaitable[None]]
_json = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))


@dataclass
class HubLimits:
    """Limits applied by the hub; ``None`` means no limit. See ``docs/realtime.md``."""

    #: Accepted ``Origin`` values for WebSockets (``None``: any; ``[]``: none).
    allowed_origins: list[str] | None = None
    #: Live connections in this process; more are refused with 1013.
    max_connections: int | None = None
    #: Live connections from one client IP; more are refused with 1013.
    max_connections_per_ip: int | None = None
    #: Members of one room; a join over it is refused (``room_full``).
    max_room_members: int | None = None
    #: ``(messages, seconds)``: the rate limit per connection.
    rate_limit: tuple[int, float] | None = None
    #: Rate-limit violations after which the connection is closed with 1008.
    rate_limit_violations: int | None = 10
    #: Largest accepted frame in bytes; larger closes with 1009.
    max_message_size: int | None = 64 * 1024
    #: Seconds without a received message before closing with 1001.
    idle_timeout: float | None = None
    #: Messages queued for a slow client before the overflow policy applies.
    outbox_limit: int = 256
    #: What to do when an outbox is full: drop_oldest, drop_newest or close (1013).
    overflow: OverflowPolicy = "drop_oldest"


def encode_for(codec: MessageCodec, data: JSONValue, kind: str | None) -> Message:
    """The ASGI ``websocket.send`` message carrying ``data`` for a connection's codec.

    ``envelope`` connections get ``{"type": kind or "message", "data": data}``; ``json``
    gets the data as JSON; ``text`` and ``bytes`` send ``str``/``bytes`` as they are and
    anything else as JSON.

    Raises:
        TypeError: if ``data`` is not JSON-serialisable where JSON is needed.
    """
    if codec == "envelope":
        return {"type": "websocket.send", "text": encode_envelope(kind or "message", data)}
    if codec == "json":
        return {"type": "websocket.send", "text": _json.encode(data)}
    if isinstance(data, (bytes, bytearray, memoryview)):
        return {"type": "websocket.send", "bytes": bytes(data)}
    text = data if isinstance(data, str) else _json.encode(data)
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


class Connection:
    """The hub's handle on one live connection."""

    __slots__ = ("_close", "codec", "id", "info", "outbox", "rate", "task")

    def __init__(
        self,
        conn_id: ConnectionId,
        info: ConnectionInfo,
        outbox: Outbox,
        codec: MessageCodec,
        close: CloseCallback,
        rate: RateLimiter | None,
    ) -> None:
        self.id = conn_id
        self.info = info
        self.outbox = outbox
        self.codec = codec
        self._close = close
        self.rate = rate
        self.task: asyncio.Task[Any] | None = None

    async def close(self, code: int, reason: str = "") -> None:
        """Close the connection (errors of a dead transport are ignored)."""
        try:
            await self._close(code, reason)
        except Exception:  # the client is gone or already closed: nothing left to do
            logger.debug("closing %s failed", self.id, exc_info=True)
