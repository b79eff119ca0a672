"""The room-history part of the ``HubBackend`` contract (``publish_history``,
``read_history``, ``publication_sink``), used directly, for every backend that keeps
history for every process: Redis and NATS. A node gets a room's publications once it has
subscribed to the room (``subscribe``, ``wait_subscribed``), as a hub does when its first
connection joins.

Each test runs once per such backend (``backend_url`` below overrides ``conftest.py``'s:
the memory backend keeps no history of its own, the hub does), and on Valkey too (the
``broker`` fixture parametrized here). Several nodes of one app share one server, as
worker processes do.
"""

from __future__ import annotations

import asyncio
import time

import pytest

from bocadillo.errors import BackendUnavailable
from tests.backends.support import Node, settled
from tests.live import eventually
from tests.nats_server import NatsServer
from tests.redis_server import RedisServer

pytestmark = [
    pytest.mark.anyio,
    # The ``broker`` fixture's servers (tests/conftest.py), with Valkey between.
    pytest.mark.parametrize(
        "broker",
        [
            pytest.param("redis", marks=pytest.mark.redis),
            pytest.param("valkey", marks=pytest.mark.valkey),
            pytest.param("nats", marks=pytest.mark.nats),
        ],
        indirect=True,
    ),
]

#: A ``since`` after every real offset: the read gives the position only.
BEYOND = 2**53


@pytest.fixture
def backend_url(broker: RedisServer | NatsServer) -> str:
    return broker.url


class Publications:
    """What a node's ``publication_sink`` got: ``(offset, epoch, frame)`` in order."""

    def __init__(self, node: Node) -> None:
        self.got: list[tuple[int, str, bytes]] = []
        node.backend.publication_sink = lambda offset, epoch, frame: self.got.append(
            (offset, epoch, frame)
        )

    async def count(self, n: int) -> None:
        await eventually(lambda: len(self.got) >= n, what=f"{n} publications delivered")
        assert len(self.got) == n, self.got


async def history_nodes(make_node, n: int, *rooms: str) -> list[tuple[Node, Publications]]:
    """``n`` nodes, each subscribed to ``rooms``, with what their sinks get."""
    nodes = [await make_node() for _ in range(n)]
    for node in nodes:
        for room in rooms:
            node.backend.subscribe(room)
        await node.backend.wait_subscribed(rooms)
    return [(node, Publications(node)) for node in nodes]


async def test_publications_get_consecutive_offsets_and_one_order_on_every_node(make_node):
    (a, a_got), (b, b_got), (_, c_got) = await history_nodes(make_node, 3, "news")
    # Two nodes publish to one room at once: one order, the publishers included.
    for n in range(60):
        a.backend.publish_history("news", b"a%d" % n, 1000, 60)
        b.backend.publish_history("news", b"b%d" % n, 1000, 60)
    await settled(a.backend, b.backend)
    for got in (a_got, b_got, c_got):
        await got.count(120)
    assert a_got.got == b_got.got == c_got.got
    offsets = [offset for offset, _, _ in a_got.got]
    assert offsets == list(range(1, 121))
    assert len({epoch for _, epoch, _ in a_got.got}) == 1
    frames = [frame for _, _, frame in a_got.got]
    # Each publisher's own publications keep its order.
    assert [f for f in frames if f.startswith(b"a")] == [b"a%d" % n for n in range(60)]
    assert [f for f in frames if f.startswith(b"b")] == [b"b%d" % n for n in range(60)]
    assert a.backend.stats()["published"] == b.backend.stats()["published"] == 60

    epoch, last, entries = await last_twenty(a, "news")
    assert (epoch, last) == (a_got.got[0][1], 120)
    assert [(o, f) for o, _, f in entries] == [(o, f) for o, _, f in a_got.got[-20:]]


async def last_twenty(node: Node, room: str) -> tuple[str, int, list[tuple[int, float, bytes]]]:
    """The last 20 publications of a room of size 1,000 and TTL 60 s."""
    epoch, last, entries = await node.backend.read_history(room, 100, 60, 1000)
    return epoch, last, entries


@pytest.mark.parametrize(
    ("size", "since"),
    # Gaps short and long (NATS reads them two ways), within and beyond what is kept.
    [(40, 0), (40, 33), (40, 39), (40, 40), (40, BEYOND), (5, 0), (5, 3), (5, 12)],
)
async def test_a_read_returns_the_kept_publications_after_an_offset(make_node, size, since):
    (node, got), (reader, _) = await history_nodes(make_node, 2, "room")
    total = size + 10
    before = time.time()
    for n in range(total):
        node.backend.publish_history("room", b"%d" % n, size, 60)
    await got.count(total)
    epoch = got.got[0][1]
    read_epoch, last, entries = await reader.backend.read_history("room", since, 60, size)
    assert (read_epoch, last) == (epoch, total)
    kept = range(max(since, total - size) + 1, total + 1)
    assert [offset for offset, _, _ in entries] == list(kept)
    assert [frame for _, _, frame in entries] == [b"%d" % (o - 1) for o in kept]
    assert all(before - 1 <= stamp <= time.time() + 1 for _, stamp, _ in entries)


