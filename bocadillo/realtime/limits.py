"""Rate, size and idle limits, driven by an injected clock. PURE: no I/O, no asyncio."""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import ConfigurationError

__all__ = ["RateLimiter", "Verdict", "is_idle"]


@dataclass(frozen=True)
class Verdict:
    """What to do with one message."""

    #: The message may be handled.
    allowed: bool
    #: How many times this connection went over the limit so far.
    violations: int
    #: The connection has gone over the limit too often and must be closed.
    close: bool


class RateLimiter:
    """At most ``limit`` messages per ``window`` seconds, in fixed windows.

    Args:
        limit: Messages allowed per window.
        window: The window length in seconds.
        max_violations: After this many rejected messages the verdict says ``close``
            (``None``: never).

    Raises:
        ConfigurationError: if ``limit`` is below 1 or ``window`` is not positive (the
            ``rate_limit`` setting is wrong).
    """

    __slots__ = ("_count", "_start", "limit", "max_violations", "violations", "window")

    def __init__(self, limit: int, window: float, max_violations: int | None = None) -> None:
        if limit < 1 or window <= 0:
            raise ConfigurationError("a rate limit needs limit >= 1 and window > 0")
        self.limit = limit
        self.window = window
        self.max_violations = max_violations
        self.violations = 0
        self._start: float | None = None
        self._count = 0

    def check(self, now: float) -> Verdict:
        """Count one message received at ``now`` and say whether it is allowed."""
        if self._start is None or now - self._start >= self.window:
            self._start = now
            self._count = 0
        self._count += 1
        if self._count <= self.limit:
            return Verdict(True, self.violations, False)
        self.violations += 1
        close = self.max_violations is not None and self.violations >= self.max_violations
        return Verdict(False, self.violations, close)


def is_idle(now: float, last_activity: float, timeout: float | None) -> bool:
    """True when nothing was received for ``timeout`` seconds (``None``: never idle)."""
    return timeout is not None and now - last_activity >= timeout
