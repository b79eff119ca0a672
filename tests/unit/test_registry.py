"""Connection records and counters, table-style (PURE: no event loop)."""

from __future__ import annotations

from typing import Any

import pytest

from bocadillo.realtime.registry import ConnectionInfo, Counters, Registry

# A step is ("add", id, ip) or ("remove", id, expected item).
Step = tuple[str, str, Any]


def run(registry: Registry[str], steps: list[Step]) -> None:
    for operation, conn_id, arg in steps:
        if operation == "add":
            registry.add(conn_id, f"item-{conn_id}", arg)
        else:
            assert registry.remove(conn_id) == arg


@pytest.mark.parametrize(
    ("steps", "ids", "per_ip"),
    [
        pytest.param([], [], {"1.1.1.1": 0}, id="empty"),
        pytest.param([("add", "a", "1.1.1.1")], ["a"], {"1.1.1.1": 1, "2.2.2.2": 0}, id="one"),
        pytest.param(
            [("add", "a", "1.1.1.1"), ("add", "b", "1.1.1.1"), ("add", "c", "2.2.2.2")],
            ["a", "b", "c"],
            {"1.1.1.1": 2, "2.2.2.2": 1},
            id="per-ip-counts",
        ),
        pytest.param(
            [("add", "a", None), ("add", "b", None)],
            ["a", "b"],
            {"1.1.1.1": 0},
            id="unknown-ip-is-not-counted",
        ),
        pytest.param(
            [("add", "a", "1.1.1.1"), ("add", "b", "1.1.1.1"), ("remove", "a", "item-a")],
            ["b"],
            {"1.1.1.1": 1},
            id="remove-decrements",
        ),
        pytest.param(
            [("add", "a", "1.1.1.1"), ("remove", "a", "item-a")],
            [],
            {"1.1.1.1": 0},
            id="remove-last",
        ),
        pytest.param(
            [("remove", "ghost", None)],
            [],
            {"1.1.1.1": 0},
            id="remove-unknown",
        ),
        pytest.param(
            [("add", "a", "1.1.1.1"), ("remove", "a", "item-a"), ("remove", "a", None)],
            [],
            {"1.1.1.1": 0},
            id="remove-twice",
        ),
        pytest.param(
            [("add", "a", None), ("remove", "a", "item-a")],
            [],
            {},
            id="remove-without-ip",
        ),
        pytest.param(
            [("add", "a", "1.1.1.1"), ("remove", "a", "item-a"), ("add", "a", "2.2.2.2")],
            ["a"],
            {"1.1.1.1": 0, "2.2.2.2": 1},
            id="id-reused-after-removal",
        ),
    ],
)
def test_registry_add_remove_and_per_ip_counts(steps, ids, per_ip):
    registry: Registry[str] = Registry()
    run(registry, steps)
    assert registry.ids == ids
    assert len(registry) == len(ids)
    assert list(registry.values()) == [f"item-{i}" for i in ids]
    for conn_id in ids:
        assert conn_id in registry
        assert registry.get(conn_id) == f"item-{conn_id}"
    for ip, count in per_ip.items():
        assert registry.count_for_ip(ip) == count
    assert "ghost" not in registry
    assert registry.get("ghost") is None


def test_registry_refuses_a_duplicate_id_and_changes_nothing():
    registry: Registry[str] = Registry()
    registry.add("a", "first", "1.1.1.1")
    with pytest.raises(KeyError):
        registry.add("a", "second", "2.2.2.2")
    assert registry.get("a") == "first"
    assert len(registry) == 1
    assert registry.count_for_ip("1.1.1.1") == 1
    assert registry.count_for_ip("2.2.2.2") == 0
    # Removing it releases the first IP, not the second one.
    assert registry.remove("a") == "first"
    assert registry.count_for_ip("1.1.1.1") == 0


@pytest.mark.parametrize(
    ("predicate", "expected"),
    [
        (lambda item: True, ["a:chat", "b:news", "c:chat"]),
        (lambda item: False, []),
        (lambda item: item.endswith(":chat"), ["a:chat", "c:chat"]),
        (lambda item: item.startswith("b"), ["b:news"]),
    ],
)
def test_registry_filter(predicate, expected):
    registry: Registry[str] = Registry()
    for conn_id, topic in (("a", "chat"), ("b", "news"), ("c", "chat")):
        registry.add(conn_id, f"{conn_id}:{topic}", None)
    assert registry.filter(predicate) == expected


def test_registry_ids_is_a_copy():
    registry: Registry[str] = Registry()
    registry.add("a", "x", None)
    ids = registry.ids
    ids.append("b")
    assert registry.ids == ["a"]


def info(**overrides: Any) -> ConnectionInfo:
    values: dict[str, Any] = {
        "id": "abc",
        "path": "/ws",
        "remote_address": "1.2.3.4",
        "connected_at": 10.0,
        "last_activity": 12.5,
    }
    values.update(overrides)
    return ConnectionInfo(**values)


def test_connection_info_defaults_and_as_dict():
    record = info(rooms=frozenset({"b", "a"}), messages_received=2, bytes_sent=9)
    assert record.user_data == {}
    assert record.as_dict() == {
        "id": "abc",
        "path": "/ws",
        "remote_address": "1.2.3.4",
        "connected_at": 10.0,
        "last_activity": 12.5,
        "messages_received": 2,
        "messages_sent": 0,
        "bytes_received": 0,
        "bytes_sent": 9,
        "rooms": ["a", "b"],
    }


def test_connection_info_user_data_is_not_shared():
    first, second = info(), info()
    first.user_data["x"] = 1
    assert second.user_data == {}


def test_counters_start_at_zero_and_as_dict_is_a_copy():
    counters = Counters()
    snapshot = counters.as_dict()
    assert snapshot == {
        "connections_total": 0,
        "messages_received": 0,
        "messages_sent": 0,
        "bytes_received": 0,
        "bytes_sent": 0,
        "dropped": 0,
        "rejected": 0,
        "errors": 0,
        "unknown_replies": 0,
        "published": 0,
        "remote_frames": 0,
        "invalid_frames": 0,
        "resumes": 0,
        "dropped_by_policy": {},
        "rejected_by_reason": {},
    }
    counters.rejected += 2
    assert snapshot["rejected"] == 0
    assert counters.as_dict()["rejected"] == 2


def test_counters_break_drops_down_by_policy_and_rejections_by_reason():
    counters = Counters()
    counters.drop("drop_oldest")
    counters.drop("drop_oldest")
    counters.drop("drop_newest")
    counters.reject("origin")
    snapshot = counters.as_dict()
    assert snapshot["dropped"] == 3
    assert snapshot["dropped_by_policy"] == {"drop_oldest": 2, "drop_newest": 1}
    assert snapshot["rejected"] == 1
    assert snapshot["rejected_by_reason"] == {"origin": 1}
    counters.reject("busy")
    assert snapshot["rejected_by_reason"] == {"origin": 1}  # a copy, nested dicts too
