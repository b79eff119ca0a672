"""Who may connect now: origins and connection caps. PURE: no I/O, no asyncio.

A connection is admitted before its WebSocket is accepted, and registered in the hub only
at accept; code may run in between (``@app.socket_connect`` handlers, providers). So an
admitted connection *holds* a slot until it registers or ends, and held slots count
against the caps like registered connections: concurrent handshakes cannot overshoot.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import urlsplit

from ..closecodes import CloseCode

__all__ = ["GOING_AWAY", "TRY_AGAIN_LATER", "Admission", "origin_allowed"]

# The two refusals, kept under these names for the modules that import them from here.
GOING_AWAY = CloseCode.GOING_AWAY
TRY_AGAIN_LATER = CloseCode.TRY_AGAIN_LATER

_DEFAULT_PORTS = {"http": 80, "https": 443}


def _host_port(netloc: str) -> tuple[str, int | None] | None:
    """``(hostname, port or None)`` of ``host[:port]``, or ``None`` if it is not one."""
    try:
        parts = urlsplit("//" + netloc)
        hostname, port = parts.hostname, parts.port
    except ValueError:
        return None
    if not hostname or parts.username is not None or parts.path or parts.query:
        return None
    return hostname.lower(), port


def _host_matches(hostname: str, patterns: Sequence[str]) -> bool:
    """Whether ``hostname`` is one of ``allowed_hosts`` (``*.a.com``: any subdomain of
    ``a.com``; a lone ``*`` matches nothing here, since it would allow every origin)."""
    for pattern in patterns:
        pattern = pattern.lower()
        if pattern == hostname or (pattern.startswith("*.") and hostname.endswith(pattern[1:])):
            return True
    return False


def origin_allowed(
    allowed: Sequence[str] | None,
    origin: str | None,
    host: str | None,
    allowed_hosts: Sequence[str] = (),
) -> bool:
    """Whether a WebSocket handshake with this ``Origin`` header may proceed.

    Browsers send the page's origin with every WebSocket handshake, and a WebSocket is
    not subject to the same-origin policy: without this check any site a user visits can
    open a socket to the app with the user's cookies (cross-site WebSocket hijacking).
    The rule, in order:

    1. ``"*"`` in ``allowed`` (``allowed_origins``): any origin, the check is off.
    2. No ``Origin`` header: allowed, unless ``allowed`` lists origins (then only those
       may connect). Browsers always send one, so the client is not a browser (a script,
       a mobile app), and no user's cookies are at stake.
    3. An origin listed in ``allowed`` (``scheme://host[:port]``, compared exactly, as
       browsers send it): allowed; ``"null"`` (sandboxed frames, ``file:`` pages, some
       redirects) only this way.
    4. An origin not in the lower-case form browsers send: refused.
    5. The same origin as the request: the origin's host and port equal the ``Host``
       header's (a ``Host`` without a port means the origin's default port).
    6. An origin whose host is in ``allowed_hosts`` (``*.a.com`` wildcards; a lone ``*``
       does not count): allowed.
    7. Anything else is refused.

    Args:
        allowed: The ``allowed_origins`` setting (``None``: none listed).
        origin: The handshake's ``Origin`` header, if any.
        host: The handshake's ``Host`` header (``None`` if it had none).
        allowed_hosts: The ``allowed_hosts`` setting.

    Returns:
        True to go on with the handshake; False to refuse it (HTTP 403).
    """
    if allowed is not None and "*" in allowed:
        return True
    if origin is None:
        return allowed is None
    if origin in (allowed or ()):
        return True  # listed exactly, as browsers send it
    if origin == "null" or origin != origin.lower():
        # A browser serializes an origin in lower case: anything else came from a
        # script, and is not compared loosely.
        return False
    try:
        parts = urlsplit(origin)
        scheme, origin_host, origin_port = parts.scheme, parts.hostname, parts.port
    except ValueError:
        return False
    if (
        scheme not in _DEFAULT_PORTS
        or not origin_host
        or parts.username is not None
        or parts.path
        or parts.query
    ):
        return False
    origin_port = origin_port or _DEFAULT_PORTS[scheme]
    request = _host_port(host) if host else None
    if request is not None:
        request_host, request_port = request
        if request_host == origin_host and (request_port or _DEFAULT_PORTS[scheme]) == origin_port:
            return True
    return _host_matches(origin_host, allowed_hosts)


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
