"""WebSocket codecs: how ``ws.send()`` encodes and ``ws.receive()`` decodes a message.

A route picks a codec for each direction: ``text``, ``bytes``, ``json``, or ``event``
(Bocadillo 0.18's: the raw ASGI events, ``{"type": "websocket.receive", "text": ...}``
received and ``{"type": "websocket.send", ...}`` sent). Encoding
builds the ASGI ``websocket.send`` event; decoding turns a ``websocket.receive`` event
into a value, or raises ``_Undecodable`` with the close code the connection must end
with. It also normalizes a route's ``caught_close_codes``. No I/O here.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any, Literal, TypeVar

from .closecodes import CloseCode
from .errors import ConfigurationError
from .jsoncodec import dumps, loads
from .types import JSONValue, Message

__all__ = [
    "DECODERS",
    "DEFAULT_CAUGHT_CLOSE_CODES",
    "CaughtCloseCodes",
    "Codec",
    "Decoder",
    "check_codec",
    "decode_bytes",
    "decode_event",
    "decode_frame",
    "decode_json",
    "decode_text",
    "encode_message",
    "normalize_caught_codes",
]

Codec = Literal["text", "bytes", "json", "event"]
#: An iterable of close codes, or the built-in ``all`` (typed as the function it is).
CaughtCloseCodes = Iterable[int] | Callable[[Iterable[object]], bool]
_CODECS = ("text", "bytes", "json", "event")
#: The close codes a view ends silently on when the route names none.
DEFAULT_CAUGHT_CLOSE_CODES = frozenset({int(CloseCode.NORMAL_CLOSURE), int(CloseCode.GOING_AWAY)})
_T = TypeVar("_T")
#: Turns a ``websocket.receive`` message into a value, or raises ``_Undecodable``.
Decoder = Callable[[Message], _T]


def check_codec(name: str, value: str) -> Codec:
    """Validate a codec name given at registration.

    Raises:
        ConfigurationError: if ``value`` is not ``text``, ``bytes``, ``json`` or ``event``.
    """
    if value not in _CODECS:
        raise ConfigurationError(f"{name} must be one of {', '.join(_CODECS)}, not {value!r}")
    return value  # type: ignore[return-value]


class _CatchAll:
    """A container that holds every close code (used for ``caught_close_codes=all``)."""

    def __contains__(self, code: object) -> bool:
        return True

    def __repr__(self) -> str:
        return "all"


def normalize_caught_codes(codes: Any) -> Any:
    """Turn the ``caught_close_codes`` argument into a container of ints.

    Idempotent, so a route can normalize once at registration. ``None`` means the
    default: 1000 (normal closure) and 1001 (going away).

    Raises:
        ConfigurationError: unless ``codes`` is ``None``, ``all`` or an iterable of ``int``
            codes.
    """
    if codes is None:
        return DEFAULT_CAUGHT_CLOSE_CODES
    if codes is all:
        return _CatchAll()
    if isinstance(codes, _CatchAll):
        return codes
    if isinstance(codes, (str, bytes)) or not isinstance(codes, Iterable):
        raise ConfigurationError(
            f"caught_close_codes must be an iterable of close codes or all, not {codes!r}"
        )
    members = tuple(codes)
    for code in members:
        if not isinstance(code, int) or isinstance(code, bool):
            raise ConfigurationError(f"caught_close_codes holds {code!r}, not a close code")
    if isinstance(codes, frozenset) and all(type(code) is int for code in members):
        return codes  # already normalized (by the route): shared, not copied per connection
    return frozenset(int(code) for code in members)


def encode_message(value: Any, send_type: Codec) -> Message:
    """Build the ``websocket.send`` event for ``value`` under ``send_type``.

    Raises:
        TypeError: if ``value`` does not fit the send type.
    """
    if send_type == "event":
        if not isinstance(value, dict) or value.get("type") != "websocket.send":
            raise TypeError(
                "send_type='event' sends ASGI events: "
                '{"type": "websocket.send", "text": ...} or {..., "bytes": ...}'
            )
        return value
    if send_type == "json":
        return {"type": "websocket.send", "text": dumps(value)}
    if isinstance(value, str):
        if send_type == "bytes":
            return {"type": "websocket.send", "bytes": value.encode("utf-8")}
        return {"type": "websocket.send", "text": value}
    if isinstance(value, (bytes, bytearray, memoryview)):
        return {"type": "websocket.send", "bytes": bytes(value)}
    raise TypeError(
        f"send_type={send_type!r} sends str or bytes, not {type(value).__name__}; "
        "use send_json() or send_type='json'"
    )


# Decoding received frames -------------------------------------------------------------------


class _Undecodable(Exception):
    """A frame the codec cannot decode: the connection is closed with ``code``.

    Internal: ``WebSocket`` turns it into a close and a ``WebSocketDisconnect``.
    """

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def decode_frame(message: Message) -> str | bytes:
    text = message.get("text")
    if text is not None:
        return str(text)
    return bytes(message.get("bytes") or b"")


def decode_text(message: Message) -> str:
    text = message.get("text")
    if text is not None:
        return str(text)
    try:
        return bytes(message.get("bytes") or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise _Undecodable(CloseCode.INVALID_DATA, "expected UTF-8 text") from None


def decode_bytes(message: Message) -> bytes:
    data = message.get("bytes")
    if data is not None:
        return bytes(data)
    return str(message.get("text") or "").encode("utf-8")


def decode_json(message: Message) -> JSONValue:
    raw = message.get("text")
    if raw is None:
        raw = message.get("bytes") or b""
    try:
        return loads(raw)
    except ValueError:
        # Not UTF-8, not JSON, or what JSON cannot hold (see jsoncodec.loads).
        raise _Undecodable(CloseCode.INVALID_DATA, "invalid JSON") from None


def decode_event(message: Message) -> Message:
    """The ``websocket.receive`` event itself (the ``event`` codec)."""
    return message


DECODERS: dict[str, Decoder[Any]] = {
    "text": decode_text,
    "bytes": decode_bytes,
    "json": decode_json,
    "event": decode_event,
}
