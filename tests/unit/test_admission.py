"""Admission: origins, caps and held slots, table-style."""

from __future__ import annotations

from typing import Any

import pytest

from bocadillo.realtime.admission import GOING_AWAY, TRY_AGAIN_LATER, Admission, origin_allowed


@pytest.mark.parametrize(
    ("allowed", "origin", "expected"),
    [
        (None, None, True),
        # Safe by default (#16): a browser origin other than the app's is refused.
        (None, "https://any.example", False),
        (["*"], None, True),
        (["https://a.example"], "https://a.example", True),
        (["https://a.example"], "https://a.example.evil", False),
        (["https://a.example"], "http://a.example", False),
        (["https://a.example"], None, False),
        ([], "https://a.example", False),
    ],
)
def test_origin_allowed(allowed, origin, expected):
    assert origin_allowed(allowed, origin, "app.example") is expected


@pytest.mark.parametrize(
    ("allowed", "origin", "host", "allowed_hosts", "expected"),
    [
        # No list: the same origin as the Host header, and clients sending no Origin.
        (None, None, "app.example", (), True),
        (None, "https://app.example", "app.example", (), True),
        (None, "http://app.example", "app.example", (), True),
        # Browsers send origins in lower case: another form is not compared loosely.
        (None, "https://APP.example", "app.example:443", (), False),
        (None, "http://127.0.0.1:8000", "127.0.0.1:8000", (), True),
        (None, "http://[::1]:8000", "[::1]:8000", (), True),
        (None, "http://127.0.0.1:8001", "127.0.0.1:8000", (), False),
        (None, "https://app.example:8443", "app.example", (), False),
        (None, "http://evil.test", "app.example", (), False),
        (None, "https://app.example.evil.test", "app.example", (), False),
        (None, "null", "app.example", (), False),
        (None, "https://app.example", None, (), False),  # no Host header: nothing to match
        (None, "https://app.example", "app.example:notaport", (), False),
        (None, "file://", "app.example", (), False),
        (None, "chrome-extension://abc", "abc", (), False),
        (None, "https://app.example/path", "app.example", (), False),
        (None, "https://user@app.example", "app.example", (), False),
        (None, "https://app.example:99999", "app.example", (), False),
        # allowed_hosts: the origin's host may be any of them (not a lone "*").
        (None, "https://www.app.example", "api.app.example", ["*.app.example"], True),
        (None, "https://app.example", "api.app.example", ["*.app.example"], False),
        (None, "https://app.example", "api.app.example", ["app.example"], True),
        (None, "http://evil.test", "app.example", ["*"], False),
        # A list of origins: those, the same origin, and nothing without an Origin.
        (["https://front.example"], "https://front.example", "api.example", (), True),
        (["https://front.example"], "https://front.example", "api.example", (), True),
        (["https://front.example/"], "https://FRONT.example", "api.example", (), False),
        (["https://front.example"], "http://front.example", "api.example", (), False),
        (["https://front.example"], None, "api.example", (), False),
        (["https://front.example"], "https://api.example", "api.example", (), True),
        (["null"], "null", "api.example", (), True),
        # "*": the check is off.
        (["*"], "null", "app.example", (), True),
        (["*"], "http://evil.test", "app.example", (), True),
    ],
)
def test_origin_allowed_same_origin_by_default(allowed, origin, host, allowed_hosts, expected):
    assert origin_allowed(allowed, origin, host, allowed_hosts) is expected


def refusal(admission: Admission, ip: str | None = "1.1.1.1", **overrides: Any) -> int | None:
    options: dict[str, Any] = {
        "accepting": True,
        "live": 0,
        "live_from_ip": 0,
        "max_connections": None,
        "max_per_ip": None,
    }
    options.update(overrides)
    return admission.refusal(ip, **options)


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        ({}, None),
        ({"accepting": False}, GOING_AWAY),
        ({"live": 9, "max_connections": 10}, None),
        ({"live": 10, "max_connections": 10}, TRY_AGAIN_LATER),
        ({"live_from_ip": 1, "max_per_ip": 2}, None),
        ({"live_from_ip": 2, "max_per_ip": 2}, TRY_AGAIN_LATER),
        ({"live": 1000, "live_from_ip": 1000}, None),
    ],
)
def test_refusal_without_held_slots(overrides, expected):
    assert refusal(Admission(), **overrides) == expected


def test_held_slots_count_against_both_caps_until_released():
    admission = Admission()
    admission.hold("1.1.1.1")
    admission.hold("1.1.1.1")
    admission.hold("2.2.2.2")
    assert (admission.held, admission.held_by("1.1.1.1"), admission.held_by("2.2.2.2")) == (3, 2, 1)
    assert refusal(admission, live=1, max_connections=4) == TRY_AGAIN_LATER
    assert refusal(admission, live=0, max_connections=4) is None
    assert refusal(admission, "1.1.1.1", max_per_ip=2) == TRY_AGAIN_LATER
    assert refusal(admission, "2.2.2.2", max_per_ip=2) is None
    assert refusal(admission, "2.2.2.2", live_from_ip=1, max_per_ip=2) == TRY_AGAIN_LATER

    admission.release("1.1.1.1")
    assert refusal(admission, "1.1.1.1", max_per_ip=2) is None
    admission.release("1.1.1.1")
    admission.release("2.2.2.2")
    assert (admission.held, admission.held_by("1.1.1.1")) == (0, 0)


def test_a_slot_without_an_ip_counts_globally_only():
    admission = Admission()
    admission.hold(None)
    assert admission.held == 1
    assert refusal(admission, None, max_per_ip=0) is None  # no IP: no per-IP cap
    assert refusal(admission, max_connections=1) == TRY_AGAIN_LATER
    admission.release(None)
    assert admission.held == 0


@pytest.mark.parametrize("ip", ["1.1.1.1", None])
def test_releasing_a_slot_that_is_not_held_is_an_error(ip):
    admission = Admission()
    with pytest.raises(ValueError, match="no slot is held"):
        admission.release(ip)
    admission.hold("9.9.9.9")
    if ip is not None:
        with pytest.raises(ValueError, match="no slot is held"):
            admission.release(ip)
