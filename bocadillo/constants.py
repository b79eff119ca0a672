"""Constants of Bocadillo 0.18, kept at their 0.18 path (``bocadillo.constants``)."""

from __future__ import annotations

from .closecodes import CloseCode
from .views import HTTP_METHODS

__all__ = ["ALL_HTTP_METHODS", "WEBSOCKET_CLOSE_CODES"]

#: The HTTP verbs a view may implement, lower-case (the names of class-based view methods).
ALL_HTTP_METHODS: tuple[str, ...] = tuple(sorted(HTTP_METHODS))

#: The close codes RFC 6455 defines (section 7.4.1; 1004 is reserved), as plain ``int``
#: values. ``bocadillo.CloseCode`` names these and the ones registered since.
WEBSOCKET_CLOSE_CODES: tuple[int, ...] = tuple(
    int(code)
    for code in CloseCode
    if code <= CloseCode.INTERNAL_ERROR or code is CloseCode.TLS_HANDSHAKE
)
