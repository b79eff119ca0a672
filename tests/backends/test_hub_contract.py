"""One hub on each backend: what a process does with its own connections is the same
whichever backend joins it to the others (delivery, rooms, the shared queries, drops).

The hubs run without an app; connections are registered directly (``HubClient``). What
crosses processes (several hubs on one Redis) is in ``test_redis.py``.
"""

from __future__ import annotations

import pytest

from bocadillo.realtime.history import RoomOptions, RoomRules
from bocadillo.realtime.hub import HubLimits
from tests.backends.support import settled
from tests.hub_client import HubClient
from tests.live import eventually

pytestmark = pytest.mark.anyio


async def test_room_broadcasts_follow_every_membership_change(make_hub):
    hub = await make_hub()
    a, b, c, d = (HubClient(hub, name, codec="text") for name in "abcd")
    for conn in (a, b, c):
        hub.join(conn.id, "lobby")
    assert hub.broadcast("1", room="lobby") == 3
    assert hub.broadcast("2", room="lobby") == 3  # the same room again, unchanged
    assert hub.broadcast("x", room="lobby", exclude=["a", "c"]) == 1  # the kept list, less two
    hub.leave("b", "lobby")
    assert hub.broadcast("3", room="lobby") == 2
    hub.join("d", "lobby")
    hub.join("d", "lobby")  # joining twice changes nothing
    assert hub.broadcast("4", room="lobby") == 3
    hub.unregister("a")
    assert hub.broadcast("5", room="lobby") == 2
    hub.leave("c", "lobby")
    hub.leave("d", "lobby")
    assert hub.broadcast("6", room="lobby") == 0
    hub.join("b", "lobby")
    assert hub.broadcast("7", room="lobby") == 1
    assert a.texts == ["1", "2", "3", "4"]
    assert b.texts == ["1", "2", "x", "7"]
    assert c.texts == ["1", "2", "3", "4", "5"]
    assert d.texts == ["4", "5"]


async def test_hub_counts_every_message_a_slow_client_loses(make_hub):
    hub = await make_hub(limits=HubLimits(outbox_limit=2, overflow="drop_oldest"))
    slow, fast = HubClient(hub, "slow", codec="text"), HubClient(hub, "fast", codec="text")
    slow.writable.clear()
    for n in range(10):
        hub.broadcast(str(n))
    # One message in flight, two queued: the other seven were dropped, and counted.
    assert hub.counters.dropped == 7
    assert hub.stats()["dropped"] == 7
    assert fast.texts == [str(n) for n in range(10)]
    slow.writable.set()
    conn = hub.connection("slow")
    assert await conn.outbox.wait_drained(5)
    assert slow.texts == ["0", "8", "9"]
    # Counted as sent when the outbox took them; the drops are counted apart.
    assert hub.info("slow").messages_sent == 10
    assert hub.stats()["dropped"] == 7


async def test_room_to_and_exclude_select_exactly_the_chosen_connections(make_hub):
    hub = await make_hub()
    a1, a2, a3 = (HubClient(hub, name) for name in ("a1", "a2", "a3"))
    hub.join("a1", "lobby")
    hub.join("a2", "lobby")

    assert hub.broadcast("room", room="lobby") == 2
    assert hub.broadcast("chosen", to=["a2", "a3", "nobody"]) == 2
    assert hub.broadcast("all but", exclude=["a1"]) == 2
    assert hub.broadcast("room but", room="lobby", exclude=["a2"]) == 1
    assert hub.broadcast("end") == 3
    await eventually(lambda: all(c.received[-1:] == ["end"] for c in (a1, a2, a3)))
    assert a1.received == ["room", "room but", "end"]
    assert a2.received == ["room", "chosen", "all but", "end"]
    assert a3.received == ["chosen", "all but", "end"]


