"""The Python client (``bocadillo.client``) against a real uvicorn: requests both ways,
rooms, the offline queue, and the four ways a connection ends that a client must live
through: a server restart, a 1013 refusal, a graceful drain and a gap to resume."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from bocadillo import LiveServer, RequestFailed, RequestTimeout
from bocadillo.client import Client, Position, connect, reconnect_delay, should_reconnect
from tests.clients.app import create_app
from tests.live import eventually

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TIMEOUT = 20.0
FAST: dict[str, Any] = {
    "min_delay": 0.05,
    "max_delay": 0.5,
    "busy_delay": 0.3,
    "restart_delay": 0.2,
}


class Recorder:
    """Every message and connection event a client saw, in order."""

    def __init__(self, client: Client) -> None:
        self.messages: list[dict[str, Any]] = []
        self.events: list[tuple[str, dict[str, Any]]] = []
        client.on("*", lambda data, message: self.messages.append(message))
        for name in ("connecting", "open", "closed", "reconnecting", "resumed"):
            client.on_event(name, lambda detail, name=name: self.events.append((name, detail)))

    def of(self, kind: str) -> list[dict[str, Any]]:
        return [m for m in self.messages if m["type"] == kind]

    def event(self, name: str) -> list[dict[str, Any]]:
        return [detail for event, detail in self.events if event == name]


@pytest.fixture
def servers() -> Iterator[list[LiveServer]]:
    started: list[LiveServer] = []
    yield started
    for server in reversed(started):
        server.stop()


def serve(servers: list[LiveServer], port: int = 0, **settings: Any) -> LiveServer:
    server = LiveServer(create_app(**settings), port=port)
    server.start()
    servers.append(server)
    return server


async def post(url: str) -> Any:
    def call() -> Any:
        request = urllib.request.Request(url, method="POST")
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())

    return await asyncio.to_thread(call)


def test_reconnect_delay_rules() -> None:
    half, top = (lambda: 0.0), (lambda: 0.999999)
    # Exponential, half of it random, capped.
    assert reconnect_delay(0, 1006, "", rand=half) == 0.25
    assert reconnect_delay(3, 1006, "", rand=half) == 2.0
    assert reconnect_delay(20, 1006, "", rand=top) == pytest.approx(30.0)
    # The server's suggestion is a floor, with up to 20% more.
    assert reconnect_delay(0, 1013, "server busy", rand=half) == 5.0
    assert reconnect_delay(0, 1001, "server shutdown", rand=half) == 1.0
    assert reconnect_delay(0, 1012, "", rand=top) == pytest.approx(1.2)
    assert reconnect_delay(0, 1013, "busy; retry=30", rand=half) == 30.0
    assert reconnect_delay(0, 1006, "retry=2.5", rand=half) == 2.5
    assert reconnect_delay(0, 1013, "retry=999999", rand=half) == 3600.0
    assert reconnect_delay(0, 1013, "noretry=30", rand=half) == 5.0
    assert not should_reconnect(1000) and not should_reconnect(4003)
    assert should_reconnect(1001) and should_reconnect(1008) and should_reconnect(4500)


async def test_requests_both_ways_and_rooms(servers: list[LiveServer]) -> None:
    server = serve(servers)
    async with connect(server.ws_url + "/ws", **FAST) as client:
        seen = Recorder(client)
        assert await client.request("add", {"a": 1, "b": 2}) == 3
        with pytest.raises(RequestFailed) as failed:
            await client.request("nope")
        assert failed.value.code == "unknown_type"
        with pytest.raises(RequestFailed) as invalid:
            await client.join("")
        assert invalid.value.code == "invalid_data"
        assert "" not in client.rooms  # an error answer forgets the room
        with pytest.raises(RequestTimeout):
            await client.request("say", {"text": "x", "room": "r"}, timeout=0.0)

        answer = await client.join("lobby")
        assert Position.parse(answer) == Position(answer["epoch"], 0)
        assert client.rooms == {"lobby": Position(answer["epoch"], 0)}
        assert await client.request("say", {"text": "hi", "room": "lobby"}) is True
        said = await eventually(lambda: seen.of("said"), TIMEOUT)
        assert said[0]["data"] == {"text": "hi"} and said[0]["offset"] == 1
        assert client.rooms["lobby"] == Position(answer["epoch"], 1)

        @client.on_request("confirm")
        async def confirm(data: Any, message: dict[str, Any]) -> Any:
            await asyncio.sleep(0)
            return {"yes": data["question"]}

        client.send("ask", {"question": "sure?"})
        answered = await eventually(lambda: seen.of("answered"), TIMEOUT)
        assert answered[0]["data"] == {"answer": {"yes": "sure?"}}

        def refuse(data: Any, message: dict[str, Any]) -> Any:
            raise RequestFailed("forbidden", "not you")

        client.on_request("confirm", refuse)
        client.send("ask", {"question": "again?"})
        await eventually(lambda: len(seen.of("answered")) == 2, TIMEOUT)
        assert seen.of("answered")[1]["data"] == {"error": "forbidden"}

        assert await client.leave("lobby") is True
        assert client.rooms == {}
    assert client.state == "closed"
    with pytest.raises(RequestFailed) as closed:
        await client.request("add", {"a": 1, "b": 1})
    assert closed.value.code == "closed"


async def test_offline_queue_is_bounded_and_sent_in_order(servers: list[LiveServer]) -> None:
    first = serve(servers)
    port = first.port
    first.stop()  # nothing listens: the client queues
    client = Client(f"ws://127.0.0.1:{port}/ws", queue_limit=3, **FAST)
    seen = Recorder(client)
    client.start()
    try:
        await eventually(lambda: seen.event("reconnecting"), TIMEOUT)
        assert client.state in ("connecting", "reconnecting")
        sum_task = asyncio.ensure_future(client.request("add", {"a": 2, "b": 3}, timeout=TIMEOUT))
        await eventually(lambda: client.queued == 1, TIMEOUT)
        assert client.send("say", {"text": "one", "room": "q"})
        assert client.send("say", {"text": "two", "room": "q"})
        assert not client.send("say", {"text": "three", "room": "q"})  # the queue is full
        assert (client.dropped, client.queued) == (1, 3)
        with pytest.raises(RequestFailed) as full:
            await client.request("add", {"a": 0, "b": 0})
        assert full.value.code == "queue_full"
        client.rooms["q"] = None  # joined by resume when it opens, before the queue
        serve(servers, port=port)
        assert await sum_task == 5
        await eventually(lambda: len(seen.of("said")) == 2, TIMEOUT)
        said = seen.of("said")
        assert [m["data"]["text"] for m in said] == ["one", "two"]
        resumed = seen.event("resumed")[0]["rooms"]["q"]
        assert resumed["recovered"] is None  # nothing to recover: no position was known
    finally:
        await client.close()


async def test_server_restart(servers: list[LiveServer]) -> None:
    server = serve(servers)
    async with connect(server.ws_url + "/ws", **FAST) as client:
        seen = Recorder(client)
        first = await client.join("lobby")
        await client.request("say", {"text": "before", "room": "lobby"})
        await eventually(lambda: client.rooms["lobby"] == Position(first["epoch"], 1), TIMEOUT)
        server.stop()
        await eventually(lambda: client.state != "open", TIMEOUT)
        # uvicorn's 1012 (service restart) or the lifespan's drain (1001)
        assert seen.event("closed")[0]["code"] in (1001, 1012)
        while_down = asyncio.ensure_future(client.request("add", {"a": 4, "b": 4}, timeout=TIMEOUT))
        serve(servers, port=server.port)  # the same address, a new process's memory
        assert await while_down == 8
        resumed = await eventually(lambda: seen.event("resumed"), TIMEOUT)
        state = resumed[0]["rooms"]["lobby"]
        # A new process: the room's stream is another epoch; the gap cannot be filled.
        assert state["recovered"] is False
        assert state["position"].epoch != first["epoch"]
        assert client.rooms["lobby"] == state["position"]
        # Still in the room: what is said there arrives.
        await client.request("say", {"text": "after", "room": "lobby"})
        await eventually(lambda: seen.of("said")[-1]["data"] == {"text": "after"}, TIMEOUT)


async def test_refused_with_1013_then_admitted(servers: list[LiveServer]) -> None:
    server = serve(servers, max_connections=1)
    url = server.ws_url + "/ws"
    async with connect(url, **FAST) as first:
        second = Client(url, **FAST)
        seen = Recorder(second)
        second.start()
        try:
            reconnecting = await eventually(lambda: seen.event("reconnecting"), TIMEOUT)
            assert seen.event("closed")[0]["code"] == 1013
            assert reconnecting[0]["delay"] >= FAST["busy_delay"]
            assert first.state == "open"
            await first.close()
            await second.wait_open(TIMEOUT)
            assert await second.request("add", {"a": 1, "b": 2}) == 3
        finally:
            await second.close()


async def test_graceful_drain(servers: list[LiveServer]) -> None:
    server = serve(servers)
    async with connect(server.ws_url + "/ws", **FAST) as client:
        seen = Recorder(client)
        await client.join("lobby")
        assert await post(server.url + "/control/drain") == {"drained": True}
        await eventually(lambda: seen.event("reconnecting"), TIMEOUT)
        assert seen.of("shutdown")[0]["data"] == {"bye": True}
        closed = seen.event("closed")[0]
        assert (closed["code"], closed["reason"]) == (1001, "server shutdown")
        assert seen.event("reconnecting")[0]["delay"] >= FAST["restart_delay"]
        # Drained, the server refuses (1001) until it is replaced.
        await eventually(lambda: len(seen.event("closed")) >= 2, TIMEOUT)
        assert seen.event("closed")[1]["code"] == 1001
        server.stop()
        serve(servers, port=server.port)
        await client.wait_open(TIMEOUT)
        resumed = await eventually(lambda: seen.event("resumed"), TIMEOUT)
        assert "lobby" in resumed[-1]["rooms"]


async def test_resume_fills_the_gap(servers: list[LiveServer]) -> None:
    server = serve(servers)
    async with connect(server.ws_url + "/ws", **FAST) as client:
        seen = Recorder(client)
        joined = await client.join("news")
        await post(server.url + "/control/publish/news/2")
        await eventually(lambda: len(seen.of("news")) == 2, TIMEOUT)
        # Closed from the server's side (1012), then 3 publications the client misses.
        await post(server.url + "/control/kick?room=news&count=3")
        resumed = await eventually(lambda: seen.event("resumed"), TIMEOUT)
        assert seen.event("closed")[0]["code"] == 1012
        state = resumed[0]["rooms"]["news"]
        assert state == {"recovered": True, "position": Position(joined["epoch"], 5)}
        news = seen.of("news")
        assert [(m["offset"], m["data"]) for m in news] == [
            (1, {"n": 0}),
            (2, {"n": 1}),
            (3, {"n": 0}),
            (4, {"n": 1}),
            (5, {"n": 2}),
        ]
        await post(server.url + "/control/publish/news/1")
        await eventually(lambda: len(seen.of("news")) == 6, TIMEOUT)
        assert client.rooms["news"] == Position(joined["epoch"], 6)


async def test_close_while_nothing_listens_ends_at_once(servers: list[LiveServer]) -> None:
    stopped = serve(servers)
    stopped.stop()
    client = Client(f"ws://127.0.0.1:{stopped.port}/ws", **FAST)
    seen = Recorder(client)
    client.start()
    await eventually(lambda: seen.event("reconnecting"), TIMEOUT)
    queued = asyncio.ensure_future(client.request("add", {"a": 1, "b": 1}, timeout=TIMEOUT))
    await asyncio.wait_for(client.close(), TIMEOUT)
    assert client.state == "closed"
    with pytest.raises(RequestFailed) as closed:
        await queued
    assert closed.value.code == "closed"
    assert seen.event("closed")[-1]["code"] == 1000
    with pytest.raises(RequestFailed):
        await client.wait_open(TIMEOUT)
