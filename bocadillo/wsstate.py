"""The states of a WebSocket connection (``WebSocketState``), and which of them mean
accepted, closed, or closed by the server. PURE: no I/O.

    CONNECTING --(connect event read)--> HANDSHAKE --accept()--> OPEN
    CONNECTING/HANDSHAKE --reject()/close()--> REJECTED   (the client gets an HTTP 403)
    CONNECTING/HANDSHAKE --client leaves--> ABANDONED
    OPEN --client disconnect--> CLIENT_CLOSED
    OPEN --close()--> SERVER_CLOSED
"""

from __future__ import annotations

from enum import Enum

__all__ = ["ACCEPTED", "BY_SERVER", "CLOSED", "WebSocketState"]


class WebSocketState(Enum):
    """Where a connection is in its life (see the module docstring)."""

    CONNECTING = "connecting"
    HANDSHAKE = "handshake"
    OPEN = "open"
    REJECTED = "rejected"
    ABANDONED = "abandoned"
    CLIENT_CLOSED = "client_closed"
    SERVER_CLOSED = "server_closed"


#: The states of a connection that was accepted.
ACCEPTED = frozenset(
    {WebSocketState.OPEN, WebSocketState.CLIENT_CLOSED, WebSocketState.SERVER_CLOSED}
)
#: The states of a closed connection, whoever closed it.
CLOSED = frozenset(
    {
        WebSocketState.REJECTED,
        WebSocketState.ABANDONED,
        WebSocketState.CLIENT_CLOSED,
        WebSocketState.SERVER_CLOSED,
    }
)
#: The states of a connection the server closed (or rejected).
BY_SERVER = frozenset({WebSocketState.REJECTED, WebSocketState.SERVER_CLOSED})
