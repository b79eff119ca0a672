"""The Redis Cluster backend (``redis+cluster://``) on real clusters of six server
processes (``tests/redis_cluster.py``, each started once per session): of
``redis-server``, then of ``valkey-server``.

First the cluster itself, and the behaviour of its sharded pub/sub that the backend
relies on: a ``SSUBSCRIBE`` served by the slot's master, a ``SUNSUBSCRIBE`` pushed by the
server when the slot moves away, ``SPUBLISH`` from a script whose keys share the
channel's slot, a replica taking over a killed master. Then the sharded subscriber alone,
then the backend: the contract suite runs on it beside the other backends
(``conftest.py``), the cross-process tests of ``test_redis.py`` (hub API only) and the
history contract (``test_history_contract.py``, but its server outages) are imported here
and run on the cluster, and a slot moved or a master killed during a
broadcast stream.

Each test runs on both clusters (``redis_flavor``) but the two broadcast streams, which
run on Redis only.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import redis.asyncio as aioredis
from redis.asyncio.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot
from redis.exceptions import MovedError

from bocadillo import App
from bocadillo.errors import ConfigurationError
from bocadillo.realtime.backends import backend_from_url
from bocadillo.realtime.backends._redis_shards import ShardedSubscriber
from bocadillo.realtime.backends.redis_cluster import RedisClusterBackend
from tests.backends.support import settled
from tests.backends.test_history_contract import (
    test_a_read_returns_the_kept_publications_after_an_offset,
    test_a_room_idle_for_its_ttl_starts_over_with_a_new_epoch,
    test_an_empty_room_gets_an_epoch_its_first_publication_keeps,
    test_concurrent_reads_of_an_empty_room_agree_on_its_epoch,
    test_publications_get_consecutive_offsets_and_one_order_on_every_node,
    test_rooms_of_any_name_and_settings_keep_separate_streams,
)
from tests.backends.test_redis import (
    test_a_broadcast_to_local_ids_only_is_not_published,
    test_a_dead_node_leaves_no_ghosts_after_its_heartbeat_expires,
    test_a_dead_nodes_users_leave_presence_after_its_heartbeat_expires,
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
from tests.backends.test_routing import test_a_process_receives_only_the_rooms_it_has_members_in
from tests.hub_client import HubClient
from tests.live import eventually
from tests.redis_cluster import SLOTS, LocalRedisCluster
from tests.redis_server import Flavor
from tests.reliability.harness import record_figures

pytestmark = [pytest.mark.redis, pytest.mark.redis_cluster, pytest.mark.anyio]

__all__ = [
    "test_a_broadcast_to_local_ids_only_is_not_published",
    "test_a_dead_node_leaves_no_ghosts_after_its_heartbeat_expires",
    "test_a_dead_nodes_users_leave_presence_after_its_heartbeat_expires",
    "test_a_process_receives_only_the_rooms_it_has_members_in",
    "test_a_read_returns_the_kept_publications_after_an_offset",
    "test_a_reply_goes_to_the_asking_process_only",
    "test_a_request_reaches_a_connection_of_another_process",
    "test_a_room_idle_for_its_ttl_starts_over_with_a_new_epoch",
    "test_an_empty_room_gets_an_epoch_its_first_publication_keeps",
    "test_apps_with_different_prefixes_do_not_hear_each_other",
    "test_broadcast_reaches_every_process_and_each_process_once",
    "test_concurrent_reads_of_an_empty_room_agree_on_its_epoch",
    "test_counts_members_and_rooms_are_shared_and_follow_changes",
    "test_frames_for_connections_reach_their_processes_only",
    "test_joining_waits_for_the_subscription_before_the_membership_shows",
    "test_many_concurrent_queries_wait_for_a_connection_instead_of_failing",
    "test_presence_and_its_events_cross_processes",
    "test_publications_get_consecutive_offsets_and_one_order_on_every_node",
    "test_room_broadcast_to_and_exclude_across_processes",
    "test_rooms_of_any_name_and_settings_keep_separate_streams",
    "test_send_and_disconnect_by_id_reach_the_owning_process",
    "test_shutdown_removes_the_presence_of_the_process",
]

#: Upper bound of a wait for one pub/sub message (the machine may be busy).
WAIT = 5.0


@pytest.fixture(params=["redis", pytest.param("valkey", marks=pytest.mark.valkey)])
def redis_flavor(request: pytest.FixtureRequest) -> Flavor:
    """Every test of this module runs on a cluster of ``redis-server``, then of
    ``valkey-server``, but those parametrized with ``redis`` alone."""
    flavor: Flavor = request.param
    return flavor


@pytest.fixture
def cluster(
    redis_clusters: Callable[[Flavor], LocalRedisCluster], redis_flavor: Flavor
) -> LocalRedisCluster:
    """The session's cluster of ``redis_flavor``, healthy at the start of the test."""
    cluster = redis_clusters(redis_flavor)
    cluster.wait_healthy()
    return cluster


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


