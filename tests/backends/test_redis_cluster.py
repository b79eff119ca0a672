"""The Redis Cluster backend (``redis+cluster://``) on a real cluster of six
``redis-server`` processes (``tests/redis_cluster.py``, started once per session).

First the cluster itself, and the behaviour of its sharded pub/sub that the backend
relies on: a ``SSUBSCRIBE`` served by the slot's master, a ``SUNSUBSCRIBE`` pushed by the
server when the slot moves away, ``SPUBLISH`` from a script whose keys share the
channel's slot, a replica taking over a killed master. Then the sharded subscriber alone,
then the backend: the contract suite runs on it beside the other backends
(``conftest.py``), the cross-process tests of ``test_redis.py`` (hub API only) are
imported here and run on the cluster, and a slot moved or a master killed during a
broadcast stream.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import MovedError

from bocadillo.realtime.backends.redis_cluster import ShardedSubscriber
from tests.backends.test_redis import (
    test_a_broadcast_to_local_ids_only_is_not_published,
    test_a_dead_node_leaves_no_ghosts_after_its_heartbeat_expires,
    test_a_dead_nodes_users_leave_presence_after_its_heartbeat_expires,
    test_a_process_receives_only_the_rooms_it_has_members_in,
    test_a_reply_goes_to_the_asking_process_only,
    test_a_request_reaches_a_connection_of_another_process,
    test_apps_with_different_prefixes_do_not_hear_each_other,
    test_broadcast_reaches_every_process_and_each_process_once,
    test_counts_members_and_rooms_are_shared_and_follow_changes,
    test_frames_for_connections_reach_their_processes_only,
    test_joining_waits_for_the_subscription_before_the_membership_shows,
    test_many_concurrent_queries_wait_for_a_connection_instead_of_failing,
    test_presence_and_its_events_cross_processes,
    test_room_broadcast_to_and_exclude_across_processes,
    test_send_and_disconnect_by_id_reach_the_owning_process,
    test_shutdown_removes_the_presence_of_the_process,
)
from tests.live import eventually
from tests.redis_cluster import SLOTS, LocalRedisCluster

pytestmark = [pytest.mark.redis, pytest.mark.redis_cluster, pytest.mark.anyio]

__all__ = [
    "test_a_broadcast_to_local_ids_only_is_not_published",
    "test_a_dead_node_leaves_no_ghosts_after_its_heartbeat_expires",
    "test_a_dead_nodes_users_leave_presence_after_its_heartbeat_expires",
    "test_a_process_receives_only_the_rooms_it_has_members_in",
    "test_a_reply_goes_to_the_asking_process_only",
    "test_a_request_reaches_a_connection_of_another_process",
    "test_apps_with_different_prefixes_do_not_hear_each_other",
    "test_broadcast_reaches_every_process_and_each_process_once",
    "test_counts_members_and_rooms_are_shared_and_follow_changes",
    "test_frames_for_connections_reach_their_processes_only",
    "test_joining_waits_for_the_subscription_before_the_membership_shows",
    "test_many_concurrent_queries_wait_for_a_connection_instead_of_failing",
    "test_presence_and_its_events_cross_processes",
    "test_room_broadcast_to_and_exclude_across_processes",
    "test_send_and_disconnect_by_id_reach_the_owning_process",
    "test_shutdown_removes_the_presence_of_the_process",
]

#: Upper bound of a wait for one pub/sub message (the machine may be busy).
WAIT = 5.0


@pytest.fixture
def cluster(redis_cluster: LocalRedisCluster) -> LocalRedisCluster:
    """The session's cluster, healthy at the start of the test."""
    redis_cluster.wait_healthy()
    return redis_cluster


@pytest.fixture
def backend_url(cluster: LocalRedisCluster) -> str:
    """This module's tests are the cluster's own: not parametrized over the backends."""
    return cluster.url


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


# The sharded subscriber ----------------------------------------------------------------


@pytest.fixture
async def cluster_client(cluster) -> AsyncIterator[RedisCluster]:
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in cluster.nodes])
    _ = await client.initialize()
    yield client
    await client.aclose()


