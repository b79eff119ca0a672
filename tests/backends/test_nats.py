"""The NATS backend in one process: several hubs, each with its own backend (its own
node), sharing a real ``nats-server`` with JetStream, exactly as worker processes would.

The contract suite beside it (``test_backend_contract.py``, ``test_hub_contract.py``) runs
against NATS too. What crosses processes is the same as on Redis: those tests of
``test_redis.py`` that use the hub's API only are imported here and run on NATS as well;
what only NATS has (its scheme and options, the death of a node, an outage during a
stream, a server reachable only after start-up, per-room traffic on its subjects, the
order of frames across subjects, subscriptions that nats-py restores) follows. The history
contract (``test_history_contract.py``) runs on NATS too.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from typing import Any

import pytest

from bocadillo import App
from bocadillo.errors import BackendUnavailable, ConfigurationError, MissingDependency
from bocadillo.realtime.backends import EVERYONE, Route, backend_from_url
from bocadillo.realtime.backends._nats_bus import BusClient
from bocadillo.realtime.backends.nats import NatsBackend
from bocadillo.realtime.hub import Hub
from tests.backends.support import settled
from tests.backends.test_redis import (
    test_a_broadcast_to_local_ids_only_is_not_published,
    test_a_reply_goes_to_the_asking_process_only,
    test_a_request_reaches_a_connection_of_another_process,
    test_apps_with_different_prefixes_do_not_hear_each_other,
    test_broadcast_reaches_every_process_and_each_process_once,
    test_counts_members_and_rooms_are_shared_and_follow_changes,
    test_history_and_resume_cross_processes,
    test_joining_waits_for_the_subscription_before_the_membership_shows,
    test_presence_and_its_events_cross_processes,
    test_room_broadcast_to_and_exclude_across_processes,
    test_send_and_disconnect_by_id_reach_the_owning_process,
    test_shutdown_removes_the_presence_of_the_process,
)
from tests.hub_client import HubClient
from tests.live import eventually
from tests.nats_server import NatsServer

pytestmark = [pytest.mark.nats, pytest.mark.anyio]

__all__ = [
    "test_a_broadcast_to_local_ids_only_is_not_published",
    "test_a_reply_goes_to_the_asking_process_only",
    "test_a_request_reaches_a_connection_of_another_process",
    "test_apps_with_different_prefixes_do_not_hear_each_other",
    "test_broadcast_reaches_every_process_and_each_process_once",
    "test_counts_members_and_rooms_are_shared_and_follow_changes",
    "test_history_and_resume_cross_processes",
    "test_joining_waits_for_the_subscription_before_the_membership_shows",
    "test_presence_and_its_events_cross_processes",
    "test_room_broadcast_to_and_exclude_across_processes",
    "test_send_and_disconnect_by_id_reach_the_owning_process",
    "test_shutdown_removes_the_presence_of_the_process",
]


@pytest.fixture
def backend_url(nats_server: NatsServer) -> str:
    """This module's tests are NATS's own: not parametrized over the backends."""
    return nats_server.url


def test_the_scheme_picks_the_nats_backend_with_its_options():
    backend = backend_from_url(
        "nats://127.0.0.1:1", prefix="chat", heartbeat_ttl=7, publish_queue=5, other=1
    )
    assert isinstance(backend, NatsBackend)
    assert (backend.prefix, backend.heartbeat_ttl, backend.publish_queue) == ("chat", 7.0, 5)
    assert backend.subject == "chat.bus"
    assert backend.routed and backend.ordered
    subjects = backend.subjects
    assert subjects.inbox == f"chat.node.{backend.node}"
    assert subjects.room("lobby") == "chat.hpub.room.lobby"
    assert subjects.room("a.b c") == "chat.hpub.room.=YS5iIGM"  # any name: one token
    assert subjects.room_interest("lobby") == "chat.hpub.*.lobby"
    assert (backend.presence_bucket, backend.nodes_bucket) == ("chat_presence", "chat_nodes")
    assert backend.keeps_history
    several = backend_from_url("nats://127.0.0.1:1, nats://127.0.0.1:2")
    assert isinstance(several, NatsBackend)
    assert several.servers == ["nats://127.0.0.1:1", "nats://127.0.0.1:2"]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"heartbeat_ttl": 0}, "hub_heartbeat_ttl"),
        ({"prefix": ""}, "hub_prefix"),
        ({"prefix": "my.app"}, "hub_prefix"),
        ({"prefix": "app:v1"}, "hub_prefix"),
    ],
)
def test_bad_backend_options_are_configuration_errors(options, message):
    with pytest.raises(ConfigurationError, match=message):
        backend_from_url("nats://127.0.0.1:1", **options)


async def test_any_room_name_and_connection_id_round_trip(make_hub):
    first, second = await make_hub(), await make_hub()
    odd = ["café au lait", "a.b.c", "*", ">", "=x", "with space", "ünï/cødé", "=", "plain"]
    for n, name in enumerate(odd):
        HubClient(first, f"{name}#{n}")
        first.join(f"{name}#{n}", name)
    await settled(first)
    assert await second.connection_count() == len(odd)
    for n, name in enumerate(odd):
        assert await second.room_members(name) == {f"{name}#{n}"}
        assert await second.connection_rooms(f"{name}#{n}") == {name}


def die(hub: Hub) -> NatsBackend:
    """Stop a hub's backend as a killed worker stops: no beat, no write, no cleanup."""
    backend = hub.backend
    assert isinstance(backend, NatsBackend)
    backend._stopping = True
    for task in backend._tasks:
        task.cancel()
    return backend


