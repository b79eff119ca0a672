"""The ``HubBackend`` contract (``bocadillo/realtime/backends/base.py``), used directly,
for every backend: presence (connections, rooms, the queries), publishing, stats and stop.

Every test runs once per backend (``backend_url`` in ``conftest.py``). A ``local_only``
backend declares that there are no other processes: what it publishes reaches nobody. A
``routed`` backend carries a frame to the processes its route names only; the others
carry every frame to every process, which is correct too (each hub ignores what concerns
none of its connections): for them, the tests check that every process that needs a
frame gets it.
"""

from __future__ import annotations

import pytest

from bocadillo.errors import InvalidArgument
from bocadillo.realtime.backends import EVERYONE, HubBackend, Route
from tests.backends.support import Node, settled

pytestmark = pytest.mark.anyio


async def test_presence_follows_connections_and_rooms(make_node):
    node = await make_node()
    backend = node.backend
    for conn_id in ("a", "b", "c"):
        backend.connection_added(conn_id)
    backend.room_joined("a", "lobby")
    backend.room_joined("a", "games")
    backend.room_joined("b", "lobby")
    await settled(backend)

    assert await backend.connection_count() == 3
    assert await backend.room_members("lobby") == {"a", "b"}
    assert await backend.room_members("games") == {"a"}
    assert await backend.room_members("nowhere") == set()
    assert await backend.rooms_of("a") == {"lobby", "games"}
    assert await backend.rooms_of("c") == set()
    assert await backend.rooms_of("unknown") == set()

    backend.room_left("a", "games")
    backend.connection_removed("b")
    await settled(backend)
    assert await backend.connection_count() == 2
    assert await backend.room_members("lobby") == {"a"}
    assert await backend.room_members("games") == set()
    assert await backend.rooms_of("a") == {"lobby"}
    assert await backend.rooms_of("b") == set()

    # Removing a connection takes it out of every room it was in.
    backend.connection_removed("a")
    await settled(backend)
    assert await backend.connection_count() == 1
    assert await backend.room_members("lobby") == set()
    assert await backend.rooms_of("a") == set()


async def test_repeated_and_unmatched_changes_change_nothing(make_node):
    node = await make_node()
    backend = node.backend
    backend.connection_added("a")
    backend.room_joined("a", "lobby")
    backend.room_joined("a", "lobby")  # joined twice
    backend.room_left("a", "never-joined")
    backend.connection_removed("unknown")
    await settled(backend)
    assert await backend.connection_count() == 1
    assert await backend.room_members("lobby") == {"a"}
    assert await backend.rooms_of("a") == {"lobby"}

    backend.room_left("a", "lobby")
    backend.room_left("a", "lobby")  # left twice
    await settled(backend)
    assert await backend.room_members("lobby") == set()
    assert await backend.rooms_of("a") == set()


async def test_query_results_are_the_callers_to_change(make_node):
    node = await make_node()
    backend = node.backend
    backend.connection_added("a")
    backend.room_joined("a", "lobby")
    await settled(backend)

    members = await backend.room_members("lobby")
    members.add("intruder")
    rooms = await backend.rooms_of("a")
    rooms.add("elsewhere")
    assert await backend.room_members("lobby") == {"a"}
    assert await backend.rooms_of("a") == {"lobby"}


async def test_a_frame_reaches_every_other_node_once_and_never_its_publisher(make_node):
    a, b, c = await make_node(), await make_node(), await make_node()

    assert a.backend.publish(b"f1", EVERYONE) is None  # enqueues, never waits
    a.backend.publish(b"f2", EVERYONE)
    await settled(a.backend)
    c.backend.publish(b"g1", EVERYONE)
    await settled(c.backend)
    # The last frame, from b: once a and c have it, everything published before it
    # has arrived, so their lists are complete.
    b.backend.publish(b"end", EVERYONE)
    await settled(b.backend)

    if a.backend.local_only:
        # No other process: publishing reaches nobody, synchronously.
        assert (a.delivered, b.delivered, c.delivered) == ([], [], [])
        return
    await a.received(b"end")
    await c.received(b"end")
    assert a.delivered == [b"g1", b"end"]
    assert c.delivered == [b"f1", b"f2", b"end"]
    assert b.delivered[:3] == [b"f1", b"f2", b"g1"]


