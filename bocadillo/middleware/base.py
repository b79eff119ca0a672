"""``Middleware``: the base class for user HTTP middleware with before/after dispatch.

It is pure ASGI (no response buffering): ``before_dispatch(req, res)`` runs before the
app, and may answer by itself by returning ``res`` (or any Starlette response); the
app is then not called. ``after_dispatch(req, res)`` runs when the app starts its
response: ``res.status_code`` and ``res.headers`` hold what the app answered and may be
changed; the body passes through untouched. Both may be sync or async.

Order: the last middleware added with ``app.add_middleware`` is the outermost, so its
``before_dispatch`` runs first and its ``after_dispatch`` runs last.
"""

from __future__ import annotations

import inspect
from typing import Any

from starlette.datastructures import MutableHeaders

from ..request import Request
from ..response import Response
from ..types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["Middleware"]


async def _maybe_await(value: Any) -> Any:
    if inspect.isawaitable(value):
        return await value
    return value


class Middleware:
    """Subclass it and override ``before_dispatch`` and/or ``after_dispatch``.

    Args:
        app: The inner ASGI app.
        **kwargs: Options given to ``app.add_middleware(MyMiddleware, **kwargs)``,
            stored as ``self.options``.
    """

    def __init__(self, app: ASGIApp, **kwargs: Any) -> None:
        self.app = app
        self.options = kwargs

    def before_dispatch(self, req: Request, res: Response) -> Any:
        """Runs before the app. Return ``res`` (or a response) to answer without the app."""
        return None

    def after_dispatch(self, req: Request, res: Response) -> Any:
        """Runs as the app's response starts; may change ``res.status_code``/``res.headers``."""
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        req = Request(scope, receive, send)
        early = Response()
        answer = await _maybe_await(self.before_dispatch(req, early))
        if answer is not None:
            await answer(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                res = Response(message["status"])
                res.headers = MutableHeaders(raw=list(message.get("headers", [])))
                await _maybe_await(self.after_dispatch(req, res))
                message = {**message, "status": res.status_code, "headers": res.headers.raw}
            await send(message)

        await self.app(scope, receive, send_wrapper)
