"""Nothing lost on reconnect, over real sockets: a reader drops its TCP connection while
another client publishes, comes back with its last position and gets exactly the gap."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from bocadillo import App

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TIMEOUT = 20.0
MISSED = 1_000


def news_app() -> App:
    app = App(rate_limit=None)
    app.room_options("news", history_size=2 * MISSED)

    @app.socket("enter")
    def enter(ws, data):
        ws.join(data)
        return "in"

    @app.socket("say")
    def say(hub, data):
        hub.broadcast(data, type="said", room="news")

    @app.socket("ping")
    def ping():
        return "pong"

    return app


async def recv(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def test_a_reader_that_drops_its_connection_gets_exactly_what_it_missed(live_server):
    app = news_app()
    server = live_server(app)
    url = server.ws_url + "/ws"
    async with connect(url) as publisher:
        reader = await connect(url)
        await reader.send(json.dumps({"type": "enter", "data": "news", "id": 1}))
        assert (await recv(reader))["data"] == "in"
        await publisher.send(json.dumps({"type": "say", "data": -1}))
        seen = await recv(reader)
        last = {"epoch": seen["epoch"], "offset": seen["offset"]}
        reader.transport.abort()  # no close frame: a train tunnel
        for n in range(MISSED):
            await publisher.send(json.dumps({"type": "say", "data": n}))
        await publisher.send(json.dumps({"type": "ping", "id": "sync"}))
        assert (await recv(publisher))["id"] == "sync"  # every say handled

        async with connect(url) as back:
            resume = {"type": "resume", "data": {"rooms": {"news": last}}, "id": "r"}
            await back.send(json.dumps(resume))
            replayed = [await recv(back) for _ in range(MISSED)]
            assert [m["data"] for m in replayed] == list(range(MISSED))
            assert [m["offset"] for m in replayed] == list(
                range(last["offset"] + 1, last["offset"] + 1 + MISSED)
            )
            reply = await recv(back)
            assert reply["id"] == "r"
            assert reply["data"]["rooms"]["news"] == {
                "recovered": True,
                "epoch": last["epoch"],
                "offset": last["offset"] + MISSED,
            }
            await publisher.send(json.dumps({"type": "say", "data": "after"}))
            after = await recv(back)
            assert (after["data"], after["offset"]) == ("after", last["offset"] + MISSED + 1)


async def test_a_gap_longer_than_the_history_is_not_recovered(live_server):
    app = news_app()
    app.room_options("short", history_size=10)

    @app.socket("say_short")
    def say_short(hub, data):
        hub.broadcast(data, room="short")

    server = live_server(app)
    url = server.ws_url + "/ws"
    async with connect(url) as publisher:
        for n in range(50):
            await publisher.send(json.dumps({"type": "say_short", "data": n}))
        await publisher.send(json.dumps({"type": "ping", "id": "sync"}))
        assert (await recv(publisher))["id"] == "sync"
        epoch = (await app.hub.position("short")).epoch  # type: ignore[union-attr]
        async with connect(url) as back:
            rooms = {"short": {"epoch": epoch, "offset": 5}}
            await back.send(json.dumps({"type": "resume", "data": {"rooms": rooms}, "id": 1}))
            reply = await recv(back)  # first: nothing is replayed
            assert reply["data"]["rooms"]["short"] == {
                "recovered": False,
                "epoch": epoch,
                "offset": 50,
            }
