"""WebSocket close codes used by Bocadillo, as one ``IntEnum``, and the handshake refusal.

Codes 4000-4999 are free for applications; pass any ``int`` where a code is expected.
Only ``enum`` is imported here, so PURE modules may use the codes.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["HANDSHAKE_REJECTED_STATUS", "CloseCode"]

#: Not a close code. An ASGI ``websocket.close`` sent *before* ``websocket.accept``
#: makes the server answer the handshake with HTTP 403; this is the ``code`` such a
#: close carries, which is how Bocadillo refuses a connection. After accept there is
#: no 403: refuse with ``CloseCode.POLICY_VIOLATION`` instead.
HANDSHAKE_REJECTED_STATUS = 403


class CloseCode(IntEnum):
    """Close codes of RFC 6455 section 7.4.1 (and the IANA registry) that we send or read."""

    NORMAL_CLOSURE = 1000
    GOING_AWAY = 1001
    PROTOCOL_ERROR = 1002
    UNSUPPORTED_DATA = 1003
    NO_STATUS_RCVD = 1005
    ABNORMAL_CLOSURE = 1006
    INVALID_DATA = 1007
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    MANDATORY_EXTENSION = 1010
    INTERNAL_ERROR = 1011
    SERVICE_RESTART = 1012
    TRY_AGAIN_LATER = 1013
    #: Never sent: a client reports it when the TLS handshake failed.
    TLS_HANDSHAKE = 1015
