"""Delivery: encode a payload once per codec and hand it to the recipients' outboxes.

A broadcast never awaits a client. Its recipients are grouped by the codec they take
messages in (``text``, ``bytes``, ``json`` or ``envelope``); the payload is encoded once
per group, every group before the first send (so bad data fails before any client got
it), then put in each recipient's bounded outbox.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Literal

from ..types import JSONValue, Message
from .envelope import encode_envelope

if TYPE_CHECKING:
    from .session import Session

__all__ = ["Groups", "MessageCodec", "deliver", "encode_for", "group", "message_size"]

MessageCodec = Literal["text", "bytes", "json", "envelope"]
#: Recipients by the codec they take broadcasts in.
Groups = list[tuple[MessageCodec, list["Session"]]]
dumps = json.JSONEncoder(ensure_ascii=False, separators=(",", ":")).encode


def encode_for(codec: MessageCodec, data: JSONValue, kind: str | None) -> Message:
    """The ASGI ``websocket.send`` message carrying ``data`` for a connection's codec.

    ``envelope`` connections get ``{"type": kind or "message", "data": data}``; ``json``
    gets the data as JSON; ``text`` and ``bytes`` send ``str``/``bytes`` as they are and
    anything else as JSON.

    Raises:
        TypeError, ValueError: if ``data`` cannot be encoded as JSON where JSON is needed.
    """
    if codec == "envelope":
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


def deliver(groups: Groups, data: JSONValue, kind: str | None) -> tuple[int, int]:
    """Hand ``data`` to every recipient of ``groups``, encoded once per codec.

    Returns:
        How many recipients took it, and the bytes they took in all.

    Raises:
        TypeError, ValueError: if ``data`` cannot be encoded (before any send).
    """
    encoded = [(encode_for(codec, data, kind), members) for codec, members in groups]
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