def test_the_scheme_picks_the_cluster_backend_with_its_options():
    backend = backend_from_url(
        "redis+cluster://app:s%40cret@10.0.0.1:7000, 10.0.0.2:7001,[::1]:7002",
        prefix="chat",
        heartbeat_ttl=7,
        partitions=64,
        check_interval=2,
        other=1,
    )
    assert isinstance(backend, RedisClusterBackend)
    assert backend.nodes == [("10.0.0.1", 7000), ("10.0.0.2", 7001), ("::1", 7002)]
    assert backend._client_options == {"ssl": False, "username": "app", "password": "s@cret"}
    assert (backend.prefix, backend.heartbeat_ttl, backend.check_interval) == ("chat", 7.0, 2.0)
    assert backend.layout.partitions == 64
    assert (backend.publish_command, backend.ordered, backend.routed) == ("SPUBLISH", False, True)
    tls = backend_from_url("rediss+cluster://:pw@h:1/0")
    assert isinstance(tls, RedisClusterBackend)
    assert tls._client_options == {"ssl": True, "password": "pw"}
    app = App(hub_backend="redis+cluster://127.0.0.1:7000")
    assert isinstance(app.hub.backend, RedisClusterBackend)


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("redis+cluster://", {}, "host:port"),
        ("redis+cluster://localhost", {}, "host:port"),
        ("redis+cluster://h:1,h", {}, "host:port"),
        ("redis+cluster://h:70000", {}, "host:port"),
        ("redis+cluster://h:1/2", {}, "only database 0"),
        ("redis+cluster://h:1", {"check_interval": 0}, "check_interval"),
        ("redis+cluster://h:1", {"prefix": "a{b}"}, "hub_prefix"),
        ("redis+cluster://h:1", {"partitions": 0}, "hub_partitions"),
    ],
)
def test_bad_cluster_urls_and_options_are_configuration_errors(url, options, message):
    with pytest.raises(ConfigurationError, match=message):
        backend_from_url(url, **options)


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


#: How a slot moves: as ``redis-cli --cluster reshard`` does, on Redis and on Valkey; and
#: with Valkey's atomic slot migration (``CLUSTER MIGRATESLOTS``, Valkey 9.0 and later).
SLOT_MOVES = pytest.mark.parametrize(
    ("redis_flavor", "atomic"),
    [
        pytest.param("redis", False, id="redis"),
        pytest.param("valkey", False, marks=pytest.mark.valkey, id="valkey"),
        pytest.param("valkey", True, marks=pytest.mark.valkey, id="valkey-atomic"),
    ],
)


@SLOT_MOVES
async def test_a_slot_move_pushes_sunsubscribe_and_redirects_spublish(cluster, connect, atomic):
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

        target = cluster.move_slot(slot, atomic=atomic)

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
    client = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", n.port) for n in cluster.nodes],
        socket_timeout=1.0,  # a frozen master times out soon
    )
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


async def subscribe(sharded: ShardedSubscriber, channels: list[bytes]) -> list[bytes]:
    """Subscribe ``channels`` and wait until their masters confirmed; returns them."""
    for channel in channels:
        sharded.add(channel)
    await sharded.wait_subscribed(channels, WAIT)
    return channels