async def test_a_dead_node_leaves_no_ghosts_after_its_heartbeat_expires(make_hub):
    survivor = await make_hub(heartbeat_ttl=2.0)
    doomed = await make_hub(heartbeat_ttl=2.0)
    HubClient(survivor, "s1")
    for i in range(3):
        HubClient(doomed, f"d{i}")
        doomed.join(f"d{i}", "lobby")
    doomed.set_user("d0", "ghost")
    survivor.join("s1", "lobby")
    await settled(survivor, doomed)

    die(doomed)
    # Its last beat was at most a third of the expiry ago: it is still counted.
    assert await survivor.connection_count() == 4
    assert await survivor.room_members("lobby") == {"s1", "d0", "d1", "d2"}

    async def ghosts_gone() -> bool:
        return bool(await survivor.connection_count() == 1)

    await eventually(ghosts_gone, timeout=5.0)
    assert await survivor.room_members("lobby") == {"s1"}
    assert await survivor.connection_rooms("d0") == set()
    assert await survivor.backend.users(["d0"]) == [None]
    assert survivor.backend.stats()["dead_nodes_removed"] == 1


async def test_a_node_presumed_dead_writes_its_presence_back(make_hub):
    first, second = await make_hub(), await make_hub()
    HubClient(first, "a1")
    first.join("a1", "lobby")
    first.set_user("a1", {"name": "ann"})
    await settled(first)
    backend = first.backend
    assert isinstance(backend, NatsBackend)
    resyncs = backend.stats()["resyncs"]
    # What a survivor does to a node whose heartbeat expired (a long pause, say).
    other = second.backend
    assert isinstance(other, NatsBackend)
    await other._remove_node(backend.node)
    assert await second.connection_count() == 0

    async def back() -> bool:
        return bool(await second.room_members("lobby") == {"a1"})

    await eventually(back, timeout=5.0)
    assert await second.connection_count() == 1
    assert await second.presence("lobby") == [{"id": "a1", "user": {"name": "ann"}}]
    assert backend.stats()["resyncs"] == resyncs + 1


