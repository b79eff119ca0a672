"""Signed-cookie sessions: Starlette's ``SessionMiddleware``, with the cookie sent again
on every HTTP response while the session holds data.

Starlette sends the cookie only when a request changed the session. Sending it with every
response (as Bocadillo 0.18 did) keeps a browser's session alive for ``max_age`` seconds
after its *last* request, not its last change.
"""

from __future__ import annotations

from typing import Any

from starlette.middleware.sessions import SessionMiddleware as _StarletteSessionMiddleware

from ..types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["SessionMiddleware"]


class SessionMiddleware(_StarletteSessionMiddleware):
    """``req.session`` in a signed cookie (the options are Starlette's)."""

    def __init__(self, app: ASGIApp, **options: Any) -> None:
        super().__init__(_KeepCookie(app), **options)


class _KeepCookie:
    """Marks a non-empty session as changed when the response starts, so the cookie goes
    out again (the middleware above it writes the cookie)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                session = scope.get("session")
                if session:
                    session.mark_modified()
            await send(message)

        await self.app(scope, receive, send_wrapper)