async def test_the_subscriber_keeps_one_connection_per_master(cluster, cluster_client, subscriber):
    sharded, inbox = subscriber
    channels = await subscribe(sharded, channels_on_every_master(cluster, 2))
    assert sharded.stats()["shard_links"] == 3

    for channel in channels:
        assert await cluster_client.spublish(channel, b"hello " + channel) == 1
    received = await inbox.wait_for(len(channels))
    assert sorted(received) == sorted((channel, b"hello " + channel) for channel in channels)

    # A master left with no channel of this process: its connection is closed.
    for channel in channels[:2]:
        sharded.remove(channel)
    await eventually(lambda: sharded.stats()["shard_links"] == 2)

    # The server drops the subscription once it has read the close, a moment later.
    async def unsubscribed() -> bool:
        return bool(await cluster_client.spublish(channels[0], b"gone") == 0)

    await eventually(unsubscribed, what="the closed link's channel has no subscriber")
    assert await cluster_client.spublish(channels[2], b"still") == 1
    assert (await inbox.wait_for(len(channels) + 1))[-1] == (channels[2], b"still")


@SLOT_MOVES
async def test_the_subscriber_follows_a_moved_slot(cluster, cluster_client, subscriber, atomic):
    sharded, inbox = subscriber
    # Two slots of one master.
    channel, neighbour = await subscribe(sharded, channels_on_every_master(cluster, 2)[:2])

    await asyncio.to_thread(cluster.move_slot, key_slot(channel), atomic=atomic)

    await eventually(lambda: sharded.stats()["shard_moves"] == 1)
    await sharded.wait_subscribed([channel, neighbour], WAIT)
    assert sharded.stats()["shard_links"] == 2  # the old master keeps the neighbour
    assert await cluster_client.spublish(channel, b"after") == 1
    assert await cluster_client.spublish(neighbour, b"next door") == 1
    # (Sorted both: which of the two channel names sorts first depends on the slots.)
    assert sorted(await inbox.wait_for(2)) == sorted(
        [(channel, b"after"), (neighbour, b"next door")]
    )


async def test_the_subscriber_follows_a_moved_redirection(cluster, cluster_client):
    # The subscriber last asked the cluster before the slot moved: its SSUBSCRIBE goes to
    # the old master, which answers MOVED; it subscribes on the master named there.
    inbox = Inbox()
    sharded = ShardedSubscriber(cluster_client, inbox.put, check_interval=60.0)
    await sharded.start()
    try:
        first, later = channels_on_every_master(cluster, 2)[:2]
        await subscribe(sharded, [first])  # the slots are known from now on
        await asyncio.to_thread(cluster.move_slot, key_slot(later))

        await subscribe(sharded, [later])

        assert sharded.stats()["shard_moves"] == 1  # the MOVED
        assert await cluster_client.spublish(later, b"found") == 1
        assert await inbox.wait_for(1) == [(later, b"found")]
    finally:
        await sharded.stop()


async def test_the_subscriber_follows_a_failover(cluster, cluster_client, subscriber):
    sharded, inbox = subscriber
    channels = await subscribe(sharded, channels_on_every_master(cluster, 1))

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


async def test_the_subscriber_leaves_a_master_that_hangs(cluster, cluster_client, subscriber):
    # A frozen master closes nothing: no push, no broken connection. The periodic check
    # (CLUSTER SLOTS, and PING on each connection) finds the replica that took over.
    sharded, inbox = subscriber
    channels = await subscribe(sharded, channels_on_every_master(cluster, 1))

    frozen = await asyncio.to_thread(cluster.freeze_master, key_slot(channels[0]))
    try:
        await eventually(lambda: sharded.stats()["shard_links_lost"] == 1, timeout=10.0)
        await sharded.wait_subscribed(channels, 30.0)
        for channel in channels:
            assert await cluster_client.spublish(channel, b"after") == 1
        assert sorted(await inbox.wait_for(3)) == sorted((ch, b"after") for ch in channels)
    finally:
        await asyncio.to_thread(cluster.thaw, frozen)
    assert sharded.stats()["shard_links"] == 3


# A broadcast stream through a slot move and a failover ------------------------------------

#: Frames of a stream, and the seconds between two of them.
STREAM_FRAMES = 1500
STREAM_PERIOD = 0.004


class Stream:
    """``STREAM_FRAMES`` broadcasts ``0, 1, 2...`` to a room from ``publisher``, one every
    ``STREAM_PERIOD`` seconds, each stamped with the loop's time when published."""

    def __init__(self, publisher: Any, room: str) -> None:
        self.publisher = publisher
        self.room = room
        self.sent_at: list[float] = []
        self.task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        for n in range(STREAM_FRAMES):
            self.sent_at.append(loop.time())
            self.publisher.broadcast(n, room=self.room)
            await asyncio.sleep(STREAM_PERIOD)


