"""``Middleware``: the base class for user HTTP middleware with before/after dispatch.

It is pure ASGI (no response buffering): ``before_dispatch(req, res)`` runs before the
app, and may answer by itself by returning ``res`` (or any Starlette response); the
app is then not called. ``after_dispatch(req, res)`` runs when the app starts its
response: ``res.status_code`` and ``res.headers`` hold what the app answered and may be
changed; the body passes through untouched. Both must be coroutine functions: a plain
``def`` is refused with ``ExpectedAsync`` when the subclass is defined, as in Bocadillo
0.18.

``after_dispatch`` does not run when the request ends in an error: an exception raised
inside the wrapped app before its response starts (an ``HTTPError`` or ``Redirect``
from a view, hook or inner middleware, the router's 404 and 405, any other exception).
The app's error handlers answer it, and that answer passes through untouched, as in
0.18, where the error went on past the middleware to the error handling.

``before_dispatch`` may also raise ``HTTPError`` or ``Redirect``: the app's error handlers
answer, as they would for a view. It may read the body (``await req.json()``): the view
can read it again.

Order: the last middleware added with ``app.add_middleware`` is the outermost, so its
``before_dispatch`` runs first and its ``after_dispatch`` runs last.
"""

from __future__ import annotations

from typing import Any

from starlette.datastructures import MutableHeaders

from ..errors import ExpectedAsync, HTTPError
from ..redirection import Redirect, redirect_handler
from ..request import Request
from ..response import Response
from ..types import ASGIApp, Message, Receive, Scope, Send
from ..views import is_sync_callable
from .errors import ErrorHandler, ErrorMiddleware, answered_an_error, http_error_handler

__all__ = ["Middleware"]


_DEFAULT_HANDLERS: dict[type[BaseException], ErrorHandler] = {
    HTTPError: http_error_handler,
    Redirect: redirect_handler,
}


def _raising(exc: Exception) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise exc

    return app


class Middleware:
    """Subclass it and override ``before_dispatch`` and/or ``after_dispatch``.

    Args:
        app: The inner ASGI app.
        **kwargs: Options given to ``app.add_middleware(MyMiddleware, **kwargs)``,
            stored as ``self.options``.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Refuse a ``before_dispatch`` or ``after_dispatch`` that is not ``async def``.

        Raises:
            ExpectedAsync: naming the method, when the subclass is defined.
        """
        super().__init_subclass__(**kwargs)
        for name in ("before_dispatch", "after_dispatch"):
            if is_sync_callable(getattr(cls, name)):
                raise ExpectedAsync(
                    f"{cls.__qualname__}.{name} must be asynchronous: make it 'async def'"
                )

    def __init__(self, app: ASGIApp, **kwargs: Any) -> None:
        self.app = app
        self.options = kwargs

    async def before_dispatch(self, req: Request, res: Response) -> Any:
        """Runs before the app. Return ``res`` (or a response) to answer without the app."""
        return None

    async def after_dispatch(self, req: Request, res: Response) -> Any:
        """Runs as the app's response starts; may change ``res.status_code``/``res.headers``.

        Not called when the request ends in an error (see the module's docstring).
        """
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # Body messages read by ``before_dispatch`` (``await req.json()``...) are kept and
        # replayed to the app, so that the view can read the body too.
        received: list[Message] = []

        async def recording_receive() -> Message:
            message = await receive()
            if message["type"] == "http.request":
                received.append(message)
            return message

        async def replaying_receive() -> Message:
            if received:
                return received.pop(0)
            return await receive()

        req = Request(scope, recording_receive, send)
        early = Response()
        try:
            answer = await self.before_dispatch(req, early)
        except Exception as exc:
            # The user middleware sits outside the app's ErrorMiddleware: answer with the
            # app's handlers (an unhandled error goes on to the 500 handler).
            handlers = getattr(scope.get("app"), "_error_handlers", None) or _DEFAULT_HANDLERS
            await ErrorMiddleware(_raising(exc), dict(handlers))(scope, replaying_receive, send)
            return
        if answer is not None:
            await answer(scope, replaying_receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start" and not answered_an_error(scope):
                res = Response(message["status"])
                res.headers = MutableHeaders(raw=list(message.get("headers", [])))
                await self.after_dispatch(req, res)
                message = {**message, "status": res.status_code, "headers": res.headers.raw}
            await send(message)

        await self.app(scope, replaying_receive, send_wrapper)
