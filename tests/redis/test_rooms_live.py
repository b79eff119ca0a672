"""Per-room traffic across two real uvicorn processes on one server, for every backend
that crosses processes (Redis and NATS: the ``broker`` fixture): a process receives a
room's frames only while it has a member in the room, and frames for a connection go to
the process holding it, read from each process's own counters (``/stats``, ``backend``);
broadcasts to everyone, sends, disconnects and requests by id still reach their
clients. The per-room subscriptions are checked on a ``valkey-server`` too."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.live import eventually
from tests.nats_server import NatsServer
from tests.redis.processes import TIMEOUT, call, hub_env, processes, recv
from tests.redis_server import RedisServer
from tests.uvicorn_process import UvicornProcess

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

#: Publications to room A while the second process has no member in it.
PUBLICATIONS = 50


@pytest.fixture
def servers(tmp_path: Path, broker: RedisServer | NatsServer) -> Iterator[list[UvicornProcess]]:
    with processes("tests.redis.cluster_app:app", tmp_path, hub_env(broker.url, "rooms")) as up:
        yield up


async def backend_stats(server: UvicornProcess) -> dict[str, int]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        response = await client.get(f"{server.url}/stats")
        response.raise_for_status()
        stats: dict[str, int] = response.json()["backend"]
        return stats


class Client:
    """A WebSocket client of the message-type endpoint with its id."""

    def __init__(self, ws: ClientConnection, conn_id: str) -> None:
        self.ws = ws
        self.id = conn_id
        self.calls = 0

    async def call(self, kind: str, data: Any = None) -> Any:
        self.calls += 1
        return await call(self.ws, kind, data, id=self.calls)

    async def until(self, kind: str) -> Any:
        """The data of the next push of type ``kind`` (earlier pushes skipped)."""
        while True:
            message = await recv(self.ws)
            if message["type"] == kind:
                return message

    async def pushes(self, kind: str, count: int) -> list[Any]:
        return [(await self.until(kind))["data"] for _ in range(count)]


@pytest.fixture
async def clients(servers: list[UvicornProcess]) -> AsyncIterator[list[Client]]:
    """Two clients on the first process, two on the second."""
    made: list[Client] = []
    for server in (servers[0], servers[0], servers[1], servers[1]):
        ws = await connect(f"{server.ws_url}/ws", open_timeout=TIMEOUT)
        welcome = await recv(ws)
        made.append(Client(ws, welcome["data"]["id"]))
    yield made
    for client in made:
        await client.ws.close()


@pytest.mark.parametrize(
    "broker",
    [
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("valkey", marks=pytest.mark.valkey),
        pytest.param("nats", marks=pytest.mark.nats),
    ],
    indirect=True,
)
async def test_a_process_without_members_in_a_room_receives_none_of_its_frames(servers, clients):
    one, two = servers
    a1, a2, b1, b2 = clients
    # Room A has members on the first process only; room B on both.
    for client, room in ((a1, "A"), (a2, "A"), (a1, "B"), (b1, "B")):
        assert await client.call("join", room) == room
    # A join is answered once its process receives the room.
    assert (await backend_stats(one))["rooms_subscribed"] == 2
    assert (await backend_stats(two))["rooms_subscribed"] == 1
    before = await backend_stats(two)

    for n in range(PUBLICATIONS):
        await a1.call("say", {"text": f"A{n}", "room": "A"})
    await b2.call("say", {"text": "A from two", "room": "A"})  # no member on two
    await a1.call("say", {"text": "B", "room": "B"})  # (a call skips its caller's pushes)
    assert await a2.pushes("said", PUBLICATIONS + 1) == [f"A{n}" for n in range(PUBLICATIONS)] + [
        "A from two"
    ]
    assert await b1.pushes("said", 1) == ["B"]
    # A broadcast to everyone still reaches every client of both processes.
    await a1.call("mark", "everyone")
    for client in (a2, b1, b2):  # (a1's own came before its call's response)
        assert (await client.until("mark"))["data"] == "everyone"

    after = await backend_stats(two)
    assert after["received_frames_room"] - before["received_frames_room"] == 1  # B only
    assert after["received_frames_everyone"] - before["received_frames_everyone"] == 1
    assert after["received_frames"] - before["received_frames"] == 2

    # When the second process gets a member in A, it receives A's frames too.
    assert await b2.call("join", "A") == "A"
    await a1.call("say", {"text": "A again", "room": "A"})
    assert (await b2.until("said"))["data"] == "A again"
    assert (await backend_stats(two))["received_frames_room"] == after["received_frames_room"] + 1


async def test_sends_disconnects_and_requests_reach_the_process_holding_the_client(
    servers, clients
):
    one, two = servers
    a1, a2, b1, b2 = clients
    before_one = await backend_stats(one)

    assert await a1.call("dm", {"to": b1.id, "text": "psst"}) is True
    assert (await b1.until("dm"))["data"] == "psst"
    await a1.call("say", {"text": "picked", "to": [b2.id, a2.id]})
    assert (await b2.until("said"))["data"] == "picked"
    assert (await a2.until("said"))["data"] == "picked"

    asking = asyncio.ensure_future(a2.call("ask", {"to": b2.id, "q": "2+2?"}))
    question = await b2.until("question")
    assert question["data"] == "2+2?"
    await b2.ws.send(json.dumps({"type": "response", "data": 4, "id": question["id"]}))
    assert await asyncio.wait_for(asking, TIMEOUT) == 4

    assert await a1.call("kick", b1.id) is True
    assert (await b1.until("notice"))["data"] == "bye"
    await asyncio.wait_for(b1.ws.wait_closed(), TIMEOUT)
    assert b1.ws.close_code == 4001

    # The first process published four frames for clients of the second and read back
    # only the reply to its request: nothing it published came back to it.
    after_one = await backend_stats(one)
    assert after_one["received_frames"] - before_one["received_frames"] == 1
    assert after_one["received_frames_node"] - before_one["received_frames_node"] == 1

    async def node_frames() -> int:
        return (await backend_stats(two))["received_frames_node"]

    # dm, the to= list, the request and the disconnect: once each on the second.
    await eventually(lambda: _equals(node_frames(), 4), TIMEOUT)


async def _equals(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)
