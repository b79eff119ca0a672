"""A minimal asyncio WebSocket client for load: thousands of connections in one process.

The ``websockets`` client runs a task per connection and validates everything it sends;
a load generator needs neither, and needs to send what a conforming client never would
(invalid UTF-8 in a text frame, frames over any limit) and to drop a TCP connection
without a close frame. ``WSClient`` is an ``asyncio.Protocol``: no task per connection,
frames parsed in ``data_received``, pings answered, and every frame the server sends
handed to a callback (or kept in ``inbox``). It speaks RFC 6455 as a client does (masked
frames) but implements only what the scenarios need: no extensions, no fragmentation on
send.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import Callable
from typing import Any

__all__ = [
    "BINARY",
    "CLOSE",
    "CONT",
    "PING",
    "PONG",
    "TEXT",
    "HandshakeError",
    "WSClient",
    "encode_frame",
    "frame_header",
    "open_ws",
]

CONT, TEXT, BINARY, CLOSE, PING, PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: ``on_message(client, opcode, payload)`` for every data frame (text or binary).
OnMessage = Callable[["WSClient", int, bytes], None]


class HandshakeError(ConnectionError):
    """The server did not answer the upgrade with 101 (``status`` holds its status)."""

    def __init__(self, status: int | None, response: bytes) -> None:
        super().__init__(f"handshake failed with status {status}: {response[:200]!r}")
        self.status = status
        self.response = response


def _mask(payload: bytes, key: bytes) -> bytes:
    """XOR ``payload`` with the 4-byte masking ``key`` (fast: one big-integer XOR)."""
    if not payload:
        return payload
    n = len(payload)
    repeated = (key * (n // 4 + 1))[:n]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")
    return masked.to_bytes(n, "big")


def encode_frame(opcode: int, payload: bytes, *, fin: bool = True) -> bytes:
    """One masked client frame."""
    key = os.urandom(4)
    return frame_header(opcode, len(payload), fin=fin) + key + _mask(payload, key)


def frame_header(opcode: int, n: int, *, fin: bool = True) -> bytes:
    """The header of a masked client frame of ``n`` bytes (without the masking key)."""
    head = bytearray([(0x80 if fin else 0) | opcode])
    if n < 126:
        head.append(0x80 | n)
    elif n < 1 << 16:
        head.append(0x80 | 126)
        head += struct.pack("!H", n)
    else:
        head.append(0x80 | 127)
        head += struct.pack("!Q", n)
    return bytes(head)


class WSClient(asyncio.Protocol):
    """One client connection (see the module docstring).

    Args:
        path: The request target (path and query string).
        host: The ``Host`` header.
        headers: Extra handshake headers, e.g. ``[("Origin", "http://x")]``.
        on_message: Called with every text or binary frame; by default frames are
            appended to ``inbox`` and ``arrived`` is set.
    """

    def __init__(
        self,
        path: str,
        host: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        on_message: OnMessage | None = None,
        state: Any = None,
    ) -> None:
        self.path = path
        self.host = host
        self.headers = headers or []
        self.on_message = on_message
        self.transport: asyncio.Transport | None = None
        loop = asyncio.get_running_loop()
        self.handshake: asyncio.Future[int] = loop.create_future()
        self.lost: asyncio.Future[None] = loop.create_future()
        self.status: int | None = None
        self.response = b""
        self.inbox: list[tuple[int, bytes]] = []
        self.arrived = asyncio.Event()
        #: The close frame the server sent: code (1005 if it had none) and reason.
        self.close_code: int | None = None
        self.close_reason = ""
        self.close_sent = False
        self.aborted = False
        self.protocol_errors: list[str] = []
        self._buffer = bytearray()
        self._fragments: list[bytes] = []
        self._fragment_opcode = TEXT
        #: Anything the scenario keeps with the connection (its id, room...).
        self.state = state

    # asyncio.Protocol -------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        key = base64.b64encode(os.urandom(16)).decode()
        lines = [
            f"GET {self.path} HTTP/1.1",
            f"Host: {self.host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {key}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in self.headers),
        ]
        transport.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1"))

    def data_received(self, data: bytes) -> None:
        buffer = self._buffer
        buffer += data
        if not self.handshake.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            self.response = bytes(buffer[: end + 4])
            del buffer[: end + 4]
            try:
                self.status = int(self.response.split(b" ", 2)[1])
            except (IndexError, ValueError):
                self.status = None
            if self.status != 101:
                self.handshake.set_exception(HandshakeError(self.status, self.response))
                return
            self.handshake.set_result(101)
        self._parse()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.handshake.done():
            self.handshake.set_exception(HandshakeError(self.status, self.response))
        if not self.lost.done():
            self.lost.set_result(None)
        self.arrived.set()

    # Frames -------------------------------------------------------------------------------

    def _parse(self) -> None:
        buffer = self._buffer
        pos = 0
        size = len(buffer)
        while size - pos >= 2:
            b0, b1 = buffer[pos], buffer[pos + 1]
            length = b1 & 0x7F
            header = 2
            if length == 126:
                if size - pos < 4:
                    break
                (length,) = struct.unpack_from("!H", buffer, pos + 2)
                header = 4
            elif length == 127:
                if size - pos < 10:
                    break
                (length,) = struct.unpack_from("!Q", buffer, pos + 2)
                header = 10
            if b1 & 0x80:
                self.protocol_errors.append("the server masked a frame")
            if size - pos < header + length:
                break
            payload = bytes(buffer[pos + header : pos + header + length])
            pos += header + length
            self._frame(b0 & 0x80 != 0, b0 & 0x0F, payload)
        if pos:
            del buffer[:pos]

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode in (TEXT, BINARY, CONT):
            if opcode != CONT:
                self._fragment_opcode = opcode
                self._fragments = []
            self._fragments.append(payload)
            if not fin:
                return
            opcode = self._fragment_opcode
            payload = b"".join(self._fragments)
            self._fragments = []
            if self.on_message is not None:
                self.on_message(self, opcode, payload)
            else:
                self.inbox.append((opcode, payload))
                self.arrived.set()
        elif opcode == PING:
            self._write(encode_frame(PONG, payload))
        elif opcode == CLOSE:
            if len(payload) >= 2:
                (self.close_code,) = struct.unpack("!H", payload[:2])
                self.close_reason = payload[2:].decode("utf-8", "replace")
            else:
                self.close_code = 1005
            if not self.close_sent:
                self.close_sent = True
                self._write(encode_frame(CLOSE, payload[:2]))
            self.arrived.set()
        elif opcode != PONG:
            self.protocol_errors.append(f"unknown opcode {opcode}")

    def _write(self, data: bytes) -> None:
        transport = self.transport
        if transport is not None and not transport.is_closing():
            transport.write(data)

    # What a scenario calls ----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self.handshake.done() and not self.lost.done() and self.close_code is None

    def send_frame(self, opcode: int, payload: bytes, *, fin: bool = True) -> None:
        """Send one frame as is (no validation: invalid UTF-8 in a text frame goes out)."""
        self._write(encode_frame(opcode, payload, fin=fin))

    def send_raw(self, data: bytes) -> None:
        """Send bytes as they are: already-encoded frames, pipelined."""
        self._write(data)

    def send_text(self, text: str | bytes) -> None:
        self.send_frame(TEXT, text.encode() if isinstance(text, str) else text)

    def close(self, code: int = 1000, reason: str = "") -> None:
        """Start the closing handshake (the server answers, then drops the TCP connection)."""
        if not self.close_sent:
            self.close_sent = True
            self._write(encode_frame(CLOSE, struct.pack("!H", code) + reason.encode()))

    def abort(self) -> None:
        """Drop the TCP connection at once, without a close frame: an RST (SO_LINGER 0)."""
        transport = self.transport
        if transport is None or self.lost.done():
            return
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.fileno() >= 0:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.aborted = True
        transport.abort()

    def pause(self) -> None:
        """Stop reading: what a stalled client does (its receive buffer fills up)."""
        if self.transport is not None:
            self.transport.pause_reading()

    async def wait_closed(self, timeout: float) -> None:
        """Wait until the TCP connection is gone; abort it after ``timeout`` seconds."""
        try:
            await asyncio.wait_for(asyncio.shield(self.lost), timeout)
        except asyncio.TimeoutError:
            self.abort()
            await asyncio.wait_for(asyncio.shield(self.lost), 5)

    async def next_message(self, timeout: float) -> tuple[int, bytes]:
        """Pop the next frame of ``inbox`` (default ``on_message`` only).

        Raises:
            ConnectionError: if the connection ends first.
            asyncio.TimeoutError: if nothing arrives in time.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.inbox:
            if self.lost.done() or self.close_code is not None:
                raise ConnectionError(f"closed with {self.close_code} {self.close_reason!r}")
            self.arrived.clear()
            await asyncio.wait_for(self.arrived.wait(), max(deadline - loop.time(), 0.001))
        return self.inbox.pop(0)


async def open_ws(
    port: int,
    path: str,
    *,
    headers: list[tuple[str, str]] | None = None,
    on_message: OnMessage | None = None,
    rcvbuf: int | None = None,
    local_host: str = "127.0.0.1",
    timeout: float = 30.0,
    state: Any = None,
) -> WSClient:
    """Connect to ``ws://127.0.0.1:<port><path>`` and complete the handshake.

    Args:
        rcvbuf: ``SO_RCVBUF`` for the client socket (small for a stalled client).
        local_host: The loopback address to connect from (any of 127.0.0.0/8).
        state: Kept as ``client.state`` (set before any frame is handled).

    Raises:
        HandshakeError: if the server refuses the upgrade (``status``, e.g. 403).
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((local_host, 0))
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
        _, client = await loop.create_connection(
            lambda: WSClient(
                path, f"127.0.0.1:{port}", headers=headers, on_message=on_message, state=state
            ),
            sock=sock,
        )
    except BaseException:
        sock.close()
        raise
    try:
        await asyncio.wait_for(asyncio.shield(client.handshake), timeout)
    except BaseException:
        if client.transport is not None:
            client.transport.abort()
        raise
    return client
