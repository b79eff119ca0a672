"""Presence and requests to clients across two uvicorn processes on one server (Redis or
NATS, each test runs on both),
with real WebSocket clients: who is in a room on either process, join/leave events from
the other process, a SIGKILLed process's members gone after the heartbeat expiry, and a
request to a client answered once, a second answer ignored and counted."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from websockets.asyncio.client import connect

from tests.live import eventually
from tests.nats_server import NatsServer
from tests.redis.processes import TIMEOUT, call, hub_env, processes, recv
from tests.redis_server import RedisServer
from tests.uvicorn_process import UvicornProcess

pytestmark = [pytest.mark.integration, pytest.mark.anyio]


@pytest.fixture
def servers(tmp_path: Path, broker: RedisServer | NatsServer) -> Iterator[list[UvicornProcess]]:
    with processes(
        "tests.redis.presence_app:app",
        tmp_path,
        hub_env(broker.url, "presence"),
        clean_logs=False,
    ) as started:
        yield started


async def test_presence_spans_processes_and_forgets_a_killed_one(servers):
    one, two = servers
    async with connect(one.ws_url + "/ws") as ann:
        assert await call(ann, "hello", {"name": "ann"}) == "in"
        bob = await connect(two.ws_url + "/ws")
        assert await call(bob, "hello", {"name": "bob"}) == "in"
        joined = await recv(ann)  # from the other process
        assert joined["type"] == "join"
        assert joined["data"]["user"] == {"name": "bob"}
        bob_id = joined["data"]["id"]
        members = await call(ann, "who", id=2)
        assert sorted(m["user"]["name"] for m in members) == ["ann", "bob"]
        assert bob_id in {m["id"] for m in members}

        two.kill()  # SIGKILL: no cleanup, no leave event; the heartbeat expires

        async def forgotten() -> bool:
            # Members and users are two reads: a member removed in between has no user.
            members = await call(ann, "who", id=3)
            return [m["user"] and m["user"]["name"] for m in members] == ["ann"]

        await eventually(forgotten, TIMEOUT)
        await bob.close()


async def test_a_request_to_a_client_is_answered_once(servers):
    one, _ = servers
    async with connect(one.ws_url + "/ws") as ws:
        assert await call(ws, "ask", "2+2?") is True
        question = await recv(ws)
        assert question["type"] == "question" and question["data"] == "2+2?"
        for answer in (4, 5):  # the second answer is ignored, and counted
            await ws.send(json.dumps({"type": "response", "data": answer, "id": question["id"]}))
        answered = await recv(ws)
        assert answered == {"type": "answered", "data": 4}
        assert await call(ws, "hello", "sentinel", id="s") == "in"  # after both answers
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            stats = (await client.get(one.url + "/stats")).json()
        assert stats["unknown_replies"] == 1