async def test_an_empty_room_gets_an_epoch_its_first_publication_keeps(make_node):
    (node, got), (other, _) = await history_nodes(make_node, 2, "fresh")
    epoch, last, entries = await node.backend.read_history("fresh", 0, 60, 10)
    assert (last, entries) == (0, [])
    assert await other.backend.read_history("fresh", BEYOND, 60, 10) == (epoch, 0, [])
    other.backend.publish_history("fresh", b"first", 10, 60)
    await got.count(1)
    assert got.got == [(1, epoch, b"first")]
    _, last, entries = await node.backend.read_history("fresh", 0, 60, 10)
    assert (last, [(o, f) for o, _, f in entries]) == (1, [(1, b"first")])
    assert abs(entries[0][1] - time.time()) < 5


async def test_rooms_of_any_name_and_settings_keep_separate_streams(make_node):
    odd = ["café au lait", "a.b.c", "*", ">", "=x", "with space", "ünï/cødé", "=", "plain"]
    (node, got), (reader, _) = await history_nodes(make_node, 2, *odd, "bigger")
    for n, room in enumerate(odd):
        for k in range(n + 1):
            node.backend.publish_history(room, f"{room}#{k}".encode(), 3, 60)
    node.backend.publish_history("bigger", b"x", 5, 30)
    await got.count(sum(n + 1 for n in range(len(odd))) + 1)
    for n, room in enumerate(odd):
        _, last, entries = await reader.backend.read_history(room, 0, 60, 3)
        assert last == n + 1
        assert [f for _, _, f in entries] == [
            f"{room}#{k}".encode() for k in range(max(0, n - 2), n + 1)
        ]
    assert [f for _, _, f in (await reader.backend.read_history("bigger", 0, 30, 5))[2]] == [b"x"]


async def test_a_room_idle_for_its_ttl_starts_over_with_a_new_epoch(make_node):
    (node, got), (reader, _) = await history_nodes(make_node, 2, "brief")
    node.backend.publish_history("brief", b"1", 10, 0.5)
    node.backend.publish_history("brief", b"2", 10, 0.5)
    await got.count(2)
    old = got.got[0][1]

    async def expired() -> bool:
        epoch, last, entries = await reader.backend.read_history("brief", 0, 0.5, 10)
        return epoch != old and last == 0 and entries == []

    await eventually(expired, timeout=10.0, what="the room's stream expired")
    node.backend.publish_history("brief", b"3", 10, 0.5)
    await got.count(3)
    offset, epoch, _ = got.got[2]
    assert (offset, epoch != old) == (1, True)


async def test_a_lost_stream_starts_over_with_a_new_epoch(make_node, broker):
    (node, got), _ = await history_nodes(make_node, 2, "kept")
    node.backend.publish_history("kept", b"1", 10, 60)
    await got.count(1)
    old = got.got[0][1]

    broker.stop(kill=True)  # both keep everything in memory only
    await eventually(lambda: not node.backend.stats()["connected"])
    broker.start()
    await eventually(lambda: node.backend.stats()["connected"], timeout=15.0)

    async def read() -> tuple[str, int, list[tuple[int, float, bytes]]] | None:
        try:
            return await node.backend.read_history("kept", 0, 60, 10)
        except BackendUnavailable:
            return None  # reconnected, not yet ready for queries

    found = await eventually(read, timeout=15.0)
    assert found is not None
    epoch, last, entries = found
    assert (epoch != old, last, entries) == (True, 0, [])
    node.backend.publish_history("kept", b"again", 10, 60)
    await got.count(2)
    assert got.got[1] == (1, epoch, b"again")


async def test_while_the_server_is_down_publications_are_counted_and_reads_fail(make_node, broker):
    (node, got), _ = await history_nodes(make_node, 2, "news")
    broker.stop(kill=True)
    await eventually(lambda: not node.backend.stats()["connected"])
    failed = node.backend.stats()["publish_failed"]
    node.backend.publish_history("news", b"lost", 10, 60)
    assert node.backend.stats()["publish_failed"] == failed + 1
    with pytest.raises(BackendUnavailable):
        await node.backend.read_history("news", 0, 60, 10)
    assert got.got == []


async def test_concurrent_reads_of_an_empty_room_agree_on_its_epoch(make_node):
    nodes = await history_nodes(make_node, 3)
    reads = await asyncio.gather(
        *(node.backend.read_history("race", 0, 60, 10) for node, _ in nodes for _ in range(5))
    )
    assert len({epoch for epoch, _, _ in reads}) == 1
    assert {(last, tuple(entries)) for _, last, entries in reads} == {(0, ())}


async def test_a_node_gets_the_publications_of_the_rooms_it_subscribed_to(make_node):
    (a, a_got), (b, b_got) = await history_nodes(make_node, 2, "news")
    c = await make_node()
    c_got = Publications(c)  # subscribed to nothing
    b.backend.subscribe("sports")
    await b.backend.wait_subscribed(["sports"])
    a.backend.publish_history("news", b"n1", 10, 60)
    a.backend.publish_history("sports", b"s1", 10, 60)
    a.backend.publish_history("news", b"n2", 10, 60)
    await b_got.count(3)
    if not a.backend.routed:  # every node gets every publication
        await a_got.count(3)
        await c_got.count(3)
        return
    await a_got.count(2)  # its own, in its rooms only
    assert [f for _, _, f in a_got.got] == [b"n1", b"n2"]
    # Read after b got the last one: everything a published has been handed out.
    assert c_got.got == []
