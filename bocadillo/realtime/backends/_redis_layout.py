"""Where the Redis backends keep each key and publish each frame. PURE: no I/O.

The layout is ready for Redis Cluster: rooms and connections are hashed into a fixed
number of *partitions* (``partitions``, 128 by default), and every key and channel of a
room, or of a connection, carries its partition's hash tag (``{...}``), so they all live
in one slot. The tags are chosen once (``partition_tags``) so that partition ``p``'s slot
lies in the ``p``-th of ``partitions`` even ranges of the 16,384 slots: the partitions
spread evenly over the masters of a cluster, whatever its size. A node's own keys carry
its node id as their tag. No command and no script of the backends touches keys (or
channels) of two different tags.

Every name starts with the app's ``prefix``, which therefore may not hold ``{`` or
``}``. With ``T`` the tag of a room's or a connection's partition:

===================================  ======  ===============================================
name                                 kind    what
===================================  ======  ===============================================
``<prefix>:bus``                     channel frames for every process
``<prefix>:{T}:pub:<room>``          channel frames for a room's processes (and its history
                                             publications)
``<prefix>:{T}:inbox:<node>``        channel frames for one process (each process
                                             subscribes to its inbox in every partition)
``<prefix>:nodes``                   zset    node id -> its last heartbeat
``<prefix>:{<node>}:node``           set     the connection ids of a node
``<prefix>:{T}:conns``               hash    connection id -> node id (the partition's
                                             connections)
``<prefix>:{T}:users``               hash    connection id -> the JSON ``user`` it set
``<prefix>:{T}:rooms:<conn>``        set     the rooms of a connection
``<prefix>:{T}:room:<room>``         set     the connection ids in a room
``<prefix>:{T}:hist:<room>``         stream  a room's kept publications (offsets as ids)
``<prefix>:{T}:hist:<room>:offset``  string  a room's last offset
``<prefix>:{T}:hist:<room>:epoch``   string  a room's epoch
===================================  ======  ===============================================

Every process of an app must use the same ``partitions``: it decides the names.
"""

from __future__ import annotations

import functools
import string
from binascii import crc_hqx
from itertools import product

from ...errors import ConfigurationError

__all__ = [
    "DEFAULT_PARTITIONS",
    "SLOTS",
    "Layout",
    "key_slot",
    "partition_tags",
    "slot_partition",
]

#: Redis Cluster's hash slots.
SLOTS = 16384
DEFAULT_PARTITIONS = 128
#: What partition tags are made of: nothing that needs quoting, no braces.
_TAG_ALPHABET = string.digits + string.ascii_lowercase


def key_slot(key: bytes) -> int:
    """The Redis Cluster slot of ``key``: CRC16 (XMODEM) of its hash tag (the text between
    its first ``{`` and the next ``}``, if not empty) or of the whole key, mod 16384."""
    start = key.find(b"{")
    if start != -1:
        end = key.find(b"}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return crc_hqx(key, 0) % SLOTS


def slot_partition(slot: int, partitions: int) -> int:
    """The partition whose share of the slots holds ``slot`` (even ranges, in order)."""
    return slot * partitions // SLOTS


@functools.lru_cache(maxsize=8)
def partition_tags(partitions: int) -> tuple[str, ...]:
    """For each partition, the shortest (then first) string of digits and lowercase
    letters whose slot falls in that partition's range: ``{tag}`` then hashes there.

    Deterministic: every process of an app computes the same tags.
    """
    tags: list[str | None] = [None] * partitions
    missing = partitions
    length = 1
    while missing:
        for letters in product(_TAG_ALPHABET, repeat=length):
            tag = "".join(letters)
            partition = slot_partition(crc_hqx(tag.encode("ascii"), 0) % SLOTS, partitions)
            if tags[partition] is None:
                tags[partition] = tag
                missing -= 1
                if not missing:
                    break
        length += 1
    return tuple(tag for tag in tags if tag is not None)


class Layout:
    """The names of one app's keys and channels (see the module docstring).

    Args:
        prefix: The app's prefix (no ``{`` or ``}``).
        partitions: How many partitions rooms and connections are hashed into, from 1
            to 16384.

    Raises:
        ConfigurationError: for a prefix that is empty or holds a brace, or a number of
            partitions out of range.
    """

    __slots__ = ("_tags", "everyone", "nodes", "partitions", "prefix")

    def __init__(self, prefix: str, partitions: int = DEFAULT_PARTITIONS) -> None:
        if not prefix:
            raise ConfigurationError("hub_prefix must not be empty")
        if "{" in prefix or "}" in prefix:
            raise ConfigurationError(
                f"hub_prefix may not hold '{{' or '}}' (got {prefix!r}): they would make "
                "every key hash to the same Redis Cluster slot"
            )
        if (
            not isinstance(partitions, int)
            or isinstance(partitions, bool)
            or not 1 <= partitions <= SLOTS
        ):
            raise ConfigurationError(
                f"hub_partitions must be an integer from 1 to {SLOTS} (got {partitions!r})"
            )
        self.prefix = prefix
        self.partitions = partitions
        #: ``<prefix>:{tag}`` of each partition.
        self._tags = tuple(f"{prefix}:{{{tag}}}" for tag in partition_tags(partitions))
        #: The channel of frames for every process.
        self.everyone = f"{prefix}:bus"
        #: The heartbeats of the nodes.
        self.nodes = f"{prefix}:nodes"

    def partition(self, name: str) -> int:
        """The partition of a room or a connection id (its name's CRC16, braces and all)."""
        return crc_hqx(name.encode("utf-8"), 0) % SLOTS * self.partitions // SLOTS

    def _tagged(self, name: str) -> str:
        return self._tags[self.partition(name)]

    # Channels ---------------------------------------------------------------------------------

    def room_channel(self, room: str) -> str:
        """The channel of the frames routed to ``room``."""
        return f"{self._tagged(room)}:pub:{room}"

    def inbox(self, node: str, partition: int) -> str:
        """A node's inbox in ``partition``: where a frame for one of its connections of
        that partition goes."""
        return f"{self._tags[partition]}:inbox:{node}"

    def inbox_prefix(self, partition: int) -> str:
        """``inbox(node, partition)`` without the node (scripts append it)."""
        return f"{self._tags[partition]}:inbox:"

    def inboxes(self, node: str) -> list[str]:
        """Every inbox of a node (it subscribes to them all)."""
        return [f"{tagged}:inbox:{node}" for tagged in self._tags]

    def home(self, node: str) -> str:
        """The inbox of a node that frames for the node itself go to (replies)."""
        return self.inbox(node, self.partition(node))

    # Keys -------------------------------------------------------------------------------------

    def node_conns(self, node: str) -> str:
        """The set of a node's connection ids."""
        return f"{self.prefix}:{{{node}}}:node"

    def conns(self, partition: int) -> str:
        """The hash of connection id -> node of a partition's connections."""
        return f"{self._tags[partition]}:conns"

    def users(self, partition: int) -> str:
        """The hash of connection id -> JSON user of a partition's connections."""
        return f"{self._tags[partition]}:users"

    def conn_rooms(self, conn_id: str) -> str:
        """The set of a connection's rooms."""
        return f"{self._tagged(conn_id)}:rooms:{conn_id}"

    def room_members(self, room: str) -> str:
        """The set of the connection ids in a room."""
        return f"{self._tagged(room)}:room:{room}"

    def history(self, room: str) -> list[str]:
        """A room's history keys: the stream, its last offset, its epoch."""
        stream = f"{self._tagged(room)}:hist:{room}"
        return [stream, f"{stream}:offset", f"{stream}:epoch"]
