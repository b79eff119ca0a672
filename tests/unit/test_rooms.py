"""Room membership tables, table-style (PURE: no event loop)."""

from __future__ import annotations

from typing import Any

import pytest

from bocadillo.realtime.rooms import RoomFull, Rooms

# A step is (operation, arguments, expected return value).
Step = tuple[str, tuple[Any, ...], Any]


def run(rooms: Rooms[str], steps: list[Step]) -> None:
    for number, (operation, args, expected) in enumerate(steps):
        if operation == "join":
            result: Any = rooms.join(*args)
        elif operation == "leave":
            result = rooms.leave(*args)
        else:
            assert operation == "leave_all"
            result = sorted(rooms.leave_all(*args))
        assert result == expected, f"step {number}: {operation}{args}"


@pytest.mark.parametrize(
    ("steps", "members", "rooms_of"),
    [
        pytest.param([], {}, {}, id="empty"),
        pytest.param(
            [("join", ("a", "lobby"), True)],
            {"lobby": {"a"}},
            {"a": {"lobby"}},
            id="first-join-creates",
        ),
        pytest.param(
            [("join", ("a", "lobby"), True), ("join", ("b", "lobby"), False)],
            {"lobby": {"a", "b"}},
            {"a": {"lobby"}, "b": {"lobby"}},
            id="second-member-does-not-create",
        ),
        pytest.param(
            [("join", ("a", "lobby"), True), ("join", ("a", "lobby"), False)],
            {"lobby": {"a"}},
            {"a": {"lobby"}},
            id="re-join-is-a-no-op",
        ),
        pytest.param(
            [("join", ("a", "lobby"), True), ("join", ("a", "games"), True)],
            {"lobby": {"a"}, "games": {"a"}},
            {"a": {"lobby", "games"}},
            id="one-member-many-rooms",
        ),
        pytest.param(
            [("join", ("a", "lobby"), True), ("leave", ("a", "lobby"), True)],
            {},
            {},
            id="last-leave-empties-and-forgets",
        ),
        pytest.param(
            [
                ("join", ("a", "lobby"), True),
                ("join", ("b", "lobby"), False),
                ("leave", ("a", "lobby"), False),
            ],
            {"lobby": {"b"}},
            {"b": {"lobby"}},
            id="leave-with-members-left",
        ),
        pytest.param(
            [("leave", ("a", "lobby"), False)],
            {},
            {},
            id="leave-unknown-room",
        ),
        pytest.param(
            [("join", ("a", "lobby"), True), ("leave", ("b", "lobby"), False)],
            {"lobby": {"a"}},
            {"a": {"lobby"}},
            id="leave-by-non-member",
        ),
        pytest.param(
            [
                ("join", ("a", "lobby"), True),
                ("leave", ("a", "lobby"), True),
                ("leave", ("a", "lobby"), False),
            ],
            {},
            {},
            id="leave-twice",
        ),
        pytest.param(
            [
                ("join", ("a", "lobby"), True),
                ("leave", ("a", "lobby"), True),
                ("join", ("b", "lobby"), True),
            ],
            {"lobby": {"b"}},
            {"b": {"lobby"}},
            id="forgotten-room-is-created-again",
        ),
        pytest.param(
            [
                ("join", ("a", "lobby"), True),
                ("join", ("a", "games"), True),
                ("join", ("b", "games"), False),
                ("join", ("a", "solo"), True),
                ("leave_all", ("a",), ["lobby", "solo"]),
            ],
            {"games": {"b"}},
            {"b": {"games"}},
            id="leave-all-reports-emptied-rooms",
        ),
        pytest.param(
            [("leave_all", ("a",), [])],
            {},
            {},
            id="leave-all-unknown-member",
        ),
        pytest.param(
            [
                ("join", ("a", "lobby"), True),
                ("join", ("b", "lobby"), False),
                ("leave_all", ("a",), []),
                ("leave_all", ("a",), []),
            ],
            {"lobby": {"b"}},
            {"b": {"lobby"}},
            id="leave-all-twice",
        ),
    ],
)
def test_rooms_join_leave_report_created_and_emptied_rooms(steps, members, rooms_of):
    rooms: Rooms[str] = Rooms()
    run(rooms, steps)
    assert rooms.names == frozenset(members)
    assert len(rooms) == len(members)
    for room, expected in members.items():
        assert room in rooms
        assert rooms.members(room) == frozenset(expected)
        assert set(rooms.members_view(room)) == expected
        assert len(rooms.members(room)) == len(expected)
    for member, expected in rooms_of.items():
        assert rooms.rooms_of(member) == frozenset(expected)
    for member in {"a", "b"} - set(rooms_of):
        assert rooms.rooms_of(member) == frozenset()


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (lambda rooms: rooms.members("nowhere"), frozenset()),
        (lambda rooms: list(rooms.members_view("nowhere")), []),
        (lambda rooms: len(rooms.members("nowhere")), 0),
        (lambda rooms: rooms.rooms_of("nobody"), frozenset()),
        (lambda rooms: "nowhere" in rooms, False),
        (lambda rooms: rooms.names, frozenset()),
        (lambda rooms: len(rooms), 0),
    ],
)
def test_rooms_queries_on_unknown_names_are_empty(query, expected):
    rooms: Rooms[str] = Rooms()
    assert query(rooms) == expected
    # Asking did not create anything.
    assert len(rooms) == 0


