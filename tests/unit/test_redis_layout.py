"""The Redis key and channel layout (``backends/_redis_layout.py``): slots, partition
tags, and the names of one room's or one connection's keys, all in one slot."""

from __future__ import annotations

from binascii import crc_hqx

import pytest

from bocadillo.errors import ConfigurationError
from bocadillo.realtime.backends._redis_layout import (
    SLOTS,
    Layout,
    key_slot,
    partition_tags,
    slot_partition,
)


@pytest.mark.parametrize(
    ("key", "slot"),
    [
        (b"123456789", 0x31C3 % SLOTS),  # the CRC16/XMODEM check value
        (b"foo", 12182),  # CLUSTER KEYSLOT foo
        (b"bar", 5061),
        (b"{foo}.anything", 12182),  # the hash tag is hashed
    ],
)
def test_key_slot_is_redis_clusters(key, slot):
    assert key_slot(key) == slot


def test_an_empty_or_unclosed_hash_tag_hashes_the_whole_key():
    for key in (b"{}foo", b"a{b", b"}x{"):
        assert key_slot(key) == crc_hqx(key, 0) % SLOTS
    assert key_slot(b"a{b}{c}") == key_slot(b"b")  # the first tag only


@pytest.mark.parametrize("partitions", [1, 3, 128, 1000, SLOTS])
def test_each_partition_tag_hashes_into_its_share_of_the_slots(partitions):
    tags = partition_tags(partitions)
    assert len(tags) == partitions
    assert len(set(tags)) == partitions
    for partition, tag in enumerate(tags):
        assert slot_partition(key_slot(f"p:{{{tag}}}:x".encode()), partitions) == partition
        assert tag.isalnum() and tag == tag.lower() and len(tag) <= 4
    assert partition_tags(partitions) == tags  # the same in every process


def test_the_default_partitions_spread_evenly_over_the_slots():
    tags = partition_tags(128)
    slots = sorted(key_slot(tag.encode()) for tag in tags)
    # One tag in each range of 128 slots.
    assert [slot // 128 for slot in slots] == list(range(128))


def test_every_name_of_a_room_or_a_connection_is_in_its_partitions_slot():
    layout = Layout("chat", 128)
    for room in ("lobby", "{tricky}", "a b", "ü"):
        slots = {
            key_slot(name.encode())
            for name in [layout.room_channel(room), layout.room_members(room)]
            + layout.history(room)
        }
        assert len(slots) == 1
        partition = layout.partition(room)
        assert slot_partition(slots.pop(), 128) == partition
    for conn in ("c1", "user:42"):
        partition = layout.partition(conn)
        slots = {
            key_slot(name.encode())
            for name in (
                layout.conn_rooms(conn),
                layout.conns(partition),
                layout.users(partition),
                layout.inbox("node1", partition),
                layout.inbox_prefix(partition) + "node1",
            )
        }
        assert len(slots) == 1
    node_slots = {key_slot(layout.node_conns("abc").encode()), key_slot(b"abc")}
    assert len(node_slots) == 1
    assert layout.home("abc") == layout.inbox("abc", layout.partition("abc"))
    assert len(set(layout.inboxes("abc"))) == 128
    assert layout.everyone == "chat:bus"
    assert layout.nodes == "chat:nodes"


@pytest.mark.parametrize(
    ("prefix", "partitions", "message"),
    [
        ("", 128, "must not be empty"),
        ("a{b", 128, "may not hold"),
        ("a}b", 128, "may not hold"),
        ("app", 0, "from 1 to 16384"),
        ("app", SLOTS + 1, "from 1 to 16384"),
        ("app", 2.5, "from 1 to 16384"),
        ("app", True, "from 1 to 16384"),
        ("app", "128", "from 1 to 16384"),
    ],
)
def test_a_bad_prefix_or_number_of_partitions_is_a_configuration_error(prefix, partitions, message):
    with pytest.raises(ConfigurationError, match=message):
        Layout(prefix, partitions)