async def test_a_nats_outage_during_a_stream_is_survived(make_hub, nats_server, caplog):
    caplog.set_level(logging.INFO, logger="bocadillo.hub.nats")
    first = await make_hub(reconnect_wait=0.05)
    second = await make_hub(reconnect_wait=0.05)
    a1, b1 = HubClient(first, "a1"), HubClient(second, "b1")
    first.join("a1", "lobby")
    second.join("b1", "lobby")
    await settled(first, second)

    total = 300  # one every 10 ms: about 3 s, the outage in the middle

    async def stream() -> None:
        for n in range(total):
            assert first.broadcast(n, room="lobby") == 1
            await asyncio.sleep(0.01)

    producer = asyncio.ensure_future(stream())
    try:
        await eventually(lambda: len(b1.received) >= 50, what="the stream reaches b1")
        nats_server.stop(kill=True)
        await eventually(lambda: not first.backend.connected and not second.backend.connected)
        await eventually(lambda: first.backend.stats()["publish_failed"] >= 20)
        assert "frames for other processes are lost" in caplog.text
        with pytest.raises(BackendUnavailable):
            await first.connection_count()
        # Membership changes during the outage are kept locally...
        a2 = HubClient(first, "a2")
        first.join("a2", "games")
        seen = len(b1.received)
        nats_server.start()  # same port, JetStream's memory buckets gone
        await eventually(lambda: first.backend.connected and second.backend.connected)
        # The subscriber did not hang: the stream reaches b1 again.
        await eventually(lambda: len(b1.received) > seen, what="the stream resumes for b1")
        await asyncio.wait_for(producer, 30)
    finally:
        producer.cancel()

    # Local delivery never stopped; b1 got the last frame, and whatever it missed is
    # counted: every frame was published or counted as failed, and every frame b1's
    # process received was delivered once.
    assert a1.received == list(range(total))
    await eventually(lambda: b1.received[-1:] == [total - 1], what="b1 gets the last frame")
    sent, received = first.backend.stats(), second.backend.stats()
    assert sent["published"] + sent["publish_failed"] == total
    assert sent["publish_failed"] > 0
    assert received["received"] == len(b1.received) < total
    assert b1.received == sorted(set(b1.received))  # in order, none twice
    assert sent["reconnects"] >= 1 and received["reconnects"] >= 1
    assert f"{sent['publish_failed']} frames were lost" in caplog.text

    # ...and written back once NATS returns empty.
    async def restored() -> bool:
        return bool(await second.room_members("lobby") == {"a1", "b1"})

    await eventually(restored)
    assert await second.room_members("games") == {"a2"}
    assert await second.connection_count() == 3
    second.broadcast("back", room="games")
    await eventually(lambda: a2.received == ["back"])


async def test_an_unreachable_nats_at_startup_does_not_stop_the_app(make_hub, caplog, tmp_path):
    caplog.set_level(logging.ERROR, logger="bocadillo.hub.nats")
    late = NatsServer(tmp_path / "late")  # its port is reserved, nothing listens yet
    try:
        hub = await make_hub(url=late.url, reconnect_wait=0.05)
        assert not hub.backend.connected
        assert "unreachable" in caplog.text
        local = HubClient(hub, "x1")
        hub.broadcast("local")
        assert local.received == ["local"]
        late.start()
        await eventually(lambda: hub.backend.connected)
        await eventually(lambda: hub.connection_count())
        assert await hub.connection_count() == 1
        await hub.shutdown(timeout=1.0)
    finally:
        late.close()


async def test_an_undecodable_frame_is_counted_and_ignored(make_hub, nats_server):
    import nats

    hub = await make_hub()
    client = HubClient(hub, "a1")
    backend = hub.backend
    assert isinstance(backend, NatsBackend)
    raw = await nats.connect(nats_server.url)
    try:
        await raw.publish(backend.subject, b"othernode {not json")
        await raw.publish(backend.subject, b'othernode {"v":1,"op":"broadcast","data":"ok"}')
        await raw.flush()
    finally:
        await raw.close()
    await eventually(lambda: client.received == ["ok"])
    assert hub.stats()["invalid_frames"] == 1


def test_settings_and_environment_configure_the_nats_backend(monkeypatch):
    monkeypatch.setenv("BOCADILLO_HUB_URL", "nats://127.0.0.1:1")
    monkeypatch.setenv("BOCADILLO_HUB_PREFIX", "chat")
    monkeypatch.setenv("BOCADILLO_HUB_HEARTBEAT_TTL", "3")
    hub = App().hub
    backend = hub.backend
    assert isinstance(backend, NatsBackend)
    assert (backend.url, backend.prefix, backend.heartbeat_ttl) == ("nats://127.0.0.1:1", "chat", 3)
    assert hub.distributed


def test_without_the_nats_package_the_backend_asks_for_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "nats", None)
    monkeypatch.delitem(sys.modules, "bocadillo.realtime.backends.nats")
    monkeypatch.delitem(sys.modules, "bocadillo.realtime.backends._nats_history")
    with pytest.raises(MissingDependency, match=r"pip install 'bocadillo\[nats\]'"):
        backend_from_url("nats://127.0.0.1:1")


