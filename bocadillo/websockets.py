"""The WebSocket object handed to WebSocket views as ``ws``.

It keeps the accept/close state machine of one connection and encodes and decodes
messages with the route's codecs (``codecs.py``). What the hub decides about the
connection (limits, counters, delivery order) belongs to its session
(``realtime/session.py``); the ``WebSocket`` only awaits what the session says.

Its state machine is ``WebSocketState`` (``wsstate.py``).

Once closed, ``receive()`` and ``send()`` raise ``WebSocketDisconnect`` with the close
code, and a second ``close()`` raises ``InvalidState``.
"""

from __future__ import annotations

import asyncio
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Coroutine,
    Iterable,
    Iterator,
)
from types import TracebackType
from typing import Any, TypeVar

from starlette.datastructures import QueryParams, State
from starlette.requests import HTTPConnection
from starlette.websockets import WebSocketDisconnect

from .closecodes import HANDSHAKE_REJECTED_STATUS, CloseCode
from .codecs import (
    DECODERS,
    CaughtCloseCodes,
    Codec,
    Decoder,
    _Undecodable,
    decode_bytes,
    decode_frame,
    decode_json,
    decode_text,
    encode_message,
    normalize_caught_codes,
)
from .errors import InvalidState
from .jsoncodec import loads
from .membership import HubMembership
from .realtime.delivery import message_size
from .realtime.envelope import encode_error
from .realtime.hub import new_connection_id
from .types import ConnectionId, JSONValue, Message, Receive, Scope, Send
from .wsstate import ACCEPTED, BY_SERVER, CLOSED, WebSocketState

__all__ = [
    "CaughtCloseCodes",
    "Codec",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketState",
    "new_connection_id",
]

_T = TypeVar("_T")
_CONNECTING = WebSocketState.CONNECTING
_HANDSHAKE = WebSocketState.HANDSHAKE
_OPEN = WebSocketState.OPEN
_ACCEPTED = ACCEPTED
_CLOSED = CLOSED
_BY_SERVER = BY_SERVER


