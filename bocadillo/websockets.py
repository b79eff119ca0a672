"""The WebSocket object handed to WebSocket views as ``ws``.

It keeps the accept/close state machine of one connection and encodes and decodes
messages with the route's codecs (``text``, ``bytes`` or ``json``).

State machine::

    connecting --accept()--> connected --close()/client disconnect--> closed
    connecting --reject()/close()--> closed        (the client gets an HTTP 403)

Once closed, ``receive()`` and ``send()`` raise ``WebSocketDisconnect`` with the close
code, and a second ``close()`` raises ``InvalidState``.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterable
from types import TracebackType
from typing import Any, Literal, TypeVar

from starlette.datastructures import QueryParams, State
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from .closecodes import HANDSHAKE_REJECTED_STATUS, CloseCode
from .errors import ConfigurationError, InvalidState
from .realtime.envelope import encode_error
from .realtime.hub import Connection, Hub
from .request import loads_strict
from .types import ConnectionId, JSONValue, Message, Receive, Scope, Send

__all__ = [
    "CaughtCloseCodes",
    "Codec",
    "WebSocket",
    "WebSocketDisconnect",
    "new_connection_id",
]

Codec = Literal["text", "bytes", "json"]
#: An iterable of close codes, or the built-in ``all`` (typed as the function it is).
CaughtCloseCodes = Iterable[int] | Callable[[Iterable[object]], bool]
_CODECS = ("text", "bytes", "json")
_json_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
_T = TypeVar("_T")
#: Turns a ``websocket.receive`` message into a value, or raises ``_Undecodable``.
Decoder = Callable[[Message], _T]


def new_connection_id() -> ConnectionId:
    """Return a new random, URL-safe connection id (16 characters, 96 bits)."""
    return ConnectionId(secrets.token_urlsafe(12))


def check_codec(name: str, value: str) -> Codec:
    """Validate a codec name given at registration.

    Raises:
        ConfigurationError: if ``value`` is not ``text``, ``bytes`` or ``json``.
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

    Idempotent, so a route can normalize once at registration.

    Raises:
        ConfigurationError: unless ``codes`` is ``all`` or an iterable of ``int`` codes.
    """
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


AcceptCallback = Callable[["WebSocket"], Awaitable[None]]


class WebSocket(HTTPConnection):
    """One WebSocket connection.

    Besides the attributes shared with ``Request`` (``url``, ``headers``,
    ``query_params``, ``cookies``, ``client``, ``path_params``, ``session``), it has:

    - ``id``: a unique, URL-safe connection id, available before ``accept()``;
    - ``state``: a ``State`` for your own per-connection data;
    - ``close_code``: the code the connection closed with (``None`` while open).

    Args:
        scope, receive, send: The ASGI connection.
        receive_type: The codec of ``receive()``: ``"text"``, ``"bytes"`` or ``"json"``.
        send_type: The codec of ``send()``.
        caught_close_codes: Client close codes that end the view silently.
        id: The connection id; a random one is made when omitted.
    """

    def __init__(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        *,
        receive_type: Codec = "text",
        send_type: Codec = "text",
        caught_close_codes: Any = (CloseCode.NORMAL_CLOSURE, CloseCode.GOING_AWAY),
        id: str | None = None,
    ) -> None:
        super().__init__(scope)
        self._receive = receive
        self._send = send
        self.id: ConnectionId = ConnectionId(id) if id is not None else new_connection_id()
        self.receive_type = receive_type
        self.send_type = send_type
        self.caught_close_codes = normalize_caught_codes(caught_close_codes)
        self._connect_received = False
        self._accepted = False
        self._closed = False
        self.closed_by_server = False
        self._close_called = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.subprotocol: str | None = None
        self._user_state = State()
        self._accept_callbacks: list[AcceptCallback] = []
        #: The provider values of this connection (set when the app has providers).
        self.providers: Any = None
        #: The app's hub, once the route hands the connection to it.
        self.hub: Hub | None = None
        #: The hub's handle on this connection, once accepted and registered.
        self.connection: Connection | None = None

    # Connection data -----------------------------------------------------------------------

    @property
    def state(self) -> State:
        """Per-connection user data: set any attribute on it."""
        return self._user_state

    @property
    def query_parameters(self) -> QueryParams:
        """Alias of ``query_params`` (the name used by Bocadillo 0.x)."""
        return self.query_params

    @property
    def subprotocols(self) -> list[str]:
        """The subprotocols the client offered, in its order of preference."""
        return list(self.scope.get("subprotocols", []))

    @property
    def accepted(self) -> bool:
        """Whether ``accept()`` has been sent."""
        return self._accepted

    @property
    def closed(self) -> bool:
        """Whether the connection is closed, by either side."""
        return self._closed

    def on_accept(self, callback: AcceptCallback) -> None:
        """Run ``await callback(ws)`` right after the connection is accepted."""
        self._accept_callbacks.append(callback)

    # Raw ASGI events -----------------------------------------------------------------------

    async def receive_event(self) -> Message:
        """Receive the next raw ASGI event (``websocket.receive`` or ``websocket.disconnect``).

        A ``websocket.disconnect`` event marks the connection closed; it is returned,
        not raised.
        """
        if not self._connect_received:
            message = await self._receive()
            self._connect_received = True
            if message["type"] == "websocket.connect":
                return message
        else:
            message = await self._receive()
        if message["type"] == "websocket.disconnect":
            self._mark_closed(message.get("code", CloseCode.NORMAL_CLOSURE), message.get("reason"))
        return message

    async def send_event(self, message: Message) -> None:
        """Send a raw ASGI event (``websocket.accept``, ``websocket.send``, ``websocket.close``)."""
        kind = message["type"]
        if kind == "websocket.accept":
            self._accepted = True
        elif kind == "websocket.close":
            self._mark_closed(message.get("code", CloseCode.NORMAL_CLOSURE), message.get("reason"))
            self.closed_by_server = True
        await self._send(message)

    def _mark_closed(self, code: int, reason: str | None) -> None:
        if not self._closed:
            self._closed = True
            self.close_code = code
            self.close_reason = reason or ""

    # Handshake and closing -----------------------------------------------------------------

    async def accept(
        self, subprotocol: str | None = None, headers: Iterable[tuple[bytes, bytes]] | None = None
    ) -> None:
        """Accept the connection; a no-op if it is already accepted.

        Args:
            subprotocol: The subprotocol to select, one of ``ws.subprotocols``.
            headers: Extra headers for the handshake response.

        Raises:
            InvalidState: if the connection was rejected or closed before being accepted.
            WebSocketDisconnect: if the client went away during the handshake.
        """
        if self._accepted:
            return
        if self._closed:
            raise InvalidState("cannot accept a WebSocket that was rejected or closed")
        if not self._connect_received:
            message = await self.receive_event()
            if message["type"] != "websocket.connect":
                raise WebSocketDisconnect(self.close_code or CloseCode.ABNORMAL_CLOSURE)
        self.subprotocol = subprotocol
        await self.send_event(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": list(headers or [])}
        )
        for callback in self._accept_callbacks:
            await callback(self)
            if self._closed:
                break

    async def reject(self) -> None:
        """Refuse the connection: the client gets an HTTP 403 answer to its handshake.

        Call it before ``accept()`` (with ``auto_accept=False``, or in an ``on_connect``
        hook's place). After accept, the WebSocket protocol has no 403: the connection is
        closed with 1008 (policy violation) instead. Return from the view afterwards.

        Raises:
            InvalidState: if the connection is already closed.
        """
        if self._accepted:
            await self.close(CloseCode.POLICY_VIOLATION)
        else:
            await self.close(HANDSHAKE_REJECTED_STATUS)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection with ``code`` (before accept: reject with HTTP 403).

        Raises:
            InvalidState: if ``close()`` was already called on this connection.
        """
        if self.closed_by_server or self._close_called:
            raise InvalidState(f"WebSocket already closed with code {self.close_code}")
        self._close_called = True
        if self._closed:
            # The client left first: there is nobody to send a close frame to. This is
            # not a server-side close, so the client's code still decides `silences()`.
            return
        try:
            await self.send_event({"type": "websocket.close", "code": int(code), "reason": reason})
        except OSError:
            pass  # the transport is gone; the connection is closed either way

    async def ensure_closed(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """Close the connection unless it is already closed. Never raises."""
        if self._closed:
            return
        await self.close(code)

    async def __aenter__(self) -> WebSocket:
        await self.accept()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool:
        if isinstance(exc, WebSocketDisconnect):
            return self.silences(exc)
        if exc is not None and isinstance(exc, Exception):
            await self.ensure_closed(CloseCode.INTERNAL_ERROR)
            return False
        await self.ensure_closed(CloseCode.NORMAL_CLOSURE)
        return False

    def silences(self, exc: WebSocketDisconnect) -> bool:
        """Whether ``exc`` ends the connection quietly.

        True when the server closed the connection itself (then the exception only
        unwinds the view), or the client's close code is in ``caught_close_codes``.
        """
        return self.closed_by_server or exc.code in self.caught_close_codes

    # Receiving -----------------------------------------------------------------------------

    async def _next(self, decode: Decoder[_T]) -> _T:
        """Receive the next data frame and return ``decode(message)``.

        The one coroutine between the view and the ASGI ``receive``: every ``receive*``
        method and ``async for`` hand it their decoder, so a message costs one frame here.
        """
        if self._closed:
            raise WebSocketDisconnect(
                self.close_code or CloseCode.NORMAL_CLOSURE, self.close_reason
            )
        if not self._accepted:
            raise InvalidState("call accept() before receiving (or use auto_accept=True)")
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                code = message.get("code", CloseCode.NORMAL_CLOSURE)
                self._mark_closed(code, message.get("reason"))
                raise WebSocketDisconnect(code, message.get("reason"))
            conn = self.connection
            if conn is not None:
                # The hot path, with `message_size` inlined: count the frame (on the
                # connection and the hub), and await only when a limit has something to say.
                text = message.get("text")
                if text is not None:
                    size = len(text) if text.isascii() else len(text.encode("utf-8"))
                else:
                    size = len(message.get("bytes") or b"")
                hub = self.hub
                assert hub is not None
                info = conn.info
                info.messages_received += 1
                info.bytes_received += size
                info.last_activity = hub.clock()
                counters = hub.counters
                counters.messages_received += 1
                counters.bytes_received += size
                max_size = hub.limits.max_message_size
                if ((max_size is not None and size > max_size) or conn.rate is not None) and (
                    not await self._admit(hub, conn, size)
                ):
                    continue
            try:
                return decode(message)
            except _Undecodable as exc:
                raise await self._invalid(exc.code, exc.reason) from None

    async def _admit(self, hub: Hub, conn: Connection, size: int) -> bool:
        """Apply the hub's size and rate limits to a received frame of ``size`` bytes.

        Returns:
            False if the frame must be skipped (rate limited).

        Raises:
            WebSocketDisconnect: after closing with 1009 (too large) or 1008 (too many
                rate-limit violations).
        """
        limits = hub.limits
        envelope = conn.codec == "envelope"
        if limits.max_message_size is not None and size > limits.max_message_size:
            if envelope:
                await self._send_quietly(
                    encode_error(
                        "message_too_large",
                        f"frames are limited to {limits.max_message_size} bytes",
                    )
                )
            raise await self._invalid(CloseCode.MESSAGE_TOO_BIG, "message too large")
        if conn.rate is not None:
            verdict = conn.rate.check(hub.clock())
            if not verdict.allowed:
                hub.counters.dropped += 1
                if verdict.close:
                    raise await self._invalid(CloseCode.POLICY_VIOLATION, "rate limit exceeded")
                if envelope:
                    await self._send_quietly(
                        encode_error("rate_limited", "too many messages: slow down")
                    )
                return False
        return True

    async def _send_quietly(self, text: str) -> None:
        try:
            await self._send_data({"type": "websocket.send", "text": text})
        except (WebSocketDisconnect, OSError):
            pass

    async def _invalid(self, code: CloseCode, reason: str) -> WebSocketDisconnect:
        await self.close(code, reason)
        return WebSocketDisconnect(code, reason)

    def receive_frame(self) -> Coroutine[Any, Any, str | bytes]:
        """Receive one frame as it came: ``str`` for text, ``bytes`` for binary."""
        return self._next(_decode_frame)

    def receive_text(self) -> Coroutine[Any, Any, str]:
        """Receive one message as text. A binary frame is decoded as UTF-8.

        Raises:
            WebSocketDisconnect: when the client disconnects, or with 1007 (after closing
                the connection) when a binary frame is not valid UTF-8.
        """
        return self._next(_decode_text)

    def receive_bytes(self) -> Coroutine[Any, Any, bytes]:
        """Receive one message as bytes. A text frame is encoded as UTF-8.

        Raises:
            WebSocketDisconnect: when the client disconnects.
        """
        return self._next(_decode_bytes)

    def receive_json(self) -> Coroutine[Any, Any, JSONValue]:
        """Receive one message (text or UTF-8 binary frame) and parse it as JSON.

        Raises:
            WebSocketDisconnect: when the client disconnects, or with 1007 (after closing
                the connection) when the message is not valid JSON.
        """
        return self._next(_decode_json)

    def receive(self) -> Coroutine[Any, Any, Any]:
        """Receive one message decoded with the route's ``receive_type``."""
        return self._next(_DECODERS[self.receive_type])

    def __aiter__(self) -> AsyncIterator[Any]:
        """Yield received messages (decoded with the route's ``receive_type``) forever; a
        disconnect raises ``WebSocketDisconnect``."""
        return _Messages(self, _DECODERS[self.receive_type])

    # Sending -------------------------------------------------------------------------------

    async def _send_data(self, message: Message) -> None:
        if self._closed:
            raise WebSocketDisconnect(
                self.close_code or CloseCode.NORMAL_CLOSURE, self.close_reason
            )
        if not self._accepted:
            raise InvalidState("call accept() before sending (or use auto_accept=True)")
        conn = self.connection
        try:
            if conn is None:
                await self._send(message)
                return
            # Through the outbox, so the view's own sends keep their order with what the
            # hub delivers to this connection.
            await conn.outbox.send(message)
        except OSError:
            self._mark_closed(CloseCode.ABNORMAL_CLOSURE, "connection lost")
            raise WebSocketDisconnect(CloseCode.ABNORMAL_CLOSURE) from None
        # `message_size`, inlined (the hot path).
        text = message.get("text")
        if text is not None:
            size = len(text) if text.isascii() else len(text.encode("utf-8"))
        else:
            size = len(message.get("bytes") or b"")
        outbox = conn.outbox
        outbox.taken += 1
        outbox.taken_bytes += size
        assert self.hub is not None
        counters = self.hub.counters
        counters.messages_sent += 1
        counters.bytes_sent += size

    def send_text(self, data: str) -> Coroutine[Any, Any, None]:
        """Send a text frame."""
        return self._send_data({"type": "websocket.send", "text": data})

    def send_bytes(self, data: bytes) -> Coroutine[Any, Any, None]:
        """Send a binary frame."""
        return self._send_data({"type": "websocket.send", "bytes": data})

    def send_json(self, data: JSONValue) -> Coroutine[Any, Any, None]:
        """Send ``data`` encoded as compact JSON in a text frame.

        Raises:
            TypeError, ValueError: if ``data`` cannot be encoded (raised by the call).
        """
        return self._send_data({"type": "websocket.send", "text": _json_encoder.encode(data)})

    def send(self, value: Any) -> Coroutine[Any, Any, None]:
        """Send ``value`` with the route's ``send_type``.

        ``text`` sends a ``str`` as a text frame (``bytes`` as a binary frame);
        ``bytes`` sends ``bytes`` (a ``str`` is encoded as UTF-8); ``json`` encodes any
        JSON-serialisable value.

        Raises:
            TypeError: if ``value`` does not fit the send type (raised by the call).
            WebSocketDisconnect: if the connection is closed.
        """
        return self._send_data(encode_message(value, self.send_type))

    # The hub ---------------------------------------------------------------------------------

    @property
    def raw_send(self) -> Send:
        """The connection's ASGI ``send`` (what the hub's outbox writes to)."""
        return self._send

    def attach(self, connection: Connection) -> None:
        """Called by the route once the hub has registered this connection."""
        self.connection = connection

    async def close_from_hub(self, code: int, reason: str) -> None:
        """Close on the hub's behalf (limits, ``hub.disconnect``, shutdown)."""
        if not self.closed_by_server:
            await self.close(code, reason)

    def _require_hub(self) -> Hub:
        if self.hub is None or self.connection is None:
            raise InvalidState("this WebSocket is not registered with a hub (accept it first)")
        return self.hub

    def join(self, room: str) -> None:
        """Join ``room`` (created on first join); left automatically on disconnect.

        Raises:
            InvalidState: before the connection is accepted.
            RoomFull: if the room has reached ``max_room_members``.
        """
        self._require_hub().join(self.id, room)

    def leave(self, room: str) -> None:
        """Leave ``room`` (a no-op if not in it)."""
        self._require_hub().leave(self.id, room)

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in."""
        if self.hub is None:
            return frozenset()
        return self.hub.rooms_of(self.id)

    def broadcast(
        self,
        data: JSONValue,
        *,
        type: str | None = None,
        room: str | None = None,
        to: Iterable[str] | None = None,
        exclude: Iterable[str] | None = None,
        exclude_self: bool = False,
    ) -> int:
        """Broadcast through the app's hub (see ``Hub.broadcast``); never waits.

        Returns:
            How many connections took the message.
        """
        hub = self._require_hub()
        excluded = list(exclude or ())
        if exclude_self:
            excluded.append(self.id)
        return hub.broadcast(data, type=type, room=room, to=to, exclude=excluded or None)

    def __repr__(self) -> str:
        return f"<WebSocket {self.id} {self.url.path}>"

    def __eq__(self, other: Any) -> bool:
        return self is other

    __hash__ = object.__hash__


def encode_message(value: Any, send_type: Codec) -> Message:
    """Build the ``websocket.send`` event for ``value`` under ``send_type``.

    Raises:
        TypeError: if ``value`` does not fit the send type.
    """
    if send_type == "json":
        return {"type": "websocket.send", "text": _json_encoder.encode(value)}
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
    """A frame the codec cannot decode: the connection is closed with ``code``."""

    def __init__(self, code: CloseCode, reason: str) -> None:
        super().__init__(reason)
        self.code = code
        self.reason = reason


def _decode_frame(message: Message) -> str | bytes:
    text = message.get("text")
    if text is not None:
        return str(text)
    return bytes(message.get("bytes") or b"")


def _decode_text(message: Message) -> str:
    text = message.get("text")
    if text is not None:
        return str(text)
    try:
        return bytes(message.get("bytes") or b"").decode("utf-8")
    except UnicodeDecodeError:
        raise _Undecodable(CloseCode.INVALID_DATA, "expected UTF-8 text") from None


def _decode_bytes(message: Message) -> bytes:
    data = message.get("bytes")
    if data is not None:
        return bytes(data)
    return str(message.get("text") or "").encode("utf-8")


def _decode_json(message: Message) -> JSONValue:
    raw = message.get("text")
    if raw is None:
        raw = message.get("bytes") or b""
    try:
        return loads_strict(raw)
    except (ValueError, RecursionError):
        # Not UTF-8, not JSON, NaN/Infinity, an integer with too many digits (all
        # ValueErrors), or nested too deeply.
        raise _Undecodable(CloseCode.INVALID_DATA, "invalid JSON") from None


_DECODERS: dict[str, Decoder[Any]] = {
    "text": _decode_text,
    "bytes": _decode_bytes,
    "json": _decode_json,
}


class _Messages:
    """``async for message in ws``: each step is the WebSocket's own receive coroutine (no
    generator frame in between)."""

    __slots__ = ("_decode", "_ws")

    def __init__(self, ws: WebSocket, decode: Decoder[Any]) -> None:
        self._ws = ws
        self._decode = decode

    def __aiter__(self) -> _Messages:
        return self

    def __anext__(self) -> Coroutine[Any, Any, Any]:
        return self._ws._next(self._decode)
