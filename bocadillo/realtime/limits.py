"""The hub's limits and what they decide about one inbound message. PURE: no I/O, no asyncio.

``HubLimits`` holds the settings. ``inbound()`` takes a received frame's size, the
connection's rate limiter and the time, and returns what the receiving side must do:
deliver it (``None``), skip it and answer an error envelope, or close the connection
with a code. ``is_idle()`` is the idle rule the hub's sweeper applies.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from ..closecodes import CloseCode
from ..errors import ConfigurationError

__all__ = [
    "HubLimits",
    "Inbound",
    "OverflowPolicy",
    "RateLimiter",
    "Verdict",
    "inbound",
    "is_idle",
]

OverflowPolicy = Literal["drop_oldest", "drop_newest", "close"]


@dataclass
class HubLimits:
    """Limits applied by the hub; ``None`` means no limit. See ``docs/realtime.md``."""

    #: ``Origin`` values accepted for WebSockets besides the app's own origin
    #: (``["*"]``: any; see ``admission.origin_allowed``).
    allowed_origins: list[str] | None = None
    #: The app's ``allowed_hosts``: origins on these hosts are accepted too.
    allowed_hosts: tuple[str, ...] = ("*",)
    #: Live connections in this process; more are refused with 1013.
    max_connections: int | None = None
    #: Live connections from one client IP; more are refused with 1013.
    max_connections_per_ip: int | None = 256
    #: Members of one room; a join over it is refused (``room_full``).
    max_room_members: int | None = None
    #: Rooms one connection may be in; a join over it is refused (``too_many_rooms``).
    max_rooms_per_connection: int | None = 100
    #: ``(messages, seconds)``: the rate limit per connection.
    rate_limit: tuple[int, float] | None = (100, 1.0)
    #: Rate-limit violations after which the connection is closed with 1008.
    rate_limit_violations: int | None = 10
    #: Largest accepted frame in bytes; larger closes with 1009.
    max_message_size: int | None = 64 * 1024
    #: Seconds without a received message before closing with 1001.
    idle_timeout: float | None = None
    #: Messages queued for a slow client before the overflow policy applies.
    outbox_limit: int = 256
    #: What to do when an outbox is full: drop_oldest, drop_newest or close (1013).
    overflow: OverflowPolicy = "drop_oldest"


@dataclass(frozen=True)
class Verdict:
    """What the rate limiter says about one message."""

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


@dataclass(frozen=True)
class Inbound:
    """A received frame that must not be delivered: what to do instead.

    ``error`` is the ``(code, message)`` of an error envelope to send first (to
    message-type connections only); then, if ``close`` is set, the connection is closed
    with it and ``reason``; otherwise the frame is skipped and the next one read.
    """

    error: tuple[str, str] | None
    close: CloseCode | None
    reason: str = ""


_RATE_LIMITED = Inbound(("rate_limited", "too many messages: slow down"), None)
_RATE_CLOSE = Inbound(None, CloseCode.POLICY_VIOLATION, "rate limit exceeded")


def inbound(
    size: int, now: float, *, max_size: int | None, rate: RateLimiter | None
) -> Inbound | None:
    """Decide about a frame of ``size`` bytes received at ``now``.

    Returns:
        ``None`` to deliver it; else what to do (see ``Inbound``): a frame over
        ``max_size`` closes with 1009 (after a ``message_too_large`` envelope); one over
        the rate limit is skipped with a ``rate_limited`` envelope, or closes with 1008
        once the connection has gone over the limit too often.
    """
    if max_size is not None and size > max_size:
        return Inbound(
            ("message_too_large", f"frames are limited to {max_size} bytes"),
            CloseCode.MESSAGE_TOO_BIG,
            "message too large",
        )
    if rate is not None:
        verdict = rate.check(now)
        if not verdict.allowed:
            return _RATE_CLOSE if verdict.close else _RATE_LIMITED
    return None


def is_idle(now: float, last_activity: float, timeout: float | None) -> bool:
    """True when nothing was received for ``timeout`` seconds (``None``: never idle)."""
    return timeout is not None and now - last_activity >= timeout