class WebSocket(HubMembership, HTTPConnection):
    """One WebSocket connection.

    Besides the attributes shared with ``Request`` (``url``, ``headers``,
    ``query_params``, ``cookies``, ``client``, ``path_params``, ``session``), it has:

    - ``id``: a unique, URL-safe connection id, available before ``accept()``;
    - ``state``: a ``State`` for your own per-connection data;
    - ``close_code``: the code the connection closed with (``None`` while open).

    Args:
        scope: The ASGI connection's scope.
        receive: Its ASGI ``receive``.
        send: Its ASGI ``send``.
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
        self.id = ConnectionId(id) if id is not None else new_connection_id()
        self.receive_type = receive_type
        self.send_type = send_type
        self.caught_close_codes = normalize_caught_codes(caught_close_codes)
        self._phase = _CONNECTING
        # close() was called after the client had left (a no-op, but a second call raises).
        self._close_called = False
        self.close_code: int | None = None
        self.close_reason = ""
        self.subprotocol: str | None = None
        self._user_state = State()
        # Run right after accept (the route's on_connect hooks).
        self._on_accept: Callable[[WebSocket], Awaitable[None]] | None = None
        #: The provider values of this connection (set when the app has providers).
        self.providers: Any = None
        self.hub = None
        self._session = None

    # Connection data -----------------------------------------------------------------------

    @property
    def state(self) -> State:
        """Per-connection user data: set any attribute on it."""
        return self._user_state

    @property
    def connection_state(self) -> WebSocketState:
        """Where the connection is in its life."""
        return self._phase

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
        return self._phase in _ACCEPTED

    @property
    def closed(self) -> bool:
        """Whether the connection is closed, by either side."""
        return self._phase in _CLOSED

    @property
    def closed_by_server(self) -> bool:
        """Whether the server closed (or rejected) the connection."""
        return self._phase in _BY_SERVER

    # Raw ASGI events -----------------------------------------------------------------------

    async def receive_event(self) -> Message:
        """Receive the next raw ASGI event (``websocket.receive`` or ``websocket.disconnect``).

        A ``websocket.disconnect`` event marks the connection closed; it is returned,
        not raised.
        """
        message = await self._receive()
        if message["type"] == "websocket.connect":
            if self._phase is _CONNECTING:
                self._phase = _HANDSHAKE
        elif message["type"] == "websocket.disconnect":
            self._client_left(message)
        return message

    async def send_event(self, message: Message) -> None:
        """Send a raw ASGI event (``websocket.accept``, ``websocket.send``, ``websocket.close``)."""
        kind = message["type"]
        if kind == "websocket.accept":
            self._phase = _OPEN
        elif kind == "websocket.close" and self._phase not in _CLOSED:
            self._phase = (
                WebSocketState.SERVER_CLOSED if self._phase is _OPEN else WebSocketState.REJECTED
            )
            self.close_code = message.get("code", CloseCode.NORMAL_CLOSURE)
            self.close_reason = message.get("reason") or ""
        await self._send(message)

    def _client_left(self, message: Message) -> None:
        if self._phase not in _CLOSED:
            self._phase = (
                WebSocketState.CLIENT_CLOSED if self._phase is _OPEN else WebSocketState.ABANDONED
            )
            self.close_code = message.get("code", CloseCode.NORMAL_CLOSURE)
            self.close_reason = message.get("reason") or ""

    def _disconnected(self) -> WebSocketDisconnect:
        return WebSocketDisconnect(self.close_code or CloseCode.NORMAL_CLOSURE, self.close_reason)

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
        if self._phase in _ACCEPTED:
            return
        if self._phase in _CLOSED:
            raise InvalidState("cannot accept a WebSocket that was rejected or closed")
        if self._phase is _CONNECTING:
            message = await self.receive_event()
            if message["type"] != "websocket.connect":
                raise WebSocketDisconnect(self.close_code or CloseCode.ABNORMAL_CLOSURE)
        self.subprotocol = subprotocol
        await self.send_event(
            {"type": "websocket.accept", "subprotocol": subprotocol, "headers": list(headers or [])}
        )
        if self._session is not None:
            self._session.register()
        if self._on_accept is not None:
            await self._on_accept(self)

    async def reject(self) -> None:
        """Refuse the connection: the client gets an HTTP 403 answer to its handshake.

        Call it before ``accept()`` (with ``auto_accept=False``, or in an ``on_connect``
        hook's place). After accept, the WebSocket protocol has no 403: the connection is
        closed with 1008 (policy violation) instead. Return from the view afterwards.

        Raises:
            InvalidState: if the connection is already closed.
        """
        if self._phase in _ACCEPTED:
            await self.close(CloseCode.POLICY_VIOLATION)
        else:
            await self.close(HANDSHAKE_REJECTED_STATUS)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close the connection with ``code`` (before accept: reject with HTTP 403).

        Raises:
            InvalidState: if ``close()`` was already called on this connection.
        """
        if self._phase in _BY_SERVER or self._close_called:
            raise InvalidState(f"WebSocket already closed with code {self.close_code}")
        self._close_called = True
        if self._phase in _CLOSED:
            # The client left first: there is nobody to send a close frame to. This is
            # not a server-side close, so the client's code still decides `silences()`.
            return
        try:
            message: Message = {"type": "websocket.close", "code": int(code)}
            if reason:
                message["reason"] = reason  # none given: no reason in the event (as 0.18)
            await self.send_event(message)
        except OSError:
            pass  # the transport is gone; the connection is closed either way

    async def ensure_closed(self, code: int = CloseCode.NORMAL_CLOSURE) -> None:
        """Close the connection unless it is already closed. Never raises."""
        if self._phase in _CLOSED:
            return
        await self.close(code)

    async def _wait_peer_closed(self, timeout: float) -> None:
        """After a server-side close (or a refused handshake), wait (at most ``timeout``
        seconds) until the client has seen it (the server reports ``websocket.disconnect``).
        Never raises."""
        if self._phase not in _BY_SERVER:
            return

        async def drain() -> None:
            while True:
                message = await self._receive()
                if message["type"] == "websocket.disconnect":
                    return

        try:
            await asyncio.wait_for(drain(), timeout)
        except (asyncio.TimeoutError, OSError, RuntimeError):
            pass  # the peer did not answer in time, or the server has no more events

    async def _close_from_hub(self, code: int, reason: str) -> None:
        """Close on the hub's behalf (limits, ``hub.disconnect``, shutdown)."""
        if self._phase not in _BY_SERVER:
            await self.close(code, reason)

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
        return self._phase in _BY_SERVER or exc.code in self.caught_close_codes

    # Receiving -----------------------------------------------------------------------------

    async def _next(self, decode: Decoder[_T]) -> _T:
        """Receive the next data frame and return ``decode(message)``.

        Every ``receive*`` method and ``async for`` hand it their decoder and return its
        coroutine, with no frame of their own (bench.micro echo with ``receive()``,
        2026-11-30: 3.17 us per message, 3.26 as ``async def`` methods: 2.6%).
        """
        if self._phase is not _OPEN:
            if self._phase in _CLOSED:
                raise self._disconnected()
            raise InvalidState("call accept() before receiving (or use auto_accept=True)")
        while True:
            message = await self._receive()
            if message["type"] == "websocket.disconnect":
                self._client_left(message)
                raise self._disconnected()
            session = self._session
            if session is not None:
                refusal = session.received(message_size(message))
                if refusal is not None:
                    if refusal.error is not None and session.codec == "envelope":
                        # A skipped frame's error carries its id, so that a client can
                        # fail that very request (the frame is within the size limit).
                        request_id = _request_id(message) if refusal.close is None else None
                        await self._send_quietly(encode_error(*refusal.error, request_id))
                    if refusal.close is None:
                        continue  # skipped (rate limited)
                    raise await self._invalid(refusal.close, refusal.reason)
            try:
                return decode(message)
            except _Undecodable as exc:
                raise await self._invalid(exc.code, exc.reason) from None

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
        return self._next(decode_frame)

    def receive_text(self) -> Coroutine[Any, Any, str]:
        """Receive one message as text. A binary frame is decoded as UTF-8.

        Raises:
            WebSocketDisconnect: when the client disconnects, or with 1007 (after closing
                the connection) when a binary frame is not valid UTF-8.
        """
        return self._next(decode_text)

    def receive_bytes(self) -> Coroutine[Any, Any, bytes]:
        """Receive one message as bytes. A text frame is encoded as UTF-8.

        Raises:
            WebSocketDisconnect: when the client disconnects.
        """
        return self._next(decode_bytes)

    def receive_json(self) -> Coroutine[Any, Any, JSONValue]:
        """Receive one message (text or UTF-8 binary frame) and parse it as JSON.

        Raises:
            WebSocketDisconnect: when the client disconnects, or with 1007 (after closing
                the connection) when the message is not valid JSON.
        """
        return self._next(decode_json)

    def receive(self) -> Coroutine[Any, Any, Any]:
        """Receive one message decoded with the route's ``receive_type``."""
        return self._next(DECODERS[self.receive_type])

    def __iter__(self) -> Iterator[str]:
        """Refuse ``for message in ws``: a WebSocket is iterated with ``async for``.

        Raises:
            TypeError: always, naming the fix.
        """
        raise TypeError("iterate over a WebSocket with `async for message in ws`, not `for`")

    def __aiter__(self) -> AsyncIterator[Any]:
        """Yield received messages (decoded with the route's ``receive_type``) forever; a
        disconnect raises ``WebSocketDisconnect``."""
        return _Messages(self, DECODERS[self.receive_type])

    # Sending -------------------------------------------------------------------------------

    async def _send_data(self, message: Message) -> None:
        # The send* methods return this coroutine, with no frame of their own (bench.micro
        # echo, 2026-11-30: 3.13-3.17 us per message, 3.17-3.20 as async def: 1.1%).
        if self._phase is not _OPEN:
            if self._phase in _CLOSED:
                raise self._disconnected()
            raise InvalidState("call accept() before sending (or use auto_accept=True)")
        session = self._session
        try:
            if session is None:
                await self._send(message)
            else:
                # Through the session's outbox, so the view's own sends keep their order
                # with what the hub delivers to this connection.
                await session.send(message)
        except OSError as exc:
            self._client_left({"code": CloseCode.ABNORMAL_CLOSURE, "reason": "connection lost"})
            raise WebSocketDisconnect(CloseCode.ABNORMAL_CLOSURE) from exc

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
        return self._send_data(encode_message(data, "json"))

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

    def __repr__(self) -> str:
        return f"<WebSocket {self.id} {self.url.path}>"

    def __eq__(self, other: Any) -> bool:
        return self is other

    __hash__ = object.__hash__


class _Messages:
    """``async for message in ws``: each step is the WebSocket's own receive coroutine,
    with no generator frame in between (bench.micro echo, 2026-11-30: 3.13-3.34 us per
    message with it, 3.24-3.45 with an async generator, 3.2-3.7% in three runs)."""

    __slots__ = ("_decode", "_ws")

    def __init__(self, ws: WebSocket, decode: Decoder[Any]) -> None:
        self._ws = ws
        self._decode = decode

    def __aiter__(self) -> _Messages:
        return self

    def __anext__(self) -> Coroutine[Any, Any, Any]:
        return self._ws._next(self._decode)


def _request_id(message: Message) -> str | int | None:
    """The ``id`` of an envelope frame that will not be handled, if it has a valid one."""
    frame = message.get("text")
    if frame is None:
        frame = message.get("bytes")
    if frame is None:
        return None
    try:
        obj = loads(frame)
    except ValueError:
        return None
    value = obj.get("id") if isinstance(obj, dict) else None
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return value
    return None
