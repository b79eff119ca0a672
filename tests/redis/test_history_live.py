"""Nothing lost on reconnect across processes: two uvicorn processes on one server, Redis
or NATS (each test runs on both); the reader and the publisher on different processes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from websockets.asyncio.client import connect

from tests.live import eventually
from tests.nats_server import NatsServer
from tests.redis.processes import TIMEOUT, call, hub_env, processes, recv
from tests.redis_server import RedisServer
from tests.uvicorn_process import UvicornProcess

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

MISSED = 1_000


@pytest.fixture
def servers(tmp_path: Path, broker: RedisServer | NatsServer) -> Iterator[list[UvicornProcess]]:
    with processes(
        "tests.redis.history_app:app", tmp_path, hub_env(broker.url, "history")
    ) as started:
        yield started


async def test_a_reader_gets_exactly_what_another_process_published_while_away(servers):
    one, two = servers
    reader = await connect(one.ws_url + "/ws")
    async with connect(two.ws_url + "/ws") as publisher:
        assert await call(reader, "enter", "news") == "news"
        assert await call(publisher, "enter", "news") == "news"
        await publisher.send(json.dumps({"type": "say", "data": {"room": "news", "text": -1}}))
        seen = await recv(reader)  # from the other process, with its position
        assert seen["data"] == -1
        last = {"epoch": seen["epoch"], "offset": seen["offset"]}
        reader.transport.abort()  # no close frame
        for n in range(MISSED):
            await publisher.send(json.dumps({"type": "say", "data": {"room": "news", "text": n}}))
        # A process delivers its own publications once the backend has stored them: when
        # the publisher has them all, the whole gap is in the history.
        echoed = [await recv(publisher) for _ in range(MISSED + 1)]
        assert [m["data"] for m in echoed] == [-1, *range(MISSED)]

        async with connect(one.ws_url + "/ws") as back:
            resume = {"type": "resume", "data": {"rooms": {"news": last}}, "id": "r"}
            await back.send(json.dumps(resume))
            replayed = [await recv(back) for _ in range(MISSED)]
            assert [m["data"] for m in replayed] == list(range(MISSED))
            assert [m["offset"] for m in replayed] == [
                last["offset"] + 1 + n for n in range(MISSED)
            ]
            reply = await recv(back)
            assert reply["id"] == "r", reply
            assert reply["data"]["rooms"]["news"] == {
                "recovered": True,
                "epoch": last["epoch"],
                "offset": last["offset"] + MISSED,
            }
            await publisher.send(
                json.dumps({"type": "say", "data": {"room": "news", "text": "after"}})
            )
            after = await recv(back)
            assert (after["data"], after["offset"]) == ("after", last["offset"] + MISSED + 1)


async def test_publications_during_a_resume_are_neither_lost_nor_doubled(servers):
    one, two = servers
    async with connect(one.ws_url + "/ws") as back, connect(two.ws_url + "/ws") as publisher:
        await publisher.send(json.dumps({"type": "say", "data": {"room": "news2", "text": 0}}))
        assert await call(publisher, "ping") == "pong"
        async with connect(two.ws_url + "/ws") as peek:
            position = await call(peek, "resume", {"rooms": {"news2": None}})
        epoch = position["rooms"]["news2"]["epoch"]
        # Publish while resuming from offset 0: every publication arrives exactly once.
        resume = {"type": "resume", "data": {"rooms": {"news2": {"epoch": epoch, "offset": 0}}}}
        await back.send(json.dumps({**resume, "id": "r"}))
        for n in range(1, 200):
            await publisher.send(json.dumps({"type": "say", "data": {"room": "news2", "text": n}}))
        assert await call(publisher, "ping") == "pong"
        received: list[int] = []
        while len(received) < 200:
            message = await recv(back)
            if message["type"] == "said":
                received.append(message["offset"])
        assert received == list(range(1, 201))


async def test_after_a_server_restart_the_epoch_changes_and_nothing_is_recovered(servers, broker):
    one, two = servers
    async with connect(two.ws_url + "/ws") as publisher:
        assert await call(publisher, "enter", "news3") == "news3"
        await publisher.send(json.dumps({"type": "say", "data": {"room": "news3", "text": 1}}))
        seen = await recv(publisher)  # handed back by the backend: it is stored
    old = {"epoch": seen["epoch"], "offset": seen["offset"]}
    assert old["offset"] == 1
    broker.stop(kill=True)
    broker.start()  # empty (both keep history in memory): the room's stream is lost

    async def back_up() -> bool:
        try:
            async with connect(one.ws_url + "/ws") as ws:
                reply = await call(ws, "resume", {"rooms": {"news3": old}})
        except AssertionError:
            return False  # "unavailable" while the backend reconnects
        return bool(reply["rooms"]["news3"]["recovered"] is False)

    await eventually(back_up, TIMEOUT)
    async with connect(one.ws_url + "/ws") as ws:
        reply = await call(ws, "resume", {"rooms": {"news3": old}})
    now = reply["rooms"]["news3"]
    assert now["recovered"] is False and now["epoch"] != old["epoch"] and now["offset"] == 0