async def test_a_hub_stops_promptly_while_nats_is_down(make_hub, nats_server):
    hub = await make_hub(reconnect_wait=0.05)
    HubClient(hub, "a1")
    await settled(hub)
    nats_server.stop(kill=True)
    await eventually(lambda: not hub.backend.connected)
    hub.broadcast("lost")
    loop = asyncio.get_running_loop()
    started = loop.time()
    await hub.shutdown(timeout=1.0)
    assert (
        loop.time() - started < 5.0
    )  # a bound for a busy machine: no request waits out its timeout
    assert hub.backend.stats()["publish_failed"] == 1


async def test_a_history_stream_deleted_by_hand_is_made_again_with_a_new_epoch(
    make_node, nats_server
):
    import nats

    node = await make_node()
    got: list[tuple[int, str, bytes]] = []
    node.backend.publication_sink = lambda *publication: got.append(publication)
    node.backend.subscribe("news")  # the room's publications reach this node
    await node.backend.wait_subscribed(["news"])
    node.backend.publish_history("news", b"1", 10, 60)
    await eventually(lambda: len(got) == 1)
    backend = node.backend
    assert isinstance(backend, NatsBackend)
    raw = await nats.connect(nats_server.url)
    try:
        await raw.jetstream().delete_stream(f"{backend.prefix}_history_10_60000")
    finally:
        await raw.close()
    node.backend.publish_history("news", b"2", 10, 60)
    await eventually(lambda: len(got) == 2)
    assert got[1][0] == 1 and got[1][1] != got[0][1]
    assert await node.backend.read_history("news", 0, 60, 10) == (
        got[1][1],
        1,
        [(1, pytest.approx(time.time(), abs=5), b"2")],
    )


async def test_publications_jetstream_refuses_are_counted_and_logged(
    make_node, nats_server, caplog
):
    import nats

    caplog.set_level(logging.WARNING, logger="bocadillo.hub.nats")
    node = await make_node()
    backend = node.backend
    assert isinstance(backend, NatsBackend)
    raw = await nats.connect(nats_server.url)
    try:  # another stream holds the subjects of the rooms' history
        await raw.jetstream().add_stream(name="squatter", subjects=[f"{backend.prefix}.hist.>"])
    finally:
        await raw.close()
    backend.publish_history("news", b"lost", 10, 60)
    backend.publish_history("news", b"lost too", 10, 60)
    await settled(backend)
    assert backend.stats()["publish_failed"] == 2
    assert "JetStream refused publications to a room with history" in caplog.text
    with pytest.raises(BackendUnavailable):
        await backend.read_history("news", 0, 60, 10)


# Per-room traffic -----------------------------------------------------------------------------


async def test_the_last_member_leaving_unsubscribes_the_process(make_hub):
    first, second = await make_hub(), await make_hub()
    HubClient(first, "a1")
    b1, b2 = HubClient(second, "b1"), HubClient(second, "b2")
    second.join("b1", "lobby")
    second.join("b2", "lobby")
    await second.wait_subscribed(["lobby"])
    backend = second.backend
    assert isinstance(backend, NatsBackend)
    nc = backend._nc
    assert nc is not None
    subscriptions = len(nc._subs)
    assert backend.stats()["rooms_subscribed"] == 1

    second.leave("b1", "lobby")  # one member left: still subscribed
    await settled(second)
    assert backend.stats()["rooms_subscribed"] == 1
    b2.hub.unregister("b2")  # the last one ends
    await eventually(lambda: backend.stats()["rooms_subscribed"] == 0)
    await settled(second)
    assert len(nc._subs) == subscriptions - 1  # unsubscribed from the server too
    before = backend.stats()["received_frames_room"]
    first.broadcast("nobody there", room="lobby")
    first.broadcast("end")
    await eventually(lambda: b1.received[-1:] == ["end"])
    assert backend.stats()["received_frames_room"] == before
    assert b1.received == ["end"]