async def test_stop_forgets_the_presence_of_its_node(make_node):
    node = await make_node()
    # Another node of the same app watches; a local-only backend has no other node, so
    # its own view is what it forgets.
    observer = node if node.backend.local_only else await make_node()
    node.backend.connection_added("a")
    node.backend.room_joined("a", "lobby")
    await settled(node.backend)
    assert await observer.backend.connection_count() == 1

    await node.stop()
    assert await observer.backend.connection_count() == 0
    assert await observer.backend.room_members("lobby") == set()
    assert await observer.backend.rooms_of("a") == set()


async def test_stats_are_integer_counters(make_node):
    node = await make_node()
    node.backend.connection_added("a")
    node.backend.publish(b"frame", EVERYONE)
    await settled(node.backend)
    stats = node.backend.stats()
    assert isinstance(stats, dict)
    assert all(isinstance(name, str) and type(value) is int for name, value in stats.items())


async def _finish(publisher: Node, *nodes: Node) -> None:
    """Publish a last frame for everyone from ``publisher`` and wait until ``nodes`` have
    it: a node's frames reach another in the order they were published, so everything
    ``publisher`` published before it has arrived. (On a Redis Cluster, frames of
    different routes go through different masters, and keep their order only once the
    earlier ones are acknowledged: ``end`` is published after that.)"""
    await settled(publisher.backend)
    publisher.backend.publish(b"end", EVERYONE)
    await settled(publisher.backend)
    for node in nodes:
        await node.received(b"end")


def _check(node: Node, needed: list[bytes], publisher: HubBackend) -> None:
    """``node`` got exactly ``needed`` (then ``end``) from a routed backend, in that order
    if it is ``ordered`` (else in any order: order holds per route only); from the
    others, at least ``needed``, in order, among the rest."""
    if publisher.routed:
        assert node.delivered[-1:] == [b"end"]
        if publisher.ordered:
            assert node.delivered[:-1] == needed
        else:
            assert sorted(node.delivered[:-1]) == sorted(needed)
    else:
        assert [frame for frame in node.delivered if frame in needed] == needed


async def test_a_room_frame_reaches_the_nodes_subscribed_to_the_room(make_node):
    a, b, c = await make_node(), await make_node(), await make_node()
    b.backend.subscribe("lobby")
    c.backend.subscribe("games")
    c.backend.subscribe("games")  # twice: still one subscription
    await b.backend.wait_subscribed(["lobby"])
    await c.backend.wait_subscribed(["games", "elsewhere"])  # not subscribed: no wait

    a.backend.publish(b"lobby-1", Route(room="lobby"))
    a.backend.publish(b"games-1", Route(room="games"))
    a.backend.publish(b"nobody's", Route(room="empty"))
    if a.backend.local_only:
        await _finish(a)
        assert (b.delivered, c.delivered) == ([], [])
        return
    await _finish(a, b, c)
    _check(b, [b"lobby-1"], a.backend)
    _check(c, [b"games-1"], a.backend)
    routed = a.backend.routed
    assert b"nobody's" not in a.delivered + (b.delivered + c.delivered if routed else [])


async def test_a_frame_for_connections_reaches_the_nodes_holding_them(make_node):
    a, b, c = await make_node(), await make_node(), await make_node()
    b.backend.connection_added("b1")
    b.backend.connection_added("b2")
    c.backend.connection_added("c1")
    await settled(b.backend, c.backend)

    a.backend.publish(b"to-b1", Route(conns=("b1",)))
    a.backend.publish(b"to-b1-b2", Route(conns=("b1", "b2")))  # once for the node
    a.backend.publish(b"to-all-three", Route(conns=("c1", "b2", "b1", "gone")))
    a.backend.publish(b"to-none", Route(conns=("gone",)))
    a.backend.publish(b"to-b", Route(node=b.backend.node))
    if a.backend.local_only:
        await _finish(a)
        assert (b.delivered, c.delivered) == ([], [])
        return
    await _finish(a, b, c)
    _check(b, [b"to-b1", b"to-b1-b2", b"to-all-three", b"to-b"], a.backend)
    _check(c, [b"to-all-three"], a.backend)


def test_a_route_names_one_kind_of_target():
    assert EVERYONE == Route()
    with pytest.raises(InvalidArgument, match="one of them"):
        Route(room="lobby", conns=("a",))