@pytest.fixture
async def subscriber(cluster_client) -> AsyncIterator[tuple[ShardedSubscriber, Inbox]]:
    inbox = Inbox()
    subscriber = ShardedSubscriber(cluster_client, inbox.put, check_interval=0.5)
    await subscriber.start()
    yield subscriber, inbox
    await subscriber.stop()


class Inbox:
    """What a subscriber delivered: ``(channel, data)`` pairs, in order."""

    def __init__(self) -> None:
        self.items: list[tuple[bytes, bytes]] = []
        self._changed = asyncio.Event()

    def put(self, channel: bytes, data: bytes) -> None:
        self.items.append((channel, data))
        self._changed.set()

    async def wait_for(self, count: int) -> list[tuple[bytes, bytes]]:
        async def wait() -> None:
            while len(self.items) < count:
                self._changed.clear()
                await self._changed.wait()

        await asyncio.wait_for(wait(), WAIT)
        return self.items


def channels_on_every_master(cluster: LocalRedisCluster, per_master: int) -> list[bytes]:
    """``per_master`` channels (in distinct slots) served by each master."""
    found: dict[int, list[bytes]] = {port: [] for port in cluster.master_ports()}
    for n in range(10_000):
        channel = f"sub:{{{n}}}:room".encode()
        port = cluster.owner(key_slot(channel)).port
        if len(found[port]) < per_master:
            found[port].append(channel)
        if all(len(channels) == per_master for channels in found.values()):
            return [channel for channels in found.values() for channel in channels]
    raise AssertionError("not enough slots")


async def test_the_subscriber_keeps_one_connection_per_master(cluster, cluster_client, subscriber):
    sharded, inbox = subscriber
    channels = channels_on_every_master(cluster, 2)
    for channel in channels:
        sharded.add(channel)
    await sharded.wait_subscribed(channels, WAIT)
    assert sharded.stats()["shard_links"] == 3

    for channel in channels:
        assert await cluster_client.spublish(channel, b"hello " + channel) == 1
    received = await inbox.wait_for(len(channels))
    assert sorted(received) == sorted((channel, b"hello " + channel) for channel in channels)

    # A master left with no channel of this process: its connection is closed.
    for channel in channels[:2]:
        sharded.remove(channel)
    await eventually(lambda: sharded.stats()["shard_links"] == 2)
    assert await cluster_client.spublish(channels[0], b"gone") == 0
    assert await cluster_client.spublish(channels[2], b"still") == 1
    assert (await inbox.wait_for(len(channels) + 1))[-1] == (channels[2], b"still")


async def test_the_subscriber_follows_a_moved_slot(cluster, cluster_client, subscriber):
    sharded, inbox = subscriber
    channel, neighbour = channels_on_every_master(cluster, 2)[:2]  # two slots, one master
    sharded.add(channel)
    sharded.add(neighbour)
    await sharded.wait_subscribed([channel, neighbour], WAIT)

    await asyncio.to_thread(cluster.move_slot, key_slot(channel))

    await eventually(lambda: sharded.stats()["shard_moves"] == 1)
    await sharded.wait_subscribed([channel, neighbour], WAIT)
    assert sharded.stats()["shard_links"] == 2  # the old master keeps the neighbour
    assert await cluster_client.spublish(channel, b"after") == 1
    assert await cluster_client.spublish(neighbour, b"next door") == 1
    assert sorted(await inbox.wait_for(2)) == [(channel, b"after"), (neighbour, b"next door")]


async def test_the_subscriber_follows_a_failover(cluster, cluster_client, subscriber):
    sharded, inbox = subscriber
    channels = channels_on_every_master(cluster, 1)
    for channel in channels:
        sharded.add(channel)
    await sharded.wait_subscribed(channels, WAIT)

    killed, _ = await asyncio.to_thread(cluster.kill_master, key_slot(channels[0]))
    try:
        await sharded.wait_subscribed(channels, 30.0)
        assert sharded.stats()["shard_links_lost"] == 1
        assert sharded.stats()["shard_links"] == 3
        for channel in channels:
            assert await cluster_client.spublish(channel, b"after") == 1
        assert sorted(await inbox.wait_for(3)) == sorted((ch, b"after") for ch in channels)
    finally:
        await asyncio.to_thread(cluster.restore, killed)
