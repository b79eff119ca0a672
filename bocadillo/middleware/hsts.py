"""HSTS: redirect plain HTTP (and ws://) to HTTPS, and pin HTTPS with a header."""

from __future__ import annotations

from starlette.middleware.httpsredirect import HTTPSRedirectMiddleware

from ..types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["HSTSMiddleware"]


class HSTSMiddleware:
    """Redirect ``http``/``ws`` requests to ``https``/``wss`` (Starlette's redirect), and add
    ``Strict-Transport-Security`` to responses served over HTTPS.

    Args:
        app: The inner app.
        max_age: How long browsers should remember to use HTTPS, in seconds.
    """

    def __init__(self, app: ASGIApp, max_age: int = 31_536_000) -> None:
        self.app = app
        self.redirect = HTTPSRedirectMiddleware(app)
        self.header = (
            b"strict-transport-security",
            f"max-age={max_age}; includeSubDomains".encode(),
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["scheme"] in ("http", "ws"):
            if scope["type"] == "lifespan":
                await self.app(scope, receive, send)
            else:
                await self.redirect(scope, receive, send)
            return

        async def send_with_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", []), self.header]}
            await send(message)

        await self.app(scope, receive, send_with_header)