async def test_a_room_frame_published_once_the_room_is_subscribed_arrives(make_node):
    # The subscription is confirmed by a flush that follows it on the wire: nats-py's own
    # flush may overtake a subscription still in its buffer, and a frame published right
    # after it would be lost (it was, a few times in a hundred, on loopback).
    publisher, subscriber = await make_node(), await make_node()
    rooms = [f"room-{n}" for n in range(200)]
    for room in rooms:
        subscriber.backend.subscribe(room)
        await subscriber.backend.wait_subscribed([room])
        publisher.backend.publish(room.encode(), Route(room=room))
    await eventually(lambda: len(subscriber.delivered) == len(rooms))
    assert subscriber.delivered == [room.encode() for room in rooms]


async def test_frames_for_connections_reach_their_processes_only(make_hub):
    first, second, third = await make_hub(), await make_hub(), await make_hub()
    odd = "b2 ü/x.y"  # any id: the holder's key and subject use tokens
    two = [HubClient(second, "b1"), HubClient(second, odd)]
    three = HubClient(third, "c1")
    await settled(second, third)
    before = [hub.backend.stats()["received_frames"] for hub in (first, second, third)]

    assert first.send("b1", "to b1") is True
    first.broadcast("b1 and b2", to=["b1", odd])  # one process: published once
    first.broadcast("all three", to=["c1", odd, "b1", "nobody"])  # once per process
    sent = ["to b1", "b1 and b2", "all three"]
    await eventually(lambda: three.received == ["all three"])
    await eventually(lambda: two[0].received == sent)
    await eventually(lambda: two[1].received == sent[1:])
    assert await first.disconnect(odd, 4000, "bye") is True
    await eventually(lambda: two[1].closed == (4000, "bye"))

    after = [hub.backend.stats() for hub in (first, second, third)]
    assert after[0]["received_frames"] == before[0]  # its own frames never come back
    # Each process got each frame meant for it once, on its own subject.
    assert after[1]["received_frames"] - before[1] == 4
    assert after[1]["received_frames_node"] == 4
    assert after[2]["received_frames"] - before[2] == 1
    assert after[2]["received_frames_node"] == 1


async def test_frames_of_every_route_arrive_in_the_order_they_were_published(make_hub):
    # Three subjects (the room's, the node's, everyone's), one order: nats-py would hand
    # each subscription's messages to its own task; the backend reads them as they come.
    first, second = await make_hub(), await make_hub()
    HubClient(first, "a1")
    b1 = HubClient(second, "b1")
    second.join("b1", "lobby")
    await second.wait_subscribed(["lobby"])
    await settled(first, second)
    total = 600
    for n in range(total):
        if n % 3 == 0:
            first.broadcast(n, room="lobby")
        elif n % 3 == 1:
            first.send("b1", n)
        else:
            first.broadcast(n)
    await eventually(lambda: len(b1.received) == total)
    assert b1.received == list(range(total))
    stats = second.backend.stats()
    assert (stats["received_frames_room"], stats["received_frames_node"]) == (200, 200)


async def test_nats_py_restores_the_room_subscriptions_after_a_restart(make_hub, nats_server):
    first = await make_hub(reconnect_wait=0.05)
    second = await make_hub(reconnect_wait=0.05)
    HubClient(first, "a1")
    b1 = HubClient(second, "b1")
    second.join("b1", "lobby")
    await second.wait_subscribed(["lobby"])
    backend = second.backend
    assert isinstance(backend, NatsBackend)
    client = backend._nc
    assert isinstance(client, BusClient)
    subscriptions = dict(client._subs)
    resyncs = backend.stats()["resyncs"]

    nats_server.stop(kill=True)
    await eventually(lambda: not first.backend.connected and not second.backend.connected)
    with pytest.raises(BackendUnavailable):
        await second.backend.wait_subscribed(["lobby"])
    nats_server.start()  # the same port, empty: it knows no subscription
    await eventually(lambda: first.backend.connected and second.backend.connected)

    # nats-py subscribed again by itself, to the same subscriptions, before it reported
    # the reconnection: the backend made none, and the room is confirmed at once.
    await second.backend.wait_subscribed(["lobby"])
    assert backend._nc is client and client._subs == subscriptions
    assert backend.stats()["rooms_subscribed"] == 1
    # Once the second process's presence is written back, its connection's holder can be
    # looked up again (a send to an id no process holds reaches nobody).
    await eventually(lambda: backend.stats()["resyncs"] > resyncs)
    first.broadcast("back", room="lobby")
    first.send("b1", "direct")
    first.broadcast("everyone")
    await eventually(lambda: b1.received[-1:] == ["everyone"])
    assert b1.received == ["back", "direct", "everyone"]


