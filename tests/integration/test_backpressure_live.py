"""Backpressure over real sockets: a client that stops reading never delays the others."""

from __future__ import annotations

import asyncio
import json
import socket

import httpx2 as httpx
import pytest
from websockets.asyncio.client import connect

from bocadillo import App
from tests.live import eventually, fast_loop, stalled_client

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

HEALTHY = 50
BROADCASTS = 2000
PAYLOAD = "x" * 200


def make_app(policy: str) -> App:
    app = App(outbox_limit=64)

    app.on("startup")(fast_loop)  # a load test

    @app.websocket_route(
        "/feed",
        value_type="json",
        overflow=policy,  # type: ignore[arg-type]
        caught_close_codes=all,
    )
    async def feed(ws):
        ws.join("all")
        async for _ in ws:
            pass

    @app.route("/blast", methods=["POST"])
    async def blast(req, res, n: int):
        delivered = 0
        for seq in range(n):
            delivered += app.hub.broadcast({"seq": seq, "pad": PAYLOAD}, room="all")
        res.json = {"delivered": delivered, "stats": app.hub.stats()}

    @app.route("/count")
    async def count(req, res):
        res.json = {"count": app.hub.count}

    return app


async def wait_for_count(url: str, expected: int) -> None:
    async with httpx.AsyncClient() as client:

        async def reached() -> bool:
            return bool((await client.get(url + "/count")).json()["count"] == expected)

        await eventually(reached, 10.0, what=f"hub count reaches {expected}")


async def read_all(ws, n: int) -> list[int]:
    seqs = []
    for _ in range(n):
        message = json.loads(await asyncio.wait_for(ws.recv(), 30))
        seqs.append(message["seq"])
    return seqs


@pytest.mark.timeout(240)
@pytest.mark.parametrize("policy", ["close", "drop_oldest"])
async def test_stalled_client_never_delays_healthy_clients(live_server, policy):
    asyncio.get_running_loop().set_debug(False)
    app = make_app(policy)
    # A small send buffer makes the server's transport pause for a client that does not
    # read after a few kilobytes, as it would after megabytes on a real network.
    server = live_server(app, socket_options=[(socket.SOL_SOCKET, socket.SO_SNDBUF, 32768)])
    clients = [await connect(server.ws_url + "/feed", max_queue=None) for _ in range(HEALTHY)]
    stalled = await stalled_client(server.port, "/feed")
    try:
        await wait_for_count(server.url, HEALTHY + 1)
        readers = [asyncio.ensure_future(read_all(ws, BROADCASTS)) for ws in clients]
        async with httpx.AsyncClient(timeout=30) as http:
            # The broadcast loop runs in the server; it returns while the stalled
            # client still has not read a single byte.
            response = await http.post(server.url + "/blast", params={"n": BROADCASTS})
        assert response.status_code == 200
        results = await asyncio.gather(*readers)
        for seqs in results:
            assert seqs == list(range(BROADCASTS))
        stats = response.json()["stats"]
        assert stats["dropped"] > 0
        if policy == "close":
            # The stalled client was closed with 1013 and forgotten by the hub.
            await wait_for_count(server.url, HEALTHY)
        else:
            # It stays connected, and its outbox never holds more than the limit.
            assert app.hub.count == HEALTHY + 1
            pending = [app.hub.connection(i).outbox.pending for i in app.hub.ids]
            assert max(pending) <= 64
    finally:
        stalled.close()
        for ws in clients:
            await ws.close()
