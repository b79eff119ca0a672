"""Every hub limit over real sockets: a real uvicorn (``LiveServer``) and real clients.

Each test serves a tiny app with one small limit and checks what a client sees when it
goes over it (HTTP 403, close codes, error envelopes), and that the server is still fine
for the next client. Every wait is bounded by ``TIMEOUT``; it is never an expectation
about speed.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Origin

from bocadillo import App, CloseCode
from tests.live import eventually, fast_loop, read_until_closed

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

#: Upper bound for any wait.
TIMEOUT = 10.0


async def recv_json(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


def room_app(**settings: Any) -> App:
    """An app whose ``/room`` route joins ``lobby``, says its id, then echoes."""
    app = App(**settings)

    @app.websocket_route("/room", caught_close_codes=all)
    async def room(ws):
        ws.join("lobby")
        await ws.send(ws.id)
        async for message in ws:
            await ws.send(message)

    return app


def envelope(kind: str, data: Any = None, id: int | None = None) -> str:
    message: dict[str, Any] = {"type": kind, "data": data}
    if id is not None:
        message["id"] = id
    return json.dumps(message)


# Origins ------------------------------------------------------------------------------------


async def test_allowed_origins_refuse_foreign_origin_with_403(live_server):
    app = room_app(allowed_origins=["http://good.example"])
    connected: list[str] = []

    @app.socket_connect()
    def hello(client_id):
        connected.append(client_id)

    server = live_server(app)
    refused = [
        ("/room", Origin("http://evil.example")),
        ("/ws", Origin("http://evil.example")),
        ("/room", None),  # no Origin header at all (a non-browser client)
    ]
    for path, origin in refused:
        with pytest.raises(InvalidStatus) as info:
            async with connect(server.ws_url + path, origin=origin):
                pass
        assert info.value.response.status_code == 403

    # A refused handshake leaves nothing behind, and runs no connect handler.
    stats = app.hub.stats()
    assert stats["rejected"] == len(refused)
    assert stats["connections"] == stats["connections_total"] == 0
    assert app.hub.count == 0
    assert app.hub.rooms == frozenset()
    assert connected == []

    async with connect(server.ws_url + "/room", origin=Origin("http://good.example")) as ws:
        conn_id = await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.send("hi")
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "hi"
        assert app.hub.ids == [conn_id]
    async with connect(server.ws_url + "/ws", origin=Origin("http://good.example")) as ws:
        await eventually(lambda: len(connected) == 1, TIMEOUT)
    assert app.hub.stats()["rejected"] == len(refused)


# Connection caps ----------------------------------------------------------------------------


async def test_max_connections_closes_extra_with_1013_then_admits_again(live_server):
    app = room_app(max_connections=3)
    server = live_server(app)
    clients = [await connect(server.ws_url + "/room") for _ in range(3)]
    try:
        ids = [await asyncio.wait_for(ws.recv(), TIMEOUT) for ws in clients]

        # The handshake succeeds (101), then the server closes at once with 1013.
        async with connect(server.ws_url + "/room") as extra:
            assert await read_until_closed(extra, TIMEOUT) == []
            assert extra.close_code == CloseCode.TRY_AGAIN_LATER
            assert extra.close_reason == "server busy"
        assert app.hub.count == 3
        assert app.hub.members("lobby") == frozenset(ids)
        assert app.hub.stats()["rejected"] == 1

        # The admitted clients are unaffected.
        await clients[0].send("still here")
        assert await asyncio.wait_for(clients[0].recv(), TIMEOUT) == "still here"

        # Once a client leaves, a new one is admitted again.
        await clients.pop().close()
        await eventually(lambda: app.hub.count == 2, TIMEOUT)
        clients.append(await connect(server.ws_url + "/room"))
        new_id = await asyncio.wait_for(clients[-1].recv(), TIMEOUT)
        assert app.hub.members("lobby") == frozenset([*ids[:2], new_id])
        assert app.hub.stats()["rejected"] == 1
    finally:
        for ws in clients:
            await ws.close()


async def test_max_connections_per_ip_counts_each_address(live_server):
    app = room_app(max_connections_per_ip=2)
    server = live_server(app)
    url = server.ws_url + "/room"
    # Every 127.0.0.0/8 address is loopback on Linux: 127.0.0.2 is a second client IP.
    clients = [await connect(url, local_addr=("127.0.0.1", 0)) for _ in range(2)]
    try:
        for ws in clients:
            await asyncio.wait_for(ws.recv(), TIMEOUT)

        async with connect(url, local_addr=("127.0.0.1", 0)) as extra:
            assert await read_until_closed(extra, TIMEOUT) == []
            assert extra.close_code == CloseCode.TRY_AGAIN_LATER

        # Another address still gets in: the cap is per IP, not global.
        other = await connect(url, local_addr=("127.0.0.2", 0))
        clients.append(other)
        other_id = str(await asyncio.wait_for(other.recv(), TIMEOUT))
        assert app.hub.info(other_id).remote_address == "127.0.0.2"
        assert app.hub.count == 3

        # A 127.0.0.1 client leaves: 127.0.0.1 may connect again.
        await clients.pop(0).close()
        await eventually(lambda: app.hub.count == 2, TIMEOUT)
        clients.append(await connect(url, local_addr=("127.0.0.1", 0)))
        await asyncio.wait_for(clients[-1].recv(), TIMEOUT)
        assert app.hub.count == 3
        assert app.hub.stats()["rejected"] == 1
    finally:
        for ws in clients:
            await ws.close()


async def test_max_connections_holds_while_connect_handlers_await(live_server):
    app = App(max_connections=2)
    attempts = 4
    state: dict[str, Any] = {"arrived": 0, "all_in": None}

    @app.socket_connect()
    async def hello(client_id):
        # Hold every connect handler until all the attempts are inside one (or 2 s
        # pass, once admission refuses the extra ones before they get here).
        if state["all_in"] is None:
            state["all_in"] = asyncio.Event()
        state["arrived"] += 1
        if state["arrived"] == attempts:
            state["all_in"].set()
        try:
            await asyncio.wait_for(state["all_in"].wait(), 2.0)
        except asyncio.TimeoutError:
            pass
        return {"id": client_id}

    server = live_server(app)

    async def attempt() -> tuple[ClientConnection, int | None]:
        ws = await connect(server.ws_url + "/ws")
        try:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        except ConnectionClosed:
            return ws, ws.close_code
        return ws, None

    results = await asyncio.gather(*(attempt() for _ in range(attempts)))
    try:
        codes = sorted(code or 0 for _, code in results)
        assert codes == [0, 0, CloseCode.TRY_AGAIN_LATER, CloseCode.TRY_AGAIN_LATER]
        assert app.hub.count == 2
    finally:
        for ws, _ in results:
            await ws.close()


# Rooms ----------------------------------------------------------------------------------------


async def test_max_room_members_answers_room_full_and_stays_open(live_server):
    app = App(max_room_members=2)

    @app.socket("join")
    def join(data, ws):
        ws.join(data)
        return {"joined": data}

    server = live_server(app)
    clients = [await connect(server.ws_url + "/ws") for _ in range(3)]
    try:
        for n, ws in enumerate(clients[:2]):
            await ws.send(envelope("join", "lobby", id=n))
            assert await recv_json(ws) == {"type": "response", "data": {"joined": "lobby"}, "id": n}

        third = clients[2]
        await third.send(envelope("join", "lobby", id=7))
        error = await recv_json(third)
        assert error["type"] == "error"
        assert error["id"] == 7
        assert error["data"]["code"] == "room_full"
        assert "lobby" in error["data"]["message"]
        assert len(app.hub.members("lobby")) == 2

        # Still open: another room works, and so does lobby once a member leaves.
        await third.send(envelope("join", "other", id=8))
        assert await recv_json(third) == {"type": "response", "data": {"joined": "other"}, "id": 8}
        await clients[0].close()
        await eventually(lambda: len(app.hub.members("lobby")) == 1, TIMEOUT)
        await third.send(envelope("join", "lobby", id=9))
        assert await recv_json(third) == {"type": "response", "data": {"joined": "lobby"}, "id": 9}
        assert len(app.hub.members("lobby")) == 2
        assert app.hub.count == 2
    finally:
        for ws in clients:
            await ws.close()


# Rate limit -----------------------------------------------------------------------------------


def ping_app(**settings: Any) -> App:
    app = App(**settings)

    app.on("startup")(fast_loop)  # floods of messages

    @app.socket("ping")
    async def ping(data):
        return {"pong": data}

    return app


async def test_rate_limit_answers_rate_limited_then_closes_with_1008(live_server):
    # A long window: the first 5 messages pass, every later one is a violation.
    app = ping_app(rate_limit=(5, 60.0), rate_limit_violations=3)
    server = live_server(app)
    async with connect(server.ws_url + "/ws") as ws:
        for n in range(8):
            await ws.send(envelope("ping", n, id=n))
        received = [json.loads(text) for text in await read_until_closed(ws, TIMEOUT)]
        assert ws.close_code == CloseCode.POLICY_VIOLATION
        assert ws.close_reason == "rate limit exceeded"

    responses = [m for m in received if m["type"] == "response"]
    errors = [m for m in received if m["type"] == "error"]
    assert responses == [{"type": "response", "data": {"pong": n}, "id": n} for n in range(5)]
    # The third violation closes instead of answering.
    assert [e["data"]["code"] for e in errors] == ["rate_limited", "rate_limited"]
    assert [e["id"] for e in errors] == [5, 6]  # the ids of the refused requests
    assert len(received) == 7
    assert app.hub.stats()["dropped"] == 3
    await eventually(lambda: app.hub.count == 0, TIMEOUT)


async def test_rate_limit_closes_a_flooder_and_serves_others(live_server):
    asyncio.get_running_loop().set_debug(False)
    app = ping_app(rate_limit=(10, 60.0), rate_limit_violations=5)
    server = live_server(app)
    async with connect(server.ws_url + "/ws") as good:
        async with connect(server.ws_url + "/ws") as flooder:
            # It ignores every answer and keeps sending until the server closes it.
            sent = 0
            with pytest.raises(ConnectionClosed):
                for n in range(5000):
                    await flooder.send(envelope("ping", n))
                    sent += 1
                    if n % 50 == 0:
                        await asyncio.sleep(0.01)  # let the client read the close frame
            assert 15 <= sent < 5000
            await read_until_closed(flooder, TIMEOUT)
            assert flooder.close_code == CloseCode.POLICY_VIOLATION

        await eventually(lambda: app.hub.count == 1, TIMEOUT)
        for n in range(3):
            await good.send(envelope("ping", n, id=n))
            assert await recv_json(good) == {"type": "response", "data": {"pong": n}, "id": n}
        # A newcomer has its own budget.
        async with connect(server.ws_url + "/ws") as late:
            await late.send(envelope("ping", "late", id=1))
            assert await recv_json(late) == {"type": "response", "data": {"pong": "late"}, "id": 1}


# Message size -----------------------------------------------------------------------------------


async def test_max_message_size_closes_with_1009(live_server):
    app = room_app(max_message_size=1024)

    @app.socket("echo")
    async def echo(data):
        return data

    server = live_server(app)
    async with connect(server.ws_url + "/room") as ws:
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.send("a" * 1024)  # exactly the limit: fine
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "a" * 1024
        await ws.send(b"b" * 1024)  # binary frames count the same
        assert await asyncio.wait_for(ws.recv(), TIMEOUT) == "b" * 1024
        await ws.send("a" * 1025)
        assert await read_until_closed(ws, TIMEOUT) == []
        assert ws.close_code == CloseCode.MESSAGE_TOO_BIG
        assert ws.close_reason == "message too large"

    # Bytes on the wire, not characters: 600 "é" are 1200 bytes in UTF-8.
    async with connect(server.ws_url + "/room") as ws:
        await asyncio.wait_for(ws.recv(), TIMEOUT)
        await ws.send("é" * 600)
        assert await read_until_closed(ws, TIMEOUT) == []
        assert ws.close_code == CloseCode.MESSAGE_TOO_BIG

    # The message-type endpoint says why before closing.
    async with connect(server.ws_url + "/ws") as ws:
        await ws.send(envelope("echo", "small", id=1))
        assert await recv_json(ws) == {"type": "response", "data": "small", "id": 1}
        await ws.send(envelope("echo", "x" * 2000, id=2))
        received = [json.loads(text) for text in await read_until_closed(ws, TIMEOUT)]
        assert [m["data"]["code"] for m in received] == ["message_too_large"]
        assert ws.close_code == CloseCode.MESSAGE_TOO_BIG

    await eventually(lambda: app.hub.count == 0, TIMEOUT)


# Idle timeout -----------------------------------------------------------------------------------


class ManualClock:
    """The hub's clock, moved by the test: the idle sweeper reads it, so what is idle
    depends on when the test moves it, not on how fast the machine runs."""

    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


async def test_idle_timeout_closes_silent_clients_with_1001(live_server):
    timeout = 1.0
    app = room_app(idle_timeout=timeout)
    clock = app.hub.clock = ManualClock()
    server = live_server(app)
    async with (
        connect(server.ws_url + "/room") as silent,
        connect(server.ws_url + "/room") as active,
    ):
        await asyncio.wait_for(silent.recv(), TIMEOUT)
        await asyncio.wait_for(active.recv(), TIMEOUT)
        clock.advance(timeout * 0.6)  # neither is idle yet
        await active.send("still here")
        assert await asyncio.wait_for(active.recv(), TIMEOUT) == "still here"
        # The silent client has been quiet for 1.2 timeouts, the active one for 0.6.
        clock.advance(timeout * 0.6)
        assert await read_until_closed(silent, TIMEOUT) == []
        assert silent.close_code == CloseCode.GOING_AWAY
        assert silent.close_reason == "idle timeout"

        # The active client was not closed: it still echoes (the reply proves no close
        # frame came before it), and is closed once it falls silent for a timeout.
        await active.send("sentinel")
        assert await asyncio.wait_for(active.recv(), TIMEOUT) == "sentinel"
        assert app.hub.count == 1
        clock.advance(timeout)
        assert await read_until_closed(active, TIMEOUT) == []
        assert active.close_code == CloseCode.GOING_AWAY
    await eventually(lambda: app.hub.count == 0, TIMEOUT)
