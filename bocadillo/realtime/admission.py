"""Who may connect now: origins and connection caps. PURE: no I/O, no asyncio.

A connection is admitted before its WebSocket is accepted, and registered in the hub only
at accept; code may run in between (``@app.socket_connect`` handlers, providers). So an
admitted connection *holds* a slot until it registers or ends, and held slots count
against the caps like registered connections: concurrent handshakes cannot overshoot.
"""

from __future__ import annotations

from ..closecodes import CloseCode

__all__ = ["GOING_AWAY", "TRY_AGAIN_LATER", "Admission", "origin_allowed"]

# The two refusals, kept under these names for the modules that import them from here.
GOING_AWAY = CloseCode.GOING_AWAY
TRY_AGAIN_LATER = CloseCode.TRY_AGAIN_LATER


def origin_allowed(allowed: list[str] | None, origin: str | None) -> bool:
    """Whether a handshake with this ``Origin`` may proceed (``None``/``"*"``: any)."""
    if allowed is None or "*" in allowed:
        return True
    return origin is not None and origin in allowed


class Admission:
    """Slots held by admitted connections that have not registered yet."""

    __slots__ = ("_by_ip", "held")

    def __init__(self) -> None:
        self._by_ip: dict[str, int] = {}
        #: Slots held in all.
        self.held = 0

    def held_by(self, ip: str | None) -> int:
        """Slots held by connections from ``ip``."""
        return self._by_ip.get(ip, 0) if ip is not None else 0

    def refusal(
        self,
        ip: str | None,
        *,
        accepting: bool,
        live: int,
        live_from_ip: int,
        max_connections: int | None,
        max_per_ip: int | None,
    ) -> CloseCode | None:
        """The close code refusing a new connection from ``ip``, or ``None`` to admit it.

        Args:
            accepting: False once shutdown has begun (refused with ``GOING_AWAY``).
            live: Registered connections.
            live_from_ip: Registered connections from ``ip``.
            max_connections: The global cap (``None``: none); over it, ``TRY_AGAIN_LATER``.
            max_per_ip: The per-IP cap (``None``: none); over it, ``TRY_AGAIN_LATER``.
        """
        if not accepting:
            return CloseCode.GOING_AWAY
        if max_connections is not None and live + self.held >= max_connections:
            return CloseCode.TRY_AGAIN_LATER
        if (
            ip is not None
            and max_per_ip is not None
            and live_from_ip + self.held_by(ip) >= max_per_ip
        ):
            return CloseCode.TRY_AGAIN_LATER
        return None

    def hold(self, ip: str | None) -> None:
        """Hold a slot for a connection just admitted."""
        self.held += 1
        if ip is not None:
            self._by_ip[ip] = self._by_ip.get(ip, 0) + 1

    def release(self, ip: str | None) -> None:
        """Give back a slot (the connection registered, or ended before it could).

        Raises:
            ValueError: if no slot is held (for ``ip``).
        """
        if self.held == 0 or (ip is not None and ip not in self._by_ip):
            raise ValueError(f"no slot is held for {ip!r}")
        self.held -= 1
        if ip is not None:
            left = self._by_ip[ip] - 1
            if left:
                self._by_ip[ip] = left
            else:
                del self._by_ip[ip]
