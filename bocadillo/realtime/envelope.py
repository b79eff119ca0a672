"""Message envelopes of the message-type protocol. PURE: no I/O, no asyncio.

A client sends a JSON object ``{"type": str, "data": any, "id": str | int}`` where
``data`` and ``id`` are optional. Replies are envelopes too:

- ``{"type": "response", "data": <handler result>, "id": <request id>}``
- ``{"type": "error", "data": {"code": <code>, "message": <text>}, "id": <request id>}``
- ``{"type": <event type>, "data": <payload>}`` for pushes and broadcasts.

Error codes are stable strings, listed in ``ERROR_CODES``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..errors import (
    BackendUnavailable,
    EnvelopeError,
    InvalidArgument,
    RoomFull,
    TooManyRooms,
)
from ..jsoncodec import dumps, loads, loads_lenient
from ..types import JSONValue

__all__ = [
    "ERROR_CODES",
    "ROOM_ERRORS",
    "Envelope",
    "encode_envelope",
    "encode_error",
    "encode_publication",
    "encode_response",
    "parse_envelope",
    "room_error",
]

#: Every error code a client can receive, with what it means.
ERROR_CODES: dict[str, str] = {
    "invalid_json": "the frame is not valid UTF-8 JSON",
    "invalid_envelope": 'the JSON is not an object with a string "type" (and optional "id")',
    "unknown_type": "no handler is registered for this type",
    "invalid_data": "the data does not match the handler's schema",
    "handler_error": "the handler raised an exception",
    "rate_limited": "too many messages in the current window",
    "message_too_large": "the frame is larger than the size limit",
    "room_full": "the room has reached its member limit",
    "too_many_rooms": "the connection is in as many rooms as it may be",
    "forbidden": "the app's can_join hook refused a room (nothing was joined or replayed)",
    "unavailable": "the shared hub backend (Redis) cannot be reached: try again",
}

_MAX_TYPE_LENGTH = 200


def _salvage_id(frame: str | bytes) -> str | int | None:
    """The ``id`` of a frame that is JSON to Python but not strict JSON, if it has one."""
    try:
        obj = loads_lenient(frame)
    except ValueError:
        return None
    return _request_id(obj) if isinstance(obj, dict) else None


@dataclass(frozen=True)
class Envelope:
    """One parsed client message."""

    type: str
    data: JSONValue
    id: str | int | None
    #: The whole decoded JSON object, extra fields included.
    message: dict[str, Any]


def _request_id(obj: dict[str, Any]) -> str | int | None:
    value = obj.get("id")
    if (
        value is None
        or isinstance(value, str)
        or (isinstance(value, int) and not isinstance(value, bool))
    ):
        return value
    return None


def parse_envelope(frame: str | bytes) -> Envelope:
    """Parse one frame (text, or UTF-8 bytes) into an ``Envelope``.

    Raises:
        EnvelopeError: ``invalid_json`` or ``invalid_envelope``; its ``request_id``
            is the message's ``id`` when one could be read, so the error can be
            correlated by the client.
    """
    try:
        obj = loads(frame)
    except ValueError:
        # Whatever the JSON codec refuses (see ``bocadillo.jsoncodec``); for NaN, huge
        # numbers or a lone surrogate the id may still be readable.
        raise EnvelopeError(
            "invalid_json", "message is not valid JSON", request_id=_salvage_id(frame)
        ) from None
    if not isinstance(obj, dict):
        raise EnvelopeError("invalid_envelope", "message must be a JSON object")
    request_id = _request_id(obj)
    if "id" in obj and obj["id"] is not None and request_id is None:
        raise EnvelopeError("invalid_envelope", '"id" must be a string or an integer')
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind:
        raise EnvelopeError(
            "invalid_envelope", 'message needs a non-empty string "type"', request_id=request_id
        )
    if len(kind) > _MAX_TYPE_LENGTH:
        raise EnvelopeError("invalid_envelope", '"type" is too long', request_id=request_id)
    return Envelope(type=kind, data=obj.get("data"), id=request_id, message=obj)


def encode_envelope(kind: str, data: JSONValue, request_id: str | int | None = None) -> str:
    """Encode ``{"type": kind, "data": data}`` (with ``"id"`` when given) as JSON text.

    Raises:
        ValueError: for what the JSON codec refuses to write (``NaN``, ``Infinity``...).
        TypeError: if ``data`` is not JSON-serialisable.
    """
    envelope: dict[str, Any] = {"type": kind, "data": data}
    if request_id is not None:
        envelope["id"] = request_id
    return dumps(envelope)


def encode_publication(kind: str, data: JSONValue, room: str, offset: int, epoch: str) -> str:
    """Encode a publication to a room with history:
    ``{"type", "data", "room", "offset", "epoch"}``.

    Raises:
        ValueError, TypeError: as ``encode_envelope``.
    """
    return dumps({"type": kind, "data": data, "room": room, "offset": offset, "epoch": epoch})


def encode_response(data: JSONValue, request_id: str | int | None) -> str:
    """Encode a handler's return value as a ``response`` envelope."""
    return encode_envelope("response", data, request_id)


def encode_error(code: str, message: str, request_id: str | int | None = None) -> str:
    """Encode an ``error`` envelope with a stable ``code`` and a human-readable message."""
    return encode_envelope("error", {"code": code, "message": message}, request_id)


#: The exceptions a room operation raises that a client is told about, by error code.
ROOM_ERRORS: tuple[tuple[type[Exception], str], ...] = (
    (RoomFull, "room_full"),
    (TooManyRooms, "too_many_rooms"),
    (InvalidArgument, "invalid_data"),
    (BackendUnavailable, "unavailable"),
)


def room_error(exc: Exception, request_id: str | int | None) -> str | None:
    """The error envelope for an exception of ``ROOM_ERRORS`` (None for any other)."""
    for kind, code in ROOM_ERRORS:
        if isinstance(exc, kind):
            return encode_error(code, str(exc), request_id)
    return None
