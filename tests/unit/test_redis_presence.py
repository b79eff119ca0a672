"""``_redis_presence.py``: the commands of each change, and the rewrite after failures,
run on a model of Redis's sets and hashes (no Redis, no event loop).

The model applies the commands the way Redis does; a failed write applies any subset of
its commands (a pipeline cut short, or on a cluster the masters that ran their share),
and the rewrite must then leave exactly the mirror, whatever ran.
"""

from __future__ import annotations

import random
from typing import Any

import pytest

from bocadillo.realtime.backends._redis_layout import Layout
from bocadillo.realtime.backends._redis_presence import Change, Command, Presence, removal

LAYOUT = Layout("t", 4)
NODE = "n1"
OTHER = "n2"


class Model:
    """Redis's keys as Python sets, hashes and one sorted set (scores ignored)."""

    def __init__(self) -> None:
        self.keys: dict[str, Any] = {}

    def run(self, commands: list[Command]) -> None:
        for command in commands:
            self.apply(command)

    def apply(self, command: Command) -> None:
        name, key, *args = command
        assert isinstance(name, str) and isinstance(key, str)
        if name == "SADD" or name == "ZADD":
            members = args if name == "SADD" else args[1::2]
            self.keys.setdefault(key, set()).update(members)
        elif name == "SREM" or name == "ZREM":
            found = self.keys.get(key, set())
            found.difference_update(args)
            if not found:
                self.keys.pop(key, None)
        elif name == "HSET":
            self.keys.setdefault(key, {}).update(zip(args[::2], args[1::2], strict=True))
        elif name == "HDEL":
            fields = self.keys.get(key, {})
            for field in args:
                fields.pop(field, None)
            if not fields:
                self.keys.pop(key, None)
        elif name == "DEL":
            self.keys.pop(key, None)
        else:
            raise AssertionError(f"unexpected command {command!r}")

    def indexed(self, node: str) -> dict[str, set[str]]:
        """What the backend reads before a rewrite: the node's connections and rooms."""
        return {
            conn_id: set(self.keys.get(LAYOUT.conn_rooms(conn_id), set()))
            for conn_id in self.keys.get(LAYOUT.node_conns(node), set())
        }


def write(model: Model, presence: Presence, change: Change | None) -> None:
    """Run the commands of ``change`` (one that changes something)."""
    assert change is not None
    model.run(presence.commands(change))


def expected(*presences: Presence) -> dict[str, Any]:
    """The keys that hold exactly ``presences``."""
    model = Model()
    for presence in presences:
        model.apply(("ZADD", LAYOUT.nodes, 1.0, presence.node))
        for conn_id, rooms in presence.local.items():
            model.run(presence.commands(("add", conn_id, None)))
            for room in rooms:
                model.run(presence.commands(("join", conn_id, room)))
            if conn_id in presence.users:
                model.run(presence.commands(("user", conn_id, presence.users[conn_id])))
    return model.keys


def test_each_change_is_written_and_removed_by_its_commands():
    presence, model = Presence(LAYOUT, NODE), Model()
    changes: list[Change | None] = [
        presence.added("c1"),
        presence.joined("c1", "lobby"),
        presence.joined("c1", "lobby"),  # already in: nothing to write
        presence.user_set("c1", b'{"name":"ann"}'),
        presence.added("c2"),
        presence.joined("c2", "lobby"),
        presence.left("c2", "lobby"),
        presence.left("c2", "lobby"),  # already out
        presence.user_set("c3", b"1"),  # no such connection
    ]
    assert changes[2] is None and changes[7] is None and changes[8] is None
    for change in changes:
        if change is not None:
            model.run(presence.commands(change))
    model.apply(("ZADD", LAYOUT.nodes, 1.0, NODE))
    assert model.keys == expected(presence)
    assert model.keys[LAYOUT.room_members("lobby")] == {"c1"}
    assert model.keys[LAYOUT.users(LAYOUT.partition("c1"))] == {"c1": b'{"name":"ann"}'}

    write(model, presence, presence.removed("c1"))
    assert model.keys == expected(presence)
    assert LAYOUT.room_members("lobby") not in model.keys


def test_the_rewrite_removes_connections_gone_while_redis_was_unreachable():
    # The ghosts of the benchmark: connections that left while the writes were lost
    # stayed in the node's connection set, so global_count() counted them forever.
    presence, model = Presence(LAYOUT, NODE), Model()
    for conn_id in ("c1", "c2", "c3"):
        write(model, presence, presence.added(conn_id))
        write(model, presence, presence.joined(conn_id, "lobby"))
    presence.removed("c1")  # unreachable: nothing sent
    presence.removed("c2")
    model.run(presence.replacement(model.indexed(NODE), 2.0))
    presence.replaced()
    assert model.keys[LAYOUT.node_conns(NODE)] == {"c3"}
    assert model.keys == expected(presence)


def test_a_membership_half_written_by_a_failed_write_is_removed():
    # The member was added to the room, not to the connection's rooms (the index), and
    # the connection left the room before the rewrite: only the doubt finds it.
    presence, model = Presence(LAYOUT, NODE), Model()
    write(model, presence, presence.added("c1"))
    join = presence.joined("c1", "lobby")
    assert join is not None
    model.apply(presence.commands(join)[0])
    presence.doubt([join])
    presence.left("c1", "lobby")
    model.run(presence.replacement(model.indexed(NODE), 2.0))
    presence.replaced()
    assert model.keys == expected(presence)


