"""The Redis Cluster the cluster tests run on (``tests/redis_cluster.py``), and the
behaviour of Redis Cluster's sharded pub/sub that the ``redis+cluster://`` backend relies
on, checked on the real servers: a ``SSUBSCRIBE`` served by the slot's master, a
``SUNSUBSCRIBE`` pushed by the server when the slot moves away, ``SPUBLISH`` from a script
whose keys share the channel's slot, and a replica taking over a killed master.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.crc import key_slot
from redis.exceptions import MovedError

from tests.redis_cluster import SLOTS, LocalRedisCluster

pytestmark = [pytest.mark.redis, pytest.mark.redis_cluster, pytest.mark.anyio]

#: Upper bound of a wait for one pub/sub message (the machine may be busy).
WAIT = 5.0


@pytest.fixture
def cluster(redis_cluster: LocalRedisCluster) -> LocalRedisCluster:
    """The session's cluster, healthy at the start of the test."""
    redis_cluster.wait_healthy()
    return redis_cluster


@pytest.fixture
async def connect() -> AsyncIterator[Any]:
    """``connect(port)``: a plain (non-cluster) client of one node, closed at teardown."""
    clients: list[aioredis.Redis] = []

    def make(port: int) -> aioredis.Redis:
        client = aioredis.Redis(host="127.0.0.1", port=port)
        clients.append(client)
        return client

    yield make
    for client in clients:
        await client.aclose()


def test_the_harness_starts_three_masters_with_a_replica_each(cluster):
    assert cluster.problems() == []
    views = cluster.view()
    masters = [view for view in views if view.is_master]
    replicas = [view for view in views if not view.is_master]
    assert len(masters) == 3 and len(replicas) == 3
    assert set().union(*(view.slots for view in masters)) == set(range(SLOTS))
    assert sorted(view.master_id for view in replicas) == sorted(view.id for view in masters)
    assert cluster.url.startswith("redis+cluster://127.0.0.1:")
    assert len(cluster.url.split(",")) == 6


async def test_a_slot_move_pushes_sunsubscribe_and_redirects_spublish(cluster, connect):
    channel = "harness:{move}:room"
    slot = key_slot(channel.encode())
    source = cluster.owner(slot)
    pubsub = connect(source.port).pubsub()
    try:
        await pubsub.ssubscribe(channel)
        assert (await pubsub.get_message(timeout=WAIT))["type"] == "ssubscribe"
        assert await connect(source.port).spublish(channel, b"before") == 1
        message = await pubsub.get_message(timeout=WAIT)
        assert (message["type"], message["data"]) == ("smessage", b"before")

        target = cluster.move_slot(slot)

        assert target is not source and cluster.owner(slot) is target
        message = await pubsub.get_message(timeout=WAIT)
        assert (message["type"], message["channel"]) == ("sunsubscribe", channel.encode())
        with pytest.raises(MovedError) as moved:
            await connect(source.port).spublish(channel, b"after")
        assert moved.value.slot_id == slot and moved.value.port == target.port
    finally:
        await pubsub.aclose()


async def test_a_script_spublishes_to_the_slot_of_its_keys(cluster, connect):
    channel = "harness:{script}:room"
    owner_port = cluster.owner(key_slot(channel.encode())).port
    owner = connect(owner_port)
    pubsub = owner.pubsub()
    try:
        await pubsub.ssubscribe(channel)
        await pubsub.get_message(timeout=WAIT)
        script = "redis.call('INCR', KEYS[1]); return redis.call('SPUBLISH', ARGV[1], ARGV[2])"
        assert await owner.eval(script, 1, "harness:{script}:offset", channel, "frame") == 1
        message = await pubsub.get_message(timeout=WAIT)
        assert (message["type"], message["data"]) == ("smessage", b"frame")
        # A script's keys on another node: the node refuses it (MOVED to their slot).
        elsewhere = next(
            key
            for key in (f"harness:{{{n}}}:offset" for n in range(100))
            if cluster.owner(key_slot(key.encode())).port != owner_port
        )
        with pytest.raises(MovedError):
            await owner.eval(script, 1, elsewhere, channel, "frame")
    finally:
        await pubsub.aclose()


def test_a_killed_master_is_replaced_by_its_replica_and_rejoins_as_a_replica(cluster):
    slot = key_slot(b"harness:{failover}")
    before = cluster.owner(slot)
    replica_ports = {
        view.port
        for view in cluster.view()
        if view.master_id == next(v.id for v in cluster.view() if v.port == before.port)
    }

    killed, took = cluster.kill_master(slot)
    try:
        assert killed is before
        assert cluster.owner(slot).port in replica_ports
        assert 0 < took < 30
    finally:
        cluster.restore(killed)

    view = next(v for v in cluster.view() if v.port == killed.port)
    assert not view.is_master and view.master_id is not None
    assert cluster.problems() == []
