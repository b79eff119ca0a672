"""Type aliases shared across the package.

ASGI aliases come from Starlette so that our callables and Starlette's are interchangeable.
"""

from __future__ import annotations

from typing import Any, NewType

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["ASGIApp", "ConnectionId", "JSONValue", "Message", "Receive", "Scope", "Send"]

#: Anything ``json.dumps`` accepts; ``Any`` only lives at this boundary.
JSONValue = Any

#: The unique, URL-safe id of one WebSocket connection (``ws.id``).
ConnectionId = NewType("ConnectionId", str)
