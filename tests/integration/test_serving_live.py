"""The WebSocket protocol that ``bocadillo run`` gives uvicorn (``bocadillo.serving``), on
a live server: what it keeps of an idle connection, and that it still behaves as
uvicorn's own (messages, keepalive pings, several waiters).

The server runs in this process (``LiveServer``, with the protocol as ``ws=``), so its
connections can be looked at and its heap measured with ``tracemalloc`` (the clients of
that test are plain blocking sockets, which allocate next to nothing).
"""

from __future__ import annotations

import asyncio
import base64
import gc
import os
import socket
import tracemalloc
from typing import Any

import pytest
from websockets.asyncio.client import connect

from bocadillo import App, LiveServer
from bocadillo.serving import _Flag, _Inbox, http_protocol, websocket_protocol
from tests.live import eventually, stalled_client

pytestmark = pytest.mark.integration

#: What the server's Python heap may hold per idle connection (one room joined): 12,100
#: bytes with this protocol, 21,700 with uvicorn's own and 22,000 with this one before it
#: kept less (Python 3.11, uvicorn 0.55, websockets 17.4; 2026-12-07). The bound leaves
#: room for other versions.
HEAP_PER_CONNECTION = 16 * 1024
#: Idle connections opened for the heap figure.
IDLE = 200


def make_app() -> App:
    app = App(max_connections_per_ip=None, rate_limit=None)

    @app.websocket_route("/idle", caught_close_codes=all)
    async def idle(ws):
        ws.join("idle")
        async for _ in ws:
            pass

    @app.websocket_route("/headers", value_type="json")
    async def headers(ws):
        await ws.send({"user-agent": ws.headers.get("user-agent"), "probe": ws.headers["x-probe"]})
        async for message in ws:
            await ws.send(message)

    return app


def serve(app: App, **options: Any) -> LiveServer:
    return LiveServer(app, ws=websocket_protocol(), http=http_protocol(), **options)


def connections(server: LiveServer) -> list[Any]:
    """The server's open WebSocket connections: uvicorn's protocol objects."""
    assert server._server is not None
    protocol = websocket_protocol()
    return [conn for conn in server._server.server_state.connections if isinstance(conn, protocol)]


def header(scope: dict[str, Any], name: bytes) -> tuple[bytes, bytes]:
    headers: list[tuple[bytes, bytes]] = scope["headers"]
    return next(pair for pair in headers if pair[0].lower() == name)


@pytest.mark.anyio
async def test_an_open_connection_keeps_nothing_of_its_handshake_but_the_scope():
    app = make_app()
    with serve(app) as server:
        clients = [
            await connect(
                server.ws_url + "/headers",
                additional_headers={"X-Probe": str(n)},
                user_agent_header="probe/1.0",
            )
            for n in range(2)
        ]
        try:
            for n, client in enumerate(clients):
                assert await client.recv() == '{"user-agent":"probe/1.0","probe":"' + str(n) + '"}'
            first, second = connections(server)
            for conn in (first, second):
                assert conn.request is None
                assert conn.response is None
                assert vars(conn) == {}  # every attribute in a slot
                assert isinstance(conn.queue, _Inbox)
                assert isinstance(conn.writable, _Flag)
            # Headers that clients send alike are one object; the others are their own.
            assert header(first.scope, b"upgrade") is header(second.scope, b"upgrade")
            assert header(first.scope, b"user-agent") is header(second.scope, b"user-agent")
            assert header(first.scope, b"x-probe") != header(second.scope, b"x-probe")
            key = header(first.scope, b"sec-websocket-key")
            assert key is not header(second.scope, b"sec-websocket-key")
            # And messages still go both ways.
            await clients[1].send('{"still": "here"}')
            assert await clients[1].recv() == '{"still":"here"}'
        finally:
            for client in clients:
                await client.close()


