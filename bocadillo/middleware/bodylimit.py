"""The HTTP body limit (``max_body_size``), enforced while the body streams in.

A pure ASGI middleware that wraps ``receive``: nothing is buffered here, bytes are only
counted as the server hands them over, so a body over the limit is refused after at most
one server chunk past it, however it was sent.

- A ``Content-Length`` over the limit is refused on the first ``receive()``, before any
  byte of the body is read.
- A chunked body (or one that lies about its length) is counted as it arrives; the
  chunk that goes over the limit is refused and never reaches the app.

Refusing means raising ``PayloadTooLarge`` (an ``HTTPError(413)``) from ``receive()``, so
whatever was reading the body (``await req.json()``, ``req.form()``, ``async for chunk in
req``) stops there and the app's error handlers answer 413 with the usual JSON error. The
answer says ``Connection: close``, so the server stops reading the rest of the body.
Once a response has started, a refusal cannot be answered any more: ``receive()`` then
reports ``http.disconnect``, as if the client had left.

The limit of a request is read on the first ``receive()``, after the router has matched
the route (``scope["route"]``): a route object with a ``max_body_size`` attribute
(``None``: no limit) overrides the app's setting. Requests without a body (neither
``Content-Length`` nor ``Transfer-Encoding``) pass through untouched.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from ..errors import ConfigurationError, PayloadTooLarge
from ..response import encode_json
from ..types import ASGIApp, Message, Receive, Scope, Send
from .tracking import TrackedSend

__all__ = ["BodyLimitMiddleware", "PayloadTooLarge", "route_body_limit"]

_UNSET: Any = object()


def route_body_limit(scope: Scope, default: int | None) -> int | None:
    """The body limit for this request: the matched route's ``max_body_size`` if it has
    one, else ``default`` (``None``: no limit)."""
    value = getattr(scope.get("route"), "max_body_size", _UNSET)
    return default if value is _UNSET else value


def _declared_body(scope: Scope) -> tuple[bool, int | None]:
    """Whether the request has a body, and its ``Content-Length`` if one is declared."""
    has_body = False
    length: int | None = None
    for key, value in scope["headers"]:
        if key == b"content-length":
            has_body = True
            try:
                length = int(value)
            except ValueError:
                length = None  # the server refuses a bad Content-Length before we run
        elif key == b"transfer-encoding":
            has_body = True
    return has_body, length


class BodyLimitMiddleware:
    """Refuse HTTP request bodies larger than ``max_body_size`` bytes with a 413.

    Args:
        app: The inner app.
        max_body_size: The app's limit in bytes; ``None`` for none (routes may still
            set their own, see ``route_body_limit``).
    """

    def __init__(self, app: ASGIApp, max_body_size: int | None) -> None:
        if max_body_size is not None and (
            isinstance(max_body_size, bool) or not isinstance(max_body_size, int)
        ):
            raise ConfigurationError(f"max_body_size must be an int or None, not {max_body_size!r}")
        if max_body_size is not None and max_body_size < 0:
            raise ConfigurationError(f"max_body_size must be >= 0, not {max_body_size}")
        self.app = app
        self.max_body_size = max_body_size

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            # The app's own awaitable: no frame of ours for the life of a WebSocket.
            return self.app(scope, receive, send)
        has_body, declared = _declared_body(scope)
        if not has_body:
            return self.app(scope, receive, send)
        return self._limited(scope, receive, send, declared)

    async def _limited(
        self, scope: Scope, receive: Receive, send: Send, declared: int | None
    ) -> None:
        tracked = TrackedSend(send)
        limit: int | None = None
        looked_up = False
        received = 0

        async def limited_receive() -> Message:
            nonlocal limit, looked_up, received
            if not looked_up:
                looked_up = True
                limit = route_body_limit(scope, self.max_body_size)
                if limit is not None and declared is not None and declared > limit:
                    return _refuse(limit)
            elif limit is not None and received > limit:
                return _refuse(limit)  # asked again after a refusal
            message = await receive()
            if limit is not None and message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    return _refuse(limit)
            return message

        def _refuse(limit: int) -> Message:
            nonlocal received
            received = max(received, limit + 1)
            if tracked.started:
                return {"type": "http.disconnect"}
            raise PayloadTooLarge(limit)

        try:
            await self.app(scope, limited_receive, tracked)
        except PayloadTooLarge as exc:
            # Raised where no error handler saw it (e.g. in a user middleware that read
            # the body): answer it here if we still can.
            if tracked.started:
                raise
            await _answer(send, exc)


async def _answer(send: Send, exc: PayloadTooLarge) -> None:
    body = encode_json(exc.as_json())
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode("latin-1")),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