def test_rooms_members_is_a_snapshot():
    rooms: Rooms[str] = Rooms()
    rooms.join("a", "lobby")
    snapshot = rooms.members("lobby")
    rooms.join("b", "lobby")
    assert snapshot == frozenset({"a"})
    assert rooms.members("lobby") == frozenset({"a", "b"})


@pytest.mark.parametrize(
    ("limit", "members_before", "joins"),
    [
        (1, ["a"], False),
        (2, ["a"], True),
        (2, ["a", "b"], False),
        (3, ["a", "b"], True),
        (None, ["m" + str(n) for n in range(100)], True),
    ],
)
def test_rooms_limit_refuses_a_new_member_of_a_full_room(limit, members_before, joins):
    rooms: Rooms[str] = Rooms()
    for member in members_before:
        rooms.join(member, "lobby", limit=limit)
    if joins:
        assert rooms.join("new", "lobby", limit=limit) is False
        assert "new" in rooms.members("lobby")
        return
    with pytest.raises(RoomFull) as excinfo:
        rooms.join("new", "lobby", limit=limit)
    assert excinfo.value.room == "lobby"
    assert excinfo.value.limit == limit
    assert "lobby" in str(excinfo.value)
    # Nothing changed.
    assert rooms.members("lobby") == frozenset(members_before)
    assert rooms.rooms_of("new") == frozenset()


def test_rooms_limit_zero_refuses_even_the_first_member():
    rooms: Rooms[str] = Rooms()
    with pytest.raises(RoomFull):
        rooms.join("a", "lobby", limit=0)
    assert "lobby" not in rooms
    assert rooms.rooms_of("a") == frozenset()


def test_rooms_re_join_of_a_full_room_by_a_member_is_a_no_op():
    rooms: Rooms[str] = Rooms()
    rooms.join("a", "lobby", limit=1)
    assert rooms.join("a", "lobby", limit=1) is False
    assert rooms.members("lobby") == frozenset({"a"})


def test_rooms_limit_applies_per_room():
    rooms: Rooms[str] = Rooms()
    rooms.join("a", "one", limit=1)
    assert rooms.join("a", "two", limit=1) is True
    assert rooms.join("b", "three", limit=1) is True
    assert rooms.rooms_of("a") == frozenset({"one", "two"})


def test_rooms_members_may_be_any_hashable():
    rooms: Rooms[int] = Rooms()
    assert rooms.join(1, "odd") is True
    assert rooms.join(3, "odd") is False
    assert rooms.leave_all(1) == []
    assert rooms.leave_all(3) == ["odd"]
    assert len(rooms) == 0
