"""One app in several real uvicorn processes sharing one real ``redis-server``.

Each process runs ``tests/redis/cluster_app.py`` (or the example chat, with
``--workers 2``); clients connect to each with a real WebSocket client, and every hub
operation crosses the processes through Redis: broadcasts, rooms, ``to``/``exclude``,
sends and disconnects by id, the shared counts, and a worker killed with SIGKILL. A
server killed and restarted mid-run is in ``test_outage_live.py`` (on Redis and NATS).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from tests.live import eventually
from tests.redis.processes import TIMEOUT, Peer, processes, stats
from tests.redis_server import RedisServer
from tests.uvicorn_process import UvicornProcess

pytestmark = [pytest.mark.integration, pytest.mark.redis, pytest.mark.anyio]

HEARTBEAT_TTL = 2.0


@pytest.fixture
def redis_env(redis_server: RedisServer) -> dict[str, str]:
    return {
        "BOCADILLO_HUB_URL": redis_server.url,
        "BOCADILLO_HUB_PREFIX": "cluster",
        "BOCADILLO_HUB_HEARTBEAT_TTL": str(HEARTBEAT_TTL),
    }


@pytest.fixture
def servers(tmp_path: Path, redis_env: dict[str, str]) -> Iterator[list[UvicornProcess]]:
    """Two processes of ``cluster_app`` on one Redis."""
    with processes("tests.redis.cluster_app:app", tmp_path, redis_env) as started:
        yield started


@pytest.fixture
async def peers(servers: list[UvicornProcess]) -> AsyncIterator[tuple[list[Peer], list[Peer]]]:
    """Three clients on each of the two processes."""
    one = [await Peer.open(servers[0]) for _ in range(3)]
    two = [await Peer.open(servers[1]) for _ in range(3)]
    assert {p.pid for p in one}.isdisjoint({p.pid for p in two})
    yield one, two
    for peer in one + two:
        await peer.close()


async def test_broadcast_reaches_every_client_of_every_process_once(servers, peers):
    one, two = peers
    await eventually(lambda: _equals(one[0].call("count"), 6), TIMEOUT)

    assert await one[0].call("say", {"text": "hello all"}) == 3  # local hand-offs
    everyone = one + two
    await eventually(lambda: all(p.got("said") == ["hello all"] for p in everyone), TIMEOUT)

    # One frame on the bus; the other process received it once, for its 3 clients.
    first, second = await stats(servers[0]), await stats(servers[1])
    assert first["published"] == 1
    assert second["remote_frames"] == 1
    assert second["backend"]["received"] == 1
    assert first["backend"]["received"] == 0


async def _equals(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)


async def test_rooms_to_exclude_sends_and_disconnects_cross_processes(peers):
    (a1, a2, a3), (b1, b2, b3) = peers
    for peer in (a1, b1, b2):
        assert await peer.call("join", "lobby") == "lobby"
    await b3.call("join", "games")
    await eventually(
        lambda: _equals(a3.call("members", "lobby"), sorted([a1.id, b1.id, b2.id])), TIMEOUT
    )
    assert await a2.call("rooms_of", b3.id) == ["games"]
    assert await b1.call("count") == 6

    await a2.call("say", {"text": "room", "room": "lobby", "exclude": [b2.id]})
    await b3.call("say", {"text": "picked", "to": [a3.id, b2.id]})
    assert await a1.call("dm", {"to": b3.id, "text": "psst"}) is True
    await eventually(lambda: a1.got("said") == ["room"] and b1.got("said") == ["room"], TIMEOUT)
    await eventually(lambda: b2.got("said") == ["picked"] and a3.got("said") == ["picked"], TIMEOUT)
    await eventually(lambda: b3.got("dm") == ["psst"], TIMEOUT)
    # A last broadcast from each process reaches every client after everything that
    # process published before: once all have both, nothing misdirected is on its way.
    await a2.call("mark", "one")
    await b3.call("mark", "two")
    everyone = (a1, a2, a3, b1, b2, b3)
    await eventually(
        lambda: all(sorted(p.got("mark")) == ["one", "two"] for p in everyone), TIMEOUT
    )
    assert a2.got("said") == b3.got("said") == []
    assert a1.got("dm") == a2.got("dm") == b1.got("dm") == []

    # Disconnect by id from the other process: the notice, then the close code.
    assert await a1.call("kick", b1.id) is True
    await asyncio.wait_for(b1._reader, TIMEOUT)
    assert b1.got("notice") == ["bye"]
    assert b1.ws.close_code == 4001
    assert b1.ws.close_reason == "kicked"
    await eventually(lambda: _equals(a2.call("members", "lobby"), sorted([a1.id, b2.id])), TIMEOUT)
    assert await a2.call("count") == 5
    assert await a2.call("rooms_of", b1.id) == []


async def test_counts_follow_clients_coming_and_going(servers, peers):
    one, two = peers
    await eventually(lambda: _equals(one[0].call("count"), 6), TIMEOUT)
    extra = [await Peer.open(servers[1]) for _ in range(4)]
    await eventually(lambda: _equals(one[0].call("count"), 10), TIMEOUT)
    for peer in extra + two[:2]:
        await peer.close()
    await eventually(lambda: _equals(one[0].call("count"), 4), TIMEOUT)
    assert await two[2].call("count") == 4


async def test_a_sigkilled_worker_leaves_no_ghosts_after_the_heartbeat_expiry(servers, peers):
    one, two = peers
    for peer in one + two:
        await peer.call("join", "lobby")
    everyone = sorted(p.id for p in one + two)
    await eventually(lambda: _equals(one[0].call("members", "lobby"), everyone), TIMEOUT)

    servers[1].kill()  # no shutdown, no cleanup: its keys stay in Redis...
    survivors = sorted(p.id for p in one)
    assert await one[0].call("members", "lobby") == everyone
    # ...until its heartbeat expires and a live process removes them.
    await eventually(
        lambda: _equals(one[0].call("members", "lobby"), survivors), HEARTBEAT_TTL + TIMEOUT
    )
    assert await one[1].call("count") == 3
    assert await one[1].call("rooms_of", two[0].id) == []
    assert (await stats(servers[0]))["backend"]["dead_nodes_removed"] == 1


async def test_uvicorn_workers_serve_the_example_chat_across_workers(tmp_path, redis_env):
    server = UvicornProcess(
        "example_chat.app:app",
        tmp_path / "chat.log",
        env={**redis_env, "BOCADILLO_HUB_PREFIX": "chat"},
        args=("--workers", "2"),
    )
    server.start()
    sockets: list[ClientConnection] = []
    try:
        await eventually(lambda: len(server.workers()) == 2, TIMEOUT)
        # Connect until both workers hold clients (the kernel picks the worker).
        owners: dict[int, list[ClientConnection]] = {}
        for _ in range(60):
            ws = await connect(f"{server.ws_url}/ws", open_timeout=TIMEOUT)
            sockets.append(ws)
            await asyncio.wait_for(ws.recv(), TIMEOUT)  # welcome
            owners.setdefault(_worker_of(ws, server), []).append(ws)
            if len(owners) == 2 and len(sockets) >= 6:
                break
        assert len(owners) == 2, "every connection went to one worker"

        for n, ws in enumerate(sockets):
            await ws.send(json.dumps({"type": "hello", "data": {"name": f"u{n}"}}))
            await ws.send(json.dumps({"type": "join", "data": "general", "id": n}))
        speaker = owners[min(owners)][0]
        await _drain_until(speaker, lambda m: m["type"] == "response" and "id" in m)
        for ws in sockets:
            if ws is not speaker:
                await _drain_until(ws, lambda m: m["type"] == "response" and "id" in m)
        said = {"room": "general", "text": "across workers"}
        await speaker.send(json.dumps({"type": "message", "data": said}))
        for ws in sockets:
            message = await _drain_until(ws, lambda m: m["type"] == "message")
            assert message["data"]["text"] == "across workers"
    finally:
        for ws in sockets:
            await ws.close()
        server.kill()
    assert "Traceback" not in server.log, server.log


def _worker_of(ws: ClientConnection, server: UvicornProcess) -> int:
    """The worker PID holding the server end of ``ws``'s TCP connection."""
    inode = _server_socket_inode(server.port, ws.local_address[1])
    for pid in server.workers():
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            try:
                if fd.readlink().name == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"no worker holds the connection from port {ws.local_address[1]}")


def _server_socket_inode(server_port: int, client_port: int) -> str:
    """The inode of the server's socket of the connection from ``client_port``."""
    local, peer = f"0100007F:{server_port:04X}", f"0100007F:{client_port:04X}"
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == local and fields[2] == peer and fields[9] != "0":
            return fields[9]
    raise AssertionError(f"no server socket for client port {client_port}")


async def _drain_until(ws: ClientConnection, wanted: Callable[[dict[str, Any]], bool]) -> Any:
    while True:
        message = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        if wanted(message):
            return message
