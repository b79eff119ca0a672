"""Rate and idle limits with an injected clock, table-style (PURE: no event loop)."""

from __future__ import annotations

import pytest

from bocadillo.realtime.limits import RateLimiter, Verdict, is_idle

# Expected verdicts as (allowed, violations, close).
OK0 = (True, 0, False)


@pytest.mark.parametrize(
    ("limit", "window", "max_violations", "times", "expected"),
    [
        pytest.param(1, 10.0, None, [0.0], [OK0], id="first-message"),
        pytest.param(3, 10.0, None, [0.0, 1.0, 2.0], [OK0, OK0, OK0], id="up-to-the-limit"),
        pytest.param(
            2,
            10.0,
            None,
            [0.0, 1.0, 2.0, 3.0],
            [OK0, OK0, (False, 1, False), (False, 2, False)],
            id="over-the-limit-never-closes-without-max",
        ),
        pytest.param(
            2,
            10.0,
            None,
            [0.0, 1.0, 9.999, 10.0, 10.5, 11.0],
            [OK0, OK0, (False, 1, False), (True, 1, False), (True, 1, False), (False, 2, False)],
            id="window-resets-after-window-seconds",
        ),
        pytest.param(
            1,
            5.0,
            None,
            [100.0, 104.0, 105.0, 109.0, 110.0],
            [OK0, (False, 1, False), (True, 1, False), (False, 2, False), (True, 2, False)],
            id="fixed-windows-start-at-the-first-message",
        ),
        pytest.param(
            1,
            60.0,
            2,
            [0.0, 1.0, 2.0],
            [OK0, (False, 1, False), (False, 2, True)],
            id="close-after-max-violations",
        ),
        pytest.param(
            1,
            60.0,
            1,
            [0.0, 0.0],
            [OK0, (False, 1, True)],
            id="close-on-first-violation",
        ),
        pytest.param(
            1,
            1.0,
            3,
            [0.0, 0.5, 1.0, 1.5, 2.0, 2.5],
            [
                OK0,
                (False, 1, False),
                (True, 1, False),
                (False, 2, False),
                (True, 2, False),
                (False, 3, True),
            ],
            id="violations-add-up-across-windows",
        ),
        pytest.param(
            1,
            60.0,
            2,
            [0.0, 1.0, 2.0, 3.0],
            [OK0, (False, 1, False), (False, 2, True), (False, 3, True)],
            id="close-stays-true",
        ),
        pytest.param(
            2,
            0.5,
            None,
            [10.0, 10.0, 10.0, 10.5, 10.5, 10.5],
            [OK0, OK0, (False, 1, False), (True, 1, False), (True, 1, False), (False, 2, False)],
            id="fractional-window",
        ),
    ],
)
def test_rate_limiter_verdicts(limit, window, max_violations, times, expected):
    limiter = RateLimiter(limit, window, max_violations)
    verdicts = [limiter.check(now) for now in times]
    assert verdicts == [Verdict(*item) for item in expected]
    assert limiter.violations == expected[-1][1]


@pytest.mark.parametrize(
    ("limit", "window"),
    [(0, 1.0), (-1, 1.0), (1, 0.0), (1, -5.0)],
)
def test_rate_limiter_refuses_impossible_limits(limit, window):
    with pytest.raises(ValueError):
        RateLimiter(limit, window)


def test_rate_limiters_are_independent():
    first = RateLimiter(1, 10.0, 1)
    second = RateLimiter(1, 10.0, 1)
    assert first.check(0.0).allowed
    assert first.check(0.0).close
    assert second.check(0.0) == Verdict(True, 0, False)


@pytest.mark.parametrize(
    ("now", "last_activity", "timeout", "expected"),
    [
        (1000.0, 0.0, None, False),
        (10.0, 0.0, 10.0, True),
        (9.999, 0.0, 10.0, False),
        (25.0, 10.0, 10.0, True),
        (15.0, 10.0, 10.0, False),
        (10.0, 10.0, 0.0, True),
        (5.0, 10.0, 1.0, False),  # activity "in the future" (clock went back): not idle
        (100.5, 100.0, 0.5, True),
    ],
)
def test_is_idle(now, last_activity, timeout, expected):
    assert is_idle(now, last_activity, timeout) is expected