async def test_publish_on_every_route_is_counted_once_per_frame(make_node):
    a, b = await make_node(), await make_node()
    b.backend.connection_added("b1")
    b.backend.connection_added("b2")
    b.backend.subscribe("lobby")
    await b.backend.wait_subscribed(["lobby"])
    await settled(a.backend, b.backend)
    published = a.backend.stats()["published"]
    a.backend.publish(b"room", Route(room="lobby"))
    a.backend.publish(b"both", Route(conns=("b1", "b2")))  # one node: one message
    a.backend.publish(b"nobody", Route(conns=("nobody",)))  # no holder: no message
    a.backend.publish(b"node", Route(node=b.backend.node))
    a.backend.publish(b"end", EVERYONE)
    await b.received(b"end")
    assert b.delivered == [b"room", b"both", b"node", b"end"]
    await settled(a.backend)
    assert a.backend.stats()["published"] - published == 5


async def test_a_flush_given_up_leaves_the_connection_up(make_node):
    # A flush cancelled (the writer is, when the backend stops) or timed out leaves its
    # future to nats-py, which would fail to resolve it when the PONG comes back.
    node = await make_node()
    backend = node.backend
    assert isinstance(backend, NatsBackend)
    client = backend._nc
    assert client is not None
    flush = asyncio.ensure_future(client.flush(timeout=5))
    await asyncio.sleep(0)  # its PING is on its way
    flush.cancel()
    await client.flush(timeout=5)  # a round trip after the first one's PONG
    assert client.is_connected and backend.connected
    assert backend.stats()["reconnects"] == 0


async def test_the_holder_of_a_connection_is_looked_up_once(make_hub):
    first, second = await make_hub(), await make_hub()
    b1 = HubClient(second, "b1")
    await settled(second)
    first.send("nobody", "lost")  # no holder: looked up again next time
    for n in range(3):
        first.send("b1", n)
    first.broadcast("to", to=["b1", "nobody"])
    await eventually(lambda: b1.received == [0, 1, 2, "to"])
    await settled(first)
    first.send("nobody", "lost")
    await settled(first)
    assert first.backend.stats()["holder_lookups"] == 3  # nobody, b1, nobody


async def test_stopping_writes_what_was_queued_and_counts_nothing_lost(make_node):
    publisher, receiver = await make_node(), await make_node()
    receiver.backend.subscribe("lobby")
    await receiver.backend.wait_subscribed(["lobby"])
    for n in range(3000):
        publisher.backend.publish(str(n).encode(), Route(room="lobby"))
    # Stopped while the writer waits for the server's acknowledgement of a batch.
    await eventually(lambda: publisher.backend.stats()["published"] >= 1000)
    await publisher.stop()
    assert publisher.backend.stats()["publish_failed"] == 0
    await eventually(lambda: len(receiver.delivered) == 3000)
    assert receiver.delivered == [str(n).encode() for n in range(3000)]


async def test_what_waits_in_the_client_buffer_when_the_connection_drops_is_not_sent_late(
    make_hub, nats_server
):
    import nats

    hub = await make_hub(reconnect_wait=1.0)
    backend = hub.backend
    assert isinstance(backend, NatsBackend)
    client = backend._nc
    assert client is not None
    # A frame nats-py's flusher has not written yet when the server goes away.
    late = b"PUB late 4\r\nlate\r\n"
    client._pending.append(late)
    client._pending_data_size += len(late)
    nats_server.stop(kill=True)
    await eventually(lambda: not backend.connected)
    nats_server.start()
    got: list[bytes] = []

    async def collect(msg: Any) -> None:
        got.append(msg.data)

    watcher = await nats.connect(nats_server.url)
    try:
        await watcher.subscribe("late", cb=collect)
        await watcher.flush()
        await eventually(lambda: backend.connected)
        await client.flush(timeout=5)  # behind anything written after the reconnection
        await watcher.publish("late", b"check")
        await watcher.flush()
        await eventually(lambda: got[-1:] == [b"check"])
    finally:
        await watcher.close()
    assert got == [b"check"]  # the frame counted as lost never arrived