@pytest.mark.anyio
async def test_keepalive_pings_go_on_after_the_handshake():
    app = make_app()
    with serve(app, ws_ping_interval=0.1, ws_ping_timeout=1.0) as server:
        async with connect(
            server.ws_url + "/headers", additional_headers={"X-Probe": "p"}, ping_interval=None
        ) as healthy:
            await healthy.recv()
            # A pong came back for one of the server's pings (the client answers them).
            await eventually(lambda: connections(server)[0].last_ping_rtt > 0, 10)
            # A client that never reads never answers: the server gives up on it.
            silent = await stalled_client(server.port, "/idle")
            try:
                await eventually(lambda: len(connections(server)) == 2, 10, what="the silent one")
                await eventually(lambda: len(connections(server)) == 1, 10, what="dropped")
            finally:
                silent.close()
            await healthy.send('"ok"')
            assert await healthy.recv() == '"ok"'


def open_idle(port: int, count: int) -> list[socket.socket]:
    """``count`` WebSockets to ``/idle`` on plain blocking sockets: the client side
    allocates next to nothing on the Python heap."""
    opened = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        opened.append(sock)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            f"GET /idle HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
            "Sec-WebSocket-Version: 13\r\n\r\n".encode()
        )
        response = b""
        while b"\r\n\r\n" not in response:
            chunk = sock.recv(4096)
            assert chunk, "closed during the handshake"
            response += chunk
        assert response.startswith(b"HTTP/1.1 101"), response
    return opened


def wait_for(condition: Any, timeout: float = 30) -> None:
    """Poll a condition from this (synchronous) test until it holds."""
    asyncio.run(eventually(condition, timeout))


def traced_heap() -> int:
    """Bytes held of what was allocated since ``tracemalloc.start()``."""
    gc.collect()
    return tracemalloc.get_traced_memory()[0]


def test_an_idle_connection_holds_little_of_the_server_heap():
    app = make_app()
    with serve(app, ws_ping_interval=20.0) as server:
        for sock in open_idle(server.port, 20):  # warm-up: first-use caches, imports
            sock.close()
        wait_for(lambda: app.hub.stats()["connections"] == 0)
        tracemalloc.start()
        opened = []
        try:
            before = traced_heap()
            opened = open_idle(server.port, IDLE)
            wait_for(lambda: app.hub.stats()["connections"] == IDLE)
            # The client's sockets count too: about 100 bytes each.
            per_connection = (traced_heap() - before) / IDLE
        finally:
            tracemalloc.stop()
            for sock in opened:
                sock.close()
    assert per_connection < HEAP_PER_CONNECTION, f"{per_connection:.0f} bytes per connection"


@pytest.mark.anyio
async def test_inbox_hands_items_over_in_order_to_any_number_of_waiters():
    inbox: _Inbox[int] = _Inbox()
    inbox.put_nowait(1)
    inbox.put_nowait(2)
    assert [await inbox.get(), await inbox.get()] == [1, 2]
    assert inbox.empty()
    waiting = [asyncio.ensure_future(inbox.get()) for _ in range(3)]
    await asyncio.sleep(0)
    cancelled = waiting.pop(1)
    cancelled.cancel()
    await asyncio.sleep(0)
    for item in (3, 4):
        inbox.put_nowait(item)
    assert sorted(await asyncio.gather(*waiting)) == [3, 4]
    assert cancelled.cancelled()
    assert inbox._waiting is None and inbox.empty()
    # A get woken but cancelled before it ran leaves the item for the next one.
    late = asyncio.ensure_future(inbox.get())
    await asyncio.sleep(0)
    inbox.put_nowait(5)
    late.cancel()
    await asyncio.sleep(0)
    assert late.cancelled()
    assert await inbox.get() == 5


@pytest.mark.anyio
async def test_flag_wakes_every_waiter_and_forgets_cancelled_ones():
    flag = _Flag()
    assert not flag.is_set()
    waiters = [asyncio.ensure_future(flag.wait()) for _ in range(3)]
    await asyncio.sleep(0)
    waiters[0].cancel()
    await asyncio.sleep(0)
    flag.set()
    assert await asyncio.gather(*waiters[1:]) == [True, True]
    assert flag._waiting is None
    assert await flag.wait()  # set: at once
    flag.clear()
    waiter = asyncio.ensure_future(flag.wait())
    await asyncio.sleep(0)
    assert not waiter.done()
    flag.set()
    assert await waiter