async def stream_through(cluster, make_hub, change) -> dict[str, Any]:
    """Stream broadcasts to a room whose only member is on another process, run
    ``change(slot)`` (in a thread) once a tenth of them arrived, then return what
    arrived: ``received`` (in order), the ``missing`` numbers, ``changed_at`` and
    ``recovered_at`` (loop times: the change began; the listener's subscriptions and the
    publisher's connection were back), and both backends' stats.

    Then ``send`` reaches a connection of the listener whose partition was on the same
    master as the room (a script on that partition's master, which may be a replica just
    promoted: the first attempt may fail, ``NOSCRIPT``, and the writer reconnects);
    ``sends`` is how many attempts it took."""
    publisher, listener = await make_hub(), await make_hub()
    member = HubClient(listener, "m1")
    listener.join("m1", "busy")
    await listener.wait_subscribed(["busy"])
    layout = listener.backend.layout
    channel = layout.room_channel("busy").encode()
    slot = key_slot(channel)
    master_slots = next(view.slots for view in cluster.view() if slot in view.slots)
    near = HubClient(
        listener,
        next(
            conn_id
            for conn_id in (f"near{n}" for n in range(10_000))
            if key_slot(layout.conns(layout.partition(conn_id)).encode()) in master_slots
        ),
    )
    await settled(listener)

    stream = Stream(publisher, "busy")
    loop = asyncio.get_running_loop()
    await eventually(lambda: len(member.received) >= STREAM_FRAMES // 10)
    changed_at = loop.time()
    result = await asyncio.to_thread(change, slot)

    def recovered() -> bool:
        return bool(
            listener.backend._shards.confirmed(channel)
            and listener.backend.stats()["shard_unplaced"] == 0
            and publisher.backend.connected
        )

    await eventually(recovered, timeout=30.0)
    recovered_at = loop.time()
    await asyncio.wait_for(stream.task, 60.0)
    await settled(publisher)
    # The last frames arrive; what is missing then is lost.
    await eventually(lambda: member.received[-1:] == [STREAM_FRAMES - 1], timeout=10.0)
    received = member.received
    sends = 0

    def reached() -> bool:
        nonlocal sends
        if near.received:
            return True
        sends += 1
        publisher.send(near.id, "hello")
        return False

    await eventually(reached, timeout=10.0, interval=0.2)
    return {
        "sends": sends,
        "result": result,
        "received": received,
        "missing": sorted(set(range(STREAM_FRAMES)) - set(received)),
        "sent_at": stream.sent_at,
        "changed_at": changed_at,
        "recovered_at": recovered_at,
        "publisher": publisher.backend.stats(),
        "listener": listener.backend.stats(),
    }


# On Redis only: a stream takes 8 s, and Valkey's own sharded pub/sub through a slot move
# and a failover is checked above (the subscriber's tests, with the same clusters).
@pytest.mark.parametrize("redis_flavor", ["redis"])
async def test_a_slot_move_during_a_broadcast_stream(cluster, make_hub):
    run = await stream_through(cluster, make_hub, cluster.move_slot)
    received, missing = run["received"], run["missing"]

    assert received == sorted(received)  # in order, no duplicates
    assert run["listener"]["shard_moves"] == 1
    # Lost: only frames published between the move and the resubscription (the gap the
    # subscriber measured), in one run.
    gap = run["listener"]["shard_gap_ms_last"] / 1000
    if missing:
        assert missing == list(range(missing[0], missing[-1] + 1))
        assert len(missing) <= gap / STREAM_PERIOD + 10
    record_figures(
        "redis-cluster-slot-move",
        {
            "frames": STREAM_FRAMES,
            "period_ms": STREAM_PERIOD * 1000,
            "lost": len(missing),
            "resubscribed_after_ms": run["listener"]["shard_gap_ms_last"],
        },
    )


# On Redis only, as the slot move above.
@pytest.mark.parametrize("redis_flavor", ["redis"])
async def test_a_master_killed_during_a_broadcast_stream(cluster, make_hub):
    killed: list[Any] = []

    def kill(slot: int) -> float:
        node, took = cluster.kill_master(slot)
        killed.append(node)
        return float(took)

    try:
        run = await stream_through(cluster, make_hub, kill)
    finally:
        for node in killed:
            await asyncio.to_thread(cluster.restore, node)
    received, missing, sent_at = run["received"], run["missing"], run["sent_at"]

    assert received == sorted(received)  # in order, no duplicates
    assert run["listener"]["shard_links_lost"] >= 1
    assert missing  # the room's master was down for seconds
    # Every frame lost was published in the failover window: from the kill (less the
    # frames queued then) until the subscriptions and the publisher were back.
    start = run["changed_at"] - 0.1
    end = run["recovered_at"] + 0.1
    outside = [n for n in missing if not start <= sent_at[n] <= end]
    assert outside == []
    # The publisher counts what it could not publish (a frame in flight at the kill may
    # be counted and have arrived all the same); the rest were published to the new
    # master before the listener subscribed there.
    counted = run["publisher"]["publish_failed"]
    assert 0 < counted <= len(missing) + 1
    record_figures(
        "redis-cluster-failover",
        {
            "frames": STREAM_FRAMES,
            "period_ms": STREAM_PERIOD * 1000,
            "promoted_after_s": round(run["result"], 2),
            "window_s": round(run["recovered_at"] - run["changed_at"], 2),
            "resubscribed_after_ms": run["listener"]["shard_gap_ms_last"],
            "lost": len(missing),
            "lost_counted_by_publisher": counted,
            "sends_until_one_arrived": run["sends"],
        },
    )


# The whole cluster down ---------------------------------------------------------------


async def test_a_cluster_unreachable_at_startup_does_not_stop_the_app(make_hub, caplog, tmp_path):
    # No node answers: the cluster client raises RedisClusterUnreachableError, which is no
    # RedisError. The writer and the sharded subscriber keep trying all the same, and
    # connect once the cluster is back.
    caplog.set_level(logging.WARNING, logger="bocadillo.hub.redis")
    late = LocalRedisCluster(tmp_path / "late")
    try:
        await asyncio.to_thread(late.start)
        late.kill_all()  # nothing listens; the nodes keep their nodes.conf
        first = await make_hub(url=late.url)
        assert not first.backend.connected
        assert "unreachable; retrying in the background" in caplog.text
        local = HubClient(first, "x1")
        first.join("x1", "lobby")  # subscribed once the cluster is back
        first.broadcast("local")
        assert local.received == ["local"]

        await asyncio.to_thread(late.restart_all)
        await eventually(lambda: first.backend.connected, timeout=30.0)
        await first.wait_subscribed(["lobby"])
        second = await make_hub(url=late.url)
        assert second.backend.connected
        await eventually(lambda: _equals(second.room_members("lobby"), {"x1"}), timeout=10.0)
        second.broadcast("across", room="lobby")
        await eventually(lambda: local.received == ["local", "across"])
        assert "the sharded subscriber failed" not in caplog.text  # no bug, no traceback
        await second.shutdown(timeout=1.0)
        await first.shutdown(timeout=1.0)
    finally:
        late.close()


async def test_a_hub_whose_url_names_one_node_outlives_that_node(cluster, make_hub, caplog):
    # The writer starts each reconnection from the URL's nodes and from those of the
    # cluster it learnt while connected: with one node in the URL, killed, it reconnects
    # through the others once a replica took over.
    caplog.set_level(logging.WARNING, logger="bocadillo.hub.redis")
    second = await make_hub()
    channel = second.backend.layout.room_channel("lobby").encode()
    seed = cluster.owner(key_slot(channel))
    first = await make_hub(url=f"redis+cluster://{seed.address}")
    listener = HubClient(second, "b1")
    second.join("b1", "lobby")
    await second.wait_subscribed(["lobby"])

    killed, _ = await asyncio.to_thread(cluster.kill_master, key_slot(channel))
    try:

        def reached() -> bool:
            if listener.received:
                return True
            first.broadcast("after", room="lobby")  # to the seed's slot, so it notices
            return False

        await eventually(reached, timeout=30.0, interval=0.2)
        assert first.backend.stats()["reconnects"] >= 1
    finally:
        await asyncio.to_thread(cluster.restore, killed)


async def _equals(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)
