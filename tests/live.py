"""Helpers shared by the tests that talk to real servers over loopback.

One copy of each: waiting on a condition (``eventually``), a listening socket to hand
over to a server (``listening_socket``), a client that stops reading (``stalled_client``),
reading a WebSocket to its close (``read_until_closed``), and the startup handler that
turns asyncio's debug mode off in load-carrying apps (``fast_loop``). The fixtures every
test gets (a clean environment, the global providers restored) are in ``tests/conftest.py``.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
from collections.abc import AsyncIterable, Awaitable, Callable
from typing import Any, TypeVar, overload

__all__ = [
    "eventually",
    "fast_loop",
    "listening_socket",
    "read_until_closed",
    "stalled_client",
]

T = TypeVar("T")


def listening_socket(*, sndbuf: int | None = None, backlog: int = 4096) -> socket.socket:
    """A TCP socket bound to a port of 127.0.0.1 chosen by the kernel, and listening.

    Hand it to the server (``LiveServer`` does it in-process; a uvicorn subprocess gets
    it with ``--fd`` and ``pass_fds``, then the test closes its own copy): the port is
    held from the moment it is chosen, so nothing else can take it in between.

    Args:
        sndbuf: ``SO_SNDBUF`` of the socket, inherited by every accepted connection
            (small, so the server's transport pauses after a few kilobytes for a client
            that does not read, as megabytes would on a network).
        backlog: The listen backlog.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if sndbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        sock.bind(("127.0.0.1", 0))
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    return sock


async def stalled_client(port: int, path: str, *, timeout: float = 30.0) -> socket.socket:
    """Open a WebSocket on a raw socket with a tiny receive buffer, then never read again.

    The handshake goes through the event loop (it does not block it); once it is done,
    nothing reads the socket: the kernel's small buffer fills and the server's writes to
    this client stall. ``close()`` the socket to drop the client (with unread data, the
    kernel resets the connection, as an abort would).
    """
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.setblocking(False)
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), timeout)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await asyncio.wait_for(loop.sock_sendall(sock, request.encode()), timeout)
        response = b""
        # One byte at a time: not a byte of the first frames is taken off the socket.
        while b"\r\n\r\n" not in response and len(response) < 4096:
            chunk = await asyncio.wait_for(loop.sock_recv(sock, 1), timeout)
            assert chunk, "server closed during the handshake"
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response
    except BaseException:
        sock.close()
        raise
    return sock


@overload
async def eventually(
    check: Callable[[], Awaitable[T]],
    timeout: float = ...,
    *,
    what: str | None = ...,
    interval: float = ...,
) -> T: ...


@overload
async def eventually(
    check: Callable[[], T],
    timeout: float = ...,
    *,
    what: str | None = ...,
    interval: float = ...,
) -> T: ...


async def eventually(
    check: Callable[[], Any],
    timeout: float = 5.0,
    *,
    what: str | None = None,
    interval: float = 0.02,
) -> Any:
    """Call ``check()`` (sync, or returning an awaitable) until its result is truthy.

    Args:
        check: The condition; polled every ``interval`` seconds.
        timeout: Fail (``AssertionError``) when it is still false after this many
            seconds: an upper bound for a busy machine, never an expectation of speed.
        what: What is awaited, for the failure message (default: ``check`` itself).
        interval: Seconds between two polls.

    Returns:
        The first truthy result of ``check()``.
    """
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = check()
        if asyncio.iscoroutine(result) or isinstance(result, asyncio.Future):
            result = await result
        if result:
            return result
        if loop.time() >= deadline:
            raise AssertionError(f"not true within {timeout}s: {what or check} (last: {result!r})")
        await asyncio.sleep(interval)


async def read_until_closed(ws: AsyncIterable[Any], timeout: float) -> list[Any]:
    """Every message the server sent on ``ws`` (a ``websockets`` client connection)
    before it closed the connection; fail if it is still open after ``timeout`` seconds."""
    from websockets.exceptions import ConnectionClosed

    received: list[Any] = []

    async def read() -> None:
        try:
            async for message in ws:
                received.append(message)
        except ConnectionClosed:
            pass

    await asyncio.wait_for(read(), timeout)
    return received


def fast_loop() -> None:
    """Startup handler (``app.on("startup")(fast_loop)``) of apps that carry load:
    asyncio's debug mode, on in ``make test``, would only slow them down."""
    asyncio.get_running_loop().set_debug(False)