def test_a_rewrite_cut_short_is_finished_by_the_next():
    presence, model = Presence(LAYOUT, NODE), Model()
    for conn_id in ("c1", "c2"):
        write(model, presence, presence.added(conn_id))
        write(model, presence, presence.joined(conn_id, "lobby"))
    presence.removed("c1")
    commands = presence.replacement(model.indexed(NODE), 2.0)
    # Only the index removals ran (another master's share did not).
    model.run([c for c in commands if c[1] in (LAYOUT.node_conns(NODE), LAYOUT.conn_rooms("c1"))])
    presence.removed("c2")
    model.run(presence.replacement(model.indexed(NODE), 3.0))
    presence.replaced()
    assert presence.doubtful == 0
    assert model.keys == expected(presence)


def test_stopping_removes_what_the_index_and_the_doubts_name():
    presence, model = Presence(LAYOUT, NODE), Model()
    write(model, presence, presence.added("c1"))
    join = presence.joined("c1", "lobby")
    assert join is not None
    model.apply(presence.commands(join)[0])  # half-written
    presence.doubt([join])
    model.apply(("ZADD", LAYOUT.nodes, 1.0, NODE))
    model.run(removal(LAYOUT, NODE, presence.everything(model.indexed(NODE))))
    assert model.keys == {}


@pytest.mark.parametrize("seed", range(40))
def test_whatever_failed_writes_ran_the_rewrite_leaves_exactly_the_mirror(seed):
    rng = random.Random(seed)
    presence, other, model = Presence(LAYOUT, NODE), Presence(LAYOUT, OTHER), Model()
    # Another node's presence, which nothing here may touch.
    model.apply(("ZADD", LAYOUT.nodes, 1.0, OTHER))
    for conn_id in ("o1", "o2"):
        write(model, other, other.added(conn_id))
        write(model, other, other.joined(conn_id, "lobby"))
    model.apply(("ZADD", LAYOUT.nodes, 1.0, NODE))
    rooms = ["lobby", "r1", "r2"]
    serial = 0
    up, batch = True, []
    for _ in range(200):
        roll = rng.random()
        local = sorted(presence.local)
        change: Change | None
        if roll < 0.2 or not local:
            serial += 1
            change = presence.added(f"c{serial}")
        elif roll < 0.3:
            change = presence.removed(rng.choice(local))
        elif roll < 0.55:
            change = presence.joined(rng.choice(local), rng.choice(rooms))
        elif roll < 0.75:
            change = presence.left(rng.choice(local), rng.choice(rooms))
        else:
            user = None if rng.random() < 0.4 else f'"u{rng.randrange(9)}"'.encode()
            change = presence.user_set(rng.choice(local), user)
        if change is not None and up:
            batch.append(change)
        if rng.random() < 0.15:  # the writer sends what is queued
            commands = [c for change in batch for c in presence.commands(change)]
            if rng.random() < 0.3:  # not acknowledged: any part of it ran
                model.run([c for c in commands if rng.random() < 0.5])
                presence.doubt(batch)
                up = False
            else:
                model.run(commands)
            batch = []
        if not up and rng.random() < 0.3:  # reconnected: the rewrite
            commands = presence.replacement(model.indexed(NODE), 2.0)
            if rng.random() < 0.3:  # cut short too
                model.run([c for c in commands if rng.random() < 0.5])
            else:
                model.run(commands)
                presence.replaced()
                up = True
                assert model.keys == expected(other, presence)
    commands = presence.replacement(model.indexed(NODE), 2.0)
    model.run([c for change in batch for c in presence.commands(change)] + commands)
    presence.replaced()
    assert model.keys == expected(other, presence)


@pytest.mark.parametrize("seed", range(20))
def test_a_process_killed_mid_write_is_removed_entirely(seed):
    # Whatever part of its writes a dying process got through (on one connection: the
    # first ones, in order), its index lists everything it has in Redis, so its removal
    # by the others (after its heartbeat expired) leaves nothing behind.
    rng = random.Random(seed)
    presence = Presence(LAYOUT, NODE)
    commands: list[Command] = []
    for serial in range(30):
        local = sorted(presence.local)
        roll = rng.random()
        change: Change | None
        if roll < 0.3 or not local:
            change = presence.added(f"c{serial}")
        elif roll < 0.45:
            change = presence.removed(rng.choice(local))
        elif roll < 0.75:
            change = presence.joined(rng.choice(local), rng.choice(["lobby", "r1"]))
        elif roll < 0.9:
            change = presence.left(rng.choice(local), rng.choice(["lobby", "r1"]))
        else:
            change = presence.user_set(rng.choice(local), b'"u"')
        if change is not None:
            commands += presence.commands(change)
    for cut in range(len(commands) + 1):
        model = Model()
        model.apply(("ZADD", LAYOUT.nodes, 1.0, NODE))
        model.run(commands[:cut])
        model.run(removal(LAYOUT, NODE, model.indexed(NODE)))
        assert model.keys == {}, f"after {cut} commands"
