"""The broker killed and restarted in the middle of a broadcast stream, for every backend
that crosses processes: Redis, NATS and Redis Cluster (the ``broker`` fixture).

Two uvicorn processes of ``cluster_app``, real WebSocket clients on each, in two rooms.
Each process streams ticks into one room (``a`` from the first process, ``b`` from the
second) whose members are on both; mid-stream the server gets SIGKILL, then starts again
on its port, empty. On Redis Cluster every node (three masters, three replicas) gets
SIGKILL, then they all start again on their ports with their ``nodes.conf``, and the
cluster forms again, empty. Nobody hangs (the ticks of each room reach the other process
again), each room's publications cross again (its subscriptions are restored),
membership and presence are written back, and every tick the other process missed is
accounted for: dropped while the backend was down (``publish_failed``), or published but
never received (the difference between the publisher's ``published`` and the receiver's
``received``), all of it between the kill and the reconnection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.live import eventually
from tests.nats_server import NatsServer
from tests.redis.processes import TIMEOUT, Peer, hub_env, processes, stats
from tests.redis_cluster import LocalRedisCluster
from tests.redis_server import RedisServer
from tests.reliability.harness import record_figures
from tests.uvicorn_process import UvicornProcess

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

#: The streams' pace, and their bound (never reached: the test stops them).
EVERY = 0.01
LIMIT = 6000


@dataclass
class Broker:
    """What the test kills and starts again: one server, or every node of a cluster."""

    name: str
    url: str
    kill: Callable[[], None]
    #: Start it again on its ports and wait until it serves.
    restart: Callable[[], object]


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
        pytest.param("redis_cluster", marks=[pytest.mark.redis, pytest.mark.redis_cluster]),
    ]
)
def broker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Broker]:
    """Each backend's server: a ``redis-server``, a ``nats-server``, or a Redis Cluster
    of this test's own (not the session's: the whole of it goes down)."""
    if request.param == "redis_cluster":
        cluster = LocalRedisCluster(tmp_path / "cluster")
        try:
            cluster.start()
            yield Broker("redis_cluster", cluster.url, cluster.kill_all, cluster.restart_all)
        finally:
            cluster.close()
        return
    server: RedisServer | NatsServer = request.getfixturevalue(f"{request.param}_server")
    yield Broker(request.param, server.url, lambda: server.stop(kill=True), server.start)


@pytest.fixture
def servers(tmp_path: Path, broker: Broker) -> Iterator[list[UvicornProcess]]:
    with processes("tests.redis.cluster_app:app", tmp_path, hub_env(broker.url, "outage")) as up:
        yield up


@pytest.fixture
async def peers(servers: list[UvicornProcess]) -> AsyncIterator[tuple[list[Peer], list[Peer]]]:
    """Three named clients on each process: rooms ``a`` (two on each) and ``b`` (one on
    each)."""
    one = [await Peer.open(servers[0]) for _ in range(3)]
    two = [await Peer.open(servers[1]) for _ in range(3)]
    for side, peers in (("one", one), ("two", two)):
        for n, peer in enumerate(peers):
            await peer.call("hello", f"{side}-{n}")
            await peer.call("join", "a" if n < 2 else "b")
    yield one, two
    for peer in one + two:
        await peer.close()


async def backend(server: UvicornProcess) -> dict[str, int]:
    found: dict[str, int] = (await stats(server))["backend"]
    return found


async def _equals(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)


async def restored(one: list[Peer], two: list[Peer]) -> bool:
    """Membership and presence as they were, seen from both processes."""
    a = sorted([one[0].id, one[1].id, two[0].id, two[1].id])
    b = sorted([one[2].id, two[2].id])
    for peer in (one[0], two[0]):
        if await peer.call("count") != 6:
            return False
        if (await peer.call("members", "a"), await peer.call("members", "b")) != (a, b):
            return False
        if await peer.call("presence", "a") != ["one-0", "one-1", "two-0", "two-1"]:
            return False
        if await peer.call("presence", "b") != ["one-2", "two-2"]:
            return False
    return True


async def test_a_broker_restart_mid_stream_is_survived_and_what_was_lost_is_counted(
    servers, peers, broker
):
    one, two = peers
    await eventually(lambda: restored(one, two), TIMEOUT)
    # The rooms' streams: from each process to a room with members on both.
    flows = {
        "a": (servers[0], servers[1], one[0], [one[0], one[1]], [two[0], two[1]]),
        "b": (servers[1], servers[0], two[2], [two[2]], [one[2]]),
    }
    before = {
        room: (await backend(flow[0]), await backend(flow[1])) for room, flow in flows.items()
    }
    for room, (_, _, driver, _, _) in flows.items():
        await driver.call("stream", {"room": room, "every": EVERY, "limit": LIMIT})
    far = {room: flow[4] for room, flow in flows.items()}
    await eventually(
        lambda: all(len(p.got("tick")) >= 30 for peers in far.values() for p in peers), TIMEOUT
    )

    loop = asyncio.get_running_loop()
    broker.kill()
    killed_at = loop.time()
    # What the far clients had when the broker died: everything before it arrived.
    seen = {room: min(len(p.got("tick")) for p in peers) for room, peers in far.items()}

    async def down_and_dropping(server: UvicornProcess, failed_before: int) -> bool:
        now = await backend(server)
        return now["connected"] == 0 and now["publish_failed"] >= failed_before + 10

    for room, (publisher, _, _, _, _) in flows.items():
        failed = before[room][0]["publish_failed"]
        await eventually(lambda: down_and_dropping(publisher, failed), TIMEOUT)  # noqa: B023

    restarted_at = loop.time()
    await asyncio.to_thread(broker.restart)  # the same ports, empty
    serving_at = loop.time()

    async def reconnected(server: UvicornProcess) -> bool:
        now = await backend(server)
        return bool(now["connected"] == 1 and now["reconnects"] >= 1)

    for server in servers:
        await eventually(lambda: reconnected(server), TIMEOUT)  # noqa: B023
    reconnected_at = loop.time()
    # Ticks from here on were sent with both processes connected again.
    back = {room: await flow[2].call("sent", room) for room, flow in flows.items()}

    # No hang: each room's ticks reach the other process again (its subscription to the
    # room is back), well past the reconnection.
    for room, peers in far.items():
        await eventually(
            lambda: all(p.got("tick")[-1:] >= [back[room] + 20] for p in peers),  # noqa: B023
            TIMEOUT,
            what=f"room {room}'s ticks cross again",
        )
    # Membership and presence written back (the restarted server was empty).
    await eventually(lambda: restored(one, two), TIMEOUT)

    figures: dict[str, Any] = {
        "backend": broker.name,
        # Seconds: down (from the kill until the restart began), until it served again
        # (on a cluster, every node saying cluster_state:ok), then until both processes
        # were connected.
        "down_s": round(restarted_at - killed_at, 2),
        "restart_s": round(serving_at - restarted_at, 2),
        "reconnect_s": round(reconnected_at - serving_at, 2),
    }
    for room, (publisher, receiver, driver, near, far_peers) in flows.items():
        total = await driver.call("stop", room)
        await eventually(
            lambda: all(p.got("tick")[-1:] == [total - 1] for p in far_peers),  # noqa: B023
            TIMEOUT,
        )
        sent_stats, received_stats = await backend(publisher), await backend(receiver)
        published = sent_stats["published"] - before[room][0]["published"]
        failed = sent_stats["publish_failed"] - before[room][0]["publish_failed"]
        received = received_stats["received"] - before[room][1]["received"]

        # Local delivery never stopped.
        assert all(p.got("tick") == list(range(total)) for p in near)
        got = far_peers[0].got("tick")
        assert all(p.got("tick") == got for p in far_peers)  # each frame once per member
        assert got == sorted(set(got))  # in order, none twice
        # Every tick was published or counted as dropped; the receiving process
        # delivered every tick it received.
        assert published + failed == total
        assert received == len(got)
        lost = total - len(got)
        unreceived = published - received
        assert lost == failed + unreceived and failed > 0 and unreceived >= 0
        if broker.name == "redis_cluster":
            # Every loss counted by the publisher: its writer cannot publish before every
            # master says cluster_state:ok (at least 2 s after it starts), while the
            # masters serve SSUBSCRIBE at once, and the subscribers retry within 0.5 s.
            assert unreceived == 0
        # All of it between the kill and the reconnection.
        missing = sorted(set(range(total)) - set(got))
        assert got[: seen[room]] == list(range(seen[room]))
        assert missing[0] >= seen[room] and missing[-1] < back[room], (missing, seen, back)
        figures[room] = {
            "ticks": total,
            "lost": lost,
            "publish_failed": failed,
            "published_not_received": unreceived,
            "lost_window": [missing[0], missing[-1]],
            "window_ticks": back[room] - seen[room],
        }
        if "shard_gap_ms_max" in received_stats:  # a cluster: the receiver's longest gap
            figures[room]["resubscribed_after_ms"] = received_stats["shard_gap_ms_max"]
    record_figures(f"outage_{figures['backend']}", figures)