async def test_send_and_disconnect_by_id(make_hub):
    hub = await make_hub()
    a1 = HubClient(hub, "a1", codec="envelope")
    a2 = HubClient(hub, "a2")

    assert hub.send("a1", {"hi": 1}, type="greeting") is True
    # An id that is not here: lost with the memory backend; with a shared backend,
    # published for the process that may have it.
    assert hub.send("elsewhere", "x") is hub.distributed
    assert await hub.disconnect("a1", 4000, "bye", message="last", type="notice") is True
    await eventually(lambda: a1.closed == (4000, "bye"))
    assert a1.received == [
        {"type": "greeting", "data": {"hi": 1}},
        {"type": "notice", "data": "last"},
    ]
    assert a2.closed is None
    assert a2.received == []
    assert hub.ids == ["a2"]
    assert await hub.disconnect("a1", 4000) is hub.distributed


async def test_shared_queries_follow_registrations_and_rooms(make_hub):
    hub = await make_hub()
    HubClient(hub, "a1")
    HubClient(hub, "a2")
    hub.join("a1", "lobby")
    hub.join("a1", "games")
    hub.join("a2", "lobby")
    await settled(hub)
    assert await hub.connection_count() == 2
    assert await hub.room_members("lobby") == {"a1", "a2"}
    assert await hub.connection_rooms("a1") == {"lobby", "games"}

    hub.leave("a1", "games")
    hub.unregister("a2")
    await settled(hub)
    assert await hub.connection_count() == 1
    assert await hub.room_members("lobby") == {"a1"}
    assert await hub.room_members("games") == set()
    assert await hub.connection_rooms("a2") == set()


async def test_shutdown_forgets_every_connection(make_hub):
    hub = await make_hub()
    a1 = HubClient(hub, "a1")
    hub.join("a1", "lobby")
    await settled(hub)
    await hub.shutdown(timeout=1.0)
    assert a1.closed is not None
    assert hub.ids == []
    assert hub.members("lobby") == frozenset()


async def test_presence_lists_the_users_of_a_room(make_hub):
    hub = await make_hub()
    ann, bob, anon = HubClient(hub, "ann"), HubClient(hub, "bob"), HubClient(hub, "anon")
    for client, user in ((ann, {"name": "ann"}), (bob, {"name": "ann"}), (anon, None)):
        hub.join(client.id, "lobby")
        if user is not None:
            hub.set_user(client.id, user)
    await settled(hub)
    assert await hub.presence("lobby") == [
        {"id": "ann", "user": {"name": "ann"}},
        {"id": "anon", "user": None},
        {"id": "bob", "user": {"name": "ann"}},
    ]
    assert await hub.presence_stats("lobby") == {"connections": 3, "users": 2}
    hub.unregister("bob")
    await settled(hub)
    assert [m["id"] for m in await hub.presence("lobby")] == ["ann", "anon"]


async def test_room_history_positions_and_resume(make_hub):
    rules = RoomRules()
    rules.add("news*", RoomOptions(history_size=5))
    hub = await make_hub(rooms=rules)
    reader = HubClient(hub, "reader", codec="envelope")
    hub.join("reader", "news")
    await settled(hub)
    for n in range(7):
        hub.broadcast(n, type="said", room="news")
    await eventually(lambda: len(reader.received) == 7)
    position = await hub.position("news")
    assert position is not None and position.offset == 7
    assert [(m["offset"], m["data"], m["epoch"]) for m in reader.received] == [
        (n + 1, n, position.epoch) for n in range(7)
    ]
    # The last 5 are kept.
    assert [(p.offset, p.data) for p in await hub.history("news")] == [
        (n + 1, n) for n in range(2, 7)
    ]
    assert [p.offset for p in await hub.history("news", 5)] == [6, 7]
    assert await hub.position("lobby") is None  # no history there

    back = HubClient(hub, "back", codec="envelope")
    recoveries = await hub.resume("back", {"news": (position.epoch, 4), "lobby": None})
    assert recoveries["lobby"] is None
    news = recoveries["news"]
    assert news is not None and news.recovered and news.position == position
    await eventually(lambda: len(back.received) == 3)
    assert [m["offset"] for m in back.received] == [5, 6, 7]
    await settled(hub)
    assert await hub.room_members("lobby") == {"back"}  # joined, though it keeps no history
    # A gap longer than the history, or another epoch: nothing recovered.
    for stale in ((position.epoch, 1), ("another", 3)):
        missed = (await hub.resume("back", {"news": stale}))["news"]
        assert missed is not None and not missed.recovered and missed.position == position
