"""Room history, table-style (PURE: no event loop)."""

from __future__ import annotations

import itertools

import pytest

from bocadillo import ConfigurationError
from bocadillo.realtime.history import (
    Histories,
    Position,
    RoomHistory,
    RoomOptions,
    RoomRules,
)


def stream(size: int = 3, ttl: float = 100.0) -> RoomHistory:
    return RoomHistory(RoomOptions(history_size=size, history_ttl=ttl), "E1")


def offsets(recovery) -> list[int]:
    return [p.offset for p in recovery.publications]


def test_publications_get_consecutive_offsets_in_the_rooms_epoch():
    room = stream()
    assert [room.append(n, "t", 0.0).offset for n in "abcd"] == [1, 2, 3, 4]
    assert room.position == Position("E1", 4)
    assert len(room) == 3  # the size bounds what is kept, not the offsets


@pytest.mark.parametrize(
    ("epoch", "offset", "recovered", "expected"),
    [
        ("E1", 4, True, []),  # up to date: nothing missed
        ("E1", 3, True, [4]),
        ("E1", 2, True, [3, 4]),  # the oldest kept is 2: the gap starts right after it
        ("E1", 1, True, [2, 3, 4]),  # 2 is the oldest kept: the whole gap is there
        ("E1", 0, False, []),  # publication 1 is gone: the gap is longer than the history
        ("E0", 4, False, []),  # another epoch: the stream was lost
        ("E1", 5, False, []),  # ahead of the stream
        ("E1", -1, False, []),
    ],
)
def test_since_answers_all_that_was_missed_or_nothing(epoch, offset, recovered, expected):
    room = stream(size=3)
    for n in range(4):
        room.append(n, None, 0.0)
    recovery = room.since(epoch, offset, 0.0)
    assert (recovery.recovered, offsets(recovery)) == (recovered, expected)
    assert recovery.position == Position("E1", 4)


def test_since_forgets_what_is_older_than_the_ttl():
    room = stream(size=10, ttl=5.0)
    room.append("old", None, 0.0)
    room.append("new", None, 4.0)
    assert offsets(room.since("E1", 0, 4.9)) == [1, 2]
    late = room.since("E1", 0, 6.0)  # publication 1 expired: the gap cannot be filled
    assert (late.recovered, offsets(late)) == (False, [])
    assert offsets(room.since("E1", 1, 6.0)) == [2]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"history_size": -1}, "history_size"),
        ({"history_size": 1.5}, "history_size"),
        ({"history_ttl": 0}, "history_ttl"),
    ],
)
def test_room_options_refuse_bad_values(options, message):
    with pytest.raises(ConfigurationError, match=message):
        RoomOptions(**options)


def test_room_rules_first_matching_pattern_wins():
    rules = RoomRules(RoomOptions(history_size=0))
    rules.add("game:*", RoomOptions(history_size=50, presence_events=True))
    rules.add("*", RoomOptions(history_size=5))
    assert rules.for_room("game:7").history_size == 50
    assert rules.for_room("game:7").presence_events
    assert rules.for_room("lobby").history_size == 5
    assert rules.any_history
    assert not RoomRules().any_history


def test_histories_make_streams_only_for_rooms_with_history():
    rules = RoomRules(RoomOptions(history_size=0))
    rules.add("news*", RoomOptions(history_size=2))
    counter = itertools.count()
    histories = Histories(rules, epochs=lambda: f"E{next(counter)}")
    assert histories.append("lobby", "x", None, 0.0) is None
    assert histories.recover("lobby", "E0", 0, 0.0) is None
    first = histories.append("news", "a", "t", 0.0)
    assert first is not None and first.offset == 1
    assert histories.position("news") == Position("E0", 1)
    assert [p.data for p in histories.read("news", 0, 0.0)] == ["a"]


def test_histories_forget_the_least_recently_published_room_past_max_rooms():
    rules = RoomRules(RoomOptions(history_size=5))
    counter = itertools.count()
    histories = Histories(rules, epochs=lambda: f"E{next(counter)}", max_rooms=2)
    histories.append("a", 1, None, 0.0)
    histories.append("b", 1, None, 0.0)
    histories.append("a", 2, None, 1.0)  # a is now the most recent
    histories.append("c", 1, None, 2.0)  # b goes
    assert sorted(histories.rooms) == ["a", "c"]
    # b comes back with a new epoch: an old position there cannot be recovered.
    assert histories.recover("b", "E1", 1, 3.0).recovered is False  # type: ignore[union-attr]


def test_histories_prune_expired_publications_and_idle_streams():
    rules = RoomRules(RoomOptions(history_size=5, history_ttl=10.0))
    histories = Histories(rules)
    histories.append("a", 1, None, 0.0)
    histories.prune(5.0)
    assert list(histories.rooms) == ["a"]
    histories.prune(10.0)  # its only publication expired, and nothing came for a TTL
    assert list(histories.rooms) == []
