"""Turn exceptions raised while serving HTTP into error responses.

``ErrorMiddleware`` sits inside the user middleware and maps exception classes (by their
MRO) to handlers ``handler(req, res, exc)``. ``HTTPError`` and Starlette's
``HTTPException`` (its 404/405) have a default handler. Anything unhandled goes on to
Starlette's ``ServerErrorMiddleware``, which answers 500 and lets the server log it. An
answered error is marked in the scope (``answered_an_error``), so that the user
``Middleware`` it passes through skips ``after_dispatch``.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request as _StarletteRequest
from starlette.responses import PlainTextResponse, Response as _StarletteResponse

from ..errors import HTTPError
from ..jsoncodec import dumps, dumps_bytes
from ..request import Request
from ..response import Response
from ..types import ASGIApp, Receive, Scope, Send
from .tracking import TrackedSend

__all__ = [
    "ErrorHandler",
    "ErrorMiddleware",
    "answered_an_error",
    "internal_error_response",
    "wants_text",
]

logger = logging.getLogger("bocadillo.errors")
ErrorHandler = Callable[[Request, Response, Any], Awaitable[None] | None]
_INTERNAL_ERROR = dumps_bytes(
    {"error": "Internal Server Error", "status": 500, "detail": "Internal Server Error"}
)


#: The scope key set once the error handlers answer a request (``answered_an_error``).
_ANSWERED_AN_ERROR = "bocadillo.answered_an_error"


def answered_an_error(scope: Scope) -> bool:
    """True once an ``ErrorMiddleware`` has answered this request with an error handler.

    ``Middleware`` reads it to skip ``after_dispatch`` for such a response, as Bocadillo
    0.18 did: there the error went on past the middleware to the error handling. The
    mark is in the scope because the layers between the two (pure ASGI middleware, a
    mounted app) pass the scope along; nothing else carries it from the inner layer to
    the outer one.
    """
    return scope.get(_ANSWERED_AN_ERROR, False) is True


def wants_text(req: _StarletteRequest) -> bool:
    """True when the client accepts text (HTML or plain) but not JSON."""
    accept = req.headers.get("accept", "")
    if not accept or "json" in accept or "*/*" in accept:
        return False
    return "text/" in accept


async def http_error_handler(req: Request, res: Response, exc: HTTPError) -> None:
    """Default handler: the error as JSON, or its detail as text (see ``wants_text``)."""
    res.status_code = exc.status_code
    for key, value in (exc.headers or {}).items():
        res.headers[key] = value
    if exc.status_code in (204, 304):
        return
    if wants_text(req):
        detail = exc.detail_value
        # A structured detail (e.g. the 400 of typed parameters) stays JSON, never a Python repr.
        res.text = detail if isinstance(detail, str) else dumps(detail)
    else:
        res.json = exc.as_json()


def as_http_error(exc: HTTPException) -> HTTPError:
    """Turn Starlette's ``HTTPException`` (its 404 and 405) into our ``HTTPError``."""
    if isinstance(exc, HTTPError):
        return exc
    error = HTTPError(exc.status_code, headers=dict(exc.headers) if exc.headers else None)
    if exc.detail and exc.detail != error.title:
        error.detail_value = exc.detail
        error.detail = exc.detail
    return error


def internal_error_response(request: _StarletteRequest, exc: Exception) -> _StarletteResponse:
    """The 500 answer when debug is off: no traceback, JSON or text.

    The error is re-raised to the server after this response, and servers (uvicorn) then
    close the connection: ``Connection: close`` tells the client not to reuse it.
    """
    headers = {"connection": "close"}
    if wants_text(request):
        return PlainTextResponse("Internal Server Error", status_code=500, headers=headers)
    return _StarletteResponse(
        _INTERNAL_ERROR, status_code=500, headers=headers, media_type="application/json"
    )


class ErrorMiddleware:
    """Map exceptions to handlers for HTTP requests; pass WebSockets and lifespan through."""

    def __init__(self, app: ASGIApp, handlers: dict[type[BaseException], ErrorHandler]) -> None:
        self.app = app
        self.handlers = handlers

    def lookup(self, exc: BaseException) -> ErrorHandler | None:
        for cls in type(exc).__mro__:
            handler = self.handlers.get(cls)
            if handler is not None:
                return handler
        return None

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        if scope["type"] != "http":
            # The app's own awaitable: no frame of ours for the life of a WebSocket.
            return self.app(scope, receive, send)
        return self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        tracked = TrackedSend(send)
        try:
            await self.app(scope, receive, tracked)
        except ClientDisconnect:
            logger.debug("client disconnected before the response was complete")
            return
        except Exception as exc:
            if isinstance(exc, HTTPException):
                exc = as_http_error(exc)
            handler = self.lookup(exc)
            if handler is None or tracked.started:
                raise
            scope[_ANSWERED_AN_ERROR] = True
            req = Request(scope, receive, send)
            res = Response()
            result = handler(req, res, exc)
            if inspect.isawaitable(result):
                await result
            await res(scope, receive, send)
