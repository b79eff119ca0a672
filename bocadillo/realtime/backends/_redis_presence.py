"""A process's presence as the Redis backends write it. PURE: no I/O.

``Presence`` keeps the mirror of this process's (node's) own connections, with their
rooms and users. Each change the hub reports becomes a *change* (a small tuple that the
writer queues) and, when the writer sends it, the Redis commands of ``commands``. The
keys are those of ``_redis_layout.py``; the node's connection set and each connection's
set of rooms are the node's *index* of what it wrote.

A write that Redis did not acknowledge (a timeout, a dropped connection, a master
failing over) may have run entirely, in part or not at all: a pipeline cut short runs
the commands Redis had read, and on a cluster each master runs its share or not. So the
connections and memberships of such a write are *doubtful* (``doubt``), and the index
may not list everything Redis holds. After a failure the backend reads the index and
writes ``replacement``: what the mirror holds, and the removal of every connection and
membership that the index or the doubtful writes name and the mirror lacks. Until it
succeeds, everything it touches is doubtful in turn (``replaced`` clears that), so a
replacement cut short is finished by the next one. Redis then holds exactly the mirror,
whatever the failed writes did, provided none of them runs later: the backend closes
its earlier connections first (``redis.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from ._redis_layout import Layout

__all__ = ["Change", "Command", "Presence", "removal"]

#: A change of the presence, queued for the writer: ``(kind, conn_id, argument)``, kind
#: being ``add`` (argument ``None``), ``remove`` (``(its rooms, whether it had a user)``),
#: ``join`` or ``leave`` (the room), ``user`` (the JSON user, ``None`` to forget it).
Change = tuple[str, str, Any]
#: A Redis command, e.g. ``("SADD", key, member)``.
Command = tuple[str | bytes | float, ...]


class Presence:
    """The mirror of one node's presence, and the commands that write it.

    Args:
        layout: The names of the keys.
        node: The node's id.

    Attributes:
        local: Connection id -> rooms, for the connections of this node.
        users: Connection id -> JSON user, for those that set one.
    """

    __slots__ = ("_doubtful", "_doubtful_rooms", "layout", "local", "node", "users")

    def __init__(self, layout: Layout, node: str) -> None:
        self.layout = layout
        self.node = node
        self.local: dict[str, set[str]] = {}
        self.users: dict[str, bytes] = {}
        # Connections, and (connection, room) memberships, that Redis may hold otherwise
        # than the mirror says (see the module docstring).
        self._doubtful: set[str] = set()
        self._doubtful_rooms: set[tuple[str, str]] = set()

    # The hub's changes: each returns the change to queue, or None ----------------------

    def added(self, conn_id: str) -> Change:
        self.local[conn_id] = set()
        return ("add", conn_id, None)

    def removed(self, conn_id: str) -> Change:
        rooms = self.local.pop(conn_id, ())
        had_user = self.users.pop(conn_id, None) is not None
        return ("remove", conn_id, (tuple(rooms), had_user))

    def user_set(self, conn_id: str, user: bytes | None) -> Change | None:
        if conn_id not in self.local:
            return None
        if user is None:
            if self.users.pop(conn_id, None) is None:
                return None
        else:
            self.users[conn_id] = user
        return ("user", conn_id, user)

    def joined(self, conn_id: str, room: str) -> Change | None:
        rooms = self.local.get(conn_id)
        if rooms is None or room in rooms:
            return None
        rooms.add(room)
        return ("join", conn_id, room)

    def left(self, conn_id: str, room: str) -> Change | None:
        rooms = self.local.get(conn_id)
        if rooms is None or room not in rooms:
            return None
        rooms.discard(room)
        return ("leave", conn_id, room)

    def clear(self) -> None:
        """Forget everything (the backend stopped)."""
        self.local.clear()
        self.users.clear()
        self._doubtful.clear()
        self._doubtful_rooms.clear()

    # Writing ---------------------------------------------------------------------------

    def commands(self, change: Change) -> list[Command]:
        """The Redis commands that write ``change``: the index is written first and
        erased last, so that whatever part of them runs (a pipeline cut short by a
        dying process), the index lists all that the node has in Redis, and the removal
        of a dead node (``removal``) leaves nothing behind on plain Redis."""
        kind, conn_id, argument = change
        layout = self.layout
        if kind == "join":
            return [
                ("SADD", layout.conn_rooms(conn_id), argument),
                ("SADD", layout.room_members(argument), conn_id),
            ]
        if kind == "leave":
            return [
                ("SREM", layout.room_members(argument), conn_id),
                ("SREM", layout.conn_rooms(conn_id), argument),
            ]
        partition = layout.partition(conn_id)
        if kind == "add":
            return [
                ("SADD", layout.node_conns(self.node), conn_id),
                ("HSET", layout.conns(partition), conn_id, self.node),
            ]
        if kind == "user":
            if argument is None:
                return [("HDEL", layout.users(partition), conn_id)]
            return [("HSET", layout.users(partition), conn_id, argument)]
        rooms, had_user = argument
        commands: list[Command] = [("SREM", layout.room_members(r), conn_id) for r in rooms]
        commands.append(("HDEL", layout.conns(partition), conn_id))
        if had_user:
            commands.append(("HDEL", layout.users(partition), conn_id))
        commands.append(("DEL", layout.conn_rooms(conn_id)))
        commands.append(("SREM", layout.node_conns(self.node), conn_id))
        return commands

    def doubt(self, changes: Iterable[Change]) -> None:
        """``changes`` were sent but not acknowledged: Redis may have run them, in part
        or not at all."""
        for kind, conn_id, argument in changes:
            if kind == "join" or kind == "leave":
                self._doubtful_rooms.add((conn_id, argument))
                continue
            self._doubtful.add(conn_id)
            if kind == "remove":
                self._doubtful_rooms.update((conn_id, room) for room in argument[0])

    @property
    def doubtful(self) -> int:
        """How many connections and memberships are doubtful."""
        return len(self._doubtful) + len(self._doubtful_rooms)

    def replacement(self, indexed: dict[str, set[str]], now: float) -> list[Command]:
        """The commands that make Redis hold exactly the mirror, given what the node's
        index lists (connection id -> rooms), and that beat the node's heartbeat at
        ``now``. Everything they touch is doubtful until ``replaced`` is called.

        Written as one transaction on plain Redis; on a cluster, in the order of the
        list for each master: additions before removals.
        """
        layout, node, local = self.layout, self.node, self.local
        conns = self._doubtful.union(indexed)
        memberships = self._doubtful_rooms.union(
            (conn_id, room) for conn_id, rooms in indexed.items() for room in rooms
        )
        gone = [conn_id for conn_id in conns if conn_id not in local]
        left: dict[str, list[str]] = {}
        for conn_id, room in memberships:
            if room not in local.get(conn_id, ()):
                left.setdefault(room, []).append(conn_id)
        # Cut short, this may leave any of it half-written.
        self._doubtful = conns.union(local)
        self._doubtful_rooms = memberships.union(
            (conn_id, room) for conn_id, rooms in local.items() for room in rooms
        )

        commands: list[Command] = [("ZADD", layout.nodes, now, node)]
        # What the mirror holds.
        members: dict[str, list[str]] = {}
        for conn_id, rooms in local.items():
            if rooms:
                commands.append(("SADD", layout.conn_rooms(conn_id), *rooms))
            for room in rooms:
                members.setdefault(room, []).append(conn_id)
        for room, conn_ids in members.items():
            commands.append(("SADD", layout.room_members(room), *conn_ids))
        if local:
            commands.append(("SADD", layout.node_conns(node), *local))
        for partition, conn_ids in _by_partition(layout, local).items():
            commands.append(("HSET", layout.conns(partition), *_pairs(conn_ids, node)))
        users = self.users
        for partition, conn_ids in _by_partition(layout, users).items():
            flat: list[str | bytes] = []
            for conn_id in conn_ids:
                flat += (conn_id, users[conn_id])
            commands.append(("HSET", layout.users(partition), *flat))
        # What it does not.
        for room, conn_ids in left.items():
            commands.append(("SREM", layout.room_members(room), *conn_ids))
            for conn_id in conn_ids:
                if conn_id in local:
                    commands.append(("SREM", layout.conn_rooms(conn_id), room))
        for conn_id in gone:
            commands.append(("DEL", layout.conn_rooms(conn_id)))
        for partition, conn_ids in _by_partition(layout, gone).items():
            commands.append(("HDEL", layout.conns(partition), *conn_ids))
        # Users: of the connections gone, and of those still here that have none now.
        unset = [conn_id for conn_id in conns if conn_id not in users]
        for partition, conn_ids in _by_partition(layout, unset).items():
            commands.append(("HDEL", layout.users(partition), *conn_ids))
        if gone:
            commands.append(("SREM", layout.node_conns(node), *gone))
        return commands

    def replaced(self) -> None:
        """The commands of the last ``replacement`` were all acknowledged."""
        self._doubtful.clear()
        self._doubtful_rooms.clear()

    def everything(self, indexed: dict[str, set[str]]) -> dict[str, set[str]]:
        """Every connection, with its rooms, that Redis may hold for this node: those
        ``indexed``, the mirror's and the doubtful ones (for ``removal`` when the node
        stops)."""
        found = {conn_id: set(rooms) for conn_id, rooms in indexed.items()}
        for conn_id, rooms in self.local.items():
            found.setdefault(conn_id, set()).update(rooms)
        for conn_id in self._doubtful:
            found.setdefault(conn_id, set())
        for conn_id, room in self._doubtful_rooms:
            found.setdefault(conn_id, set()).add(room)
        return found


def removal(layout: Layout, node: str, presence: dict[str, set[str]]) -> list[Command]:
    """The commands that remove ``node`` and ``presence`` (connection id -> rooms)."""
    commands: list[Command] = []
    for conn_id, rooms in presence.items():
        for room in rooms:
            commands.append(("SREM", layout.room_members(room), conn_id))
        commands.append(("DEL", layout.conn_rooms(conn_id)))
    for partition, conn_ids in _by_partition(layout, presence).items():
        commands.append(("HDEL", layout.conns(partition), *conn_ids))
        commands.append(("HDEL", layout.users(partition), *conn_ids))
    commands.append(("DEL", layout.node_conns(node)))
    commands.append(("ZREM", layout.nodes, node))
    return commands


def _by_partition(layout: Layout, conn_ids: Iterable[str]) -> dict[int, list[str]]:
    """``conn_ids`` grouped by partition."""
    groups: dict[int, list[str]] = {}
    partition = layout.partition
    for conn_id in conn_ids:
        groups.setdefault(partition(conn_id), []).append(conn_id)
    return groups


def _pairs(conn_ids: list[str], node: str) -> list[str]:
    """``conn_id, node, conn_id, node...`` for an ``HSET`` of a partition's ``conns``."""
    flat: list[str] = []
    for conn_id in conn_ids:
        flat += (conn_id, node)
    return flat
