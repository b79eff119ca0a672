"""The ``App``: wires the router, the middleware stack and the lifespan together.

It holds no feature logic: routes come from ``RouteRegistry``, errors from
``middleware.errors``. The Starlette router and middleware stack are compiled on the
first ASGI call (and again after a later registration), so the decorators can be used in
any order.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any, Literal, TypeVar

from starlette.datastructures import State, URLPath
from starlette.exceptions import HTTPException
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.routing import Router

from .errors import ConfigurationError, HTTPError
from .middleware.errors import (
    ErrorHandler,
    ErrorMiddleware,
    http_error_handler,
    internal_error_response,
)
from .routing import RouteRegistry, compile_routes
from .types import ASGIApp, Receive, Scope, Send

__all__ = ["App"]

logger = logging.getLogger("bocadillo.app")
F = TypeVar("F", bound=Callable[..., Any])
EventHandler = Callable[[], Awaitable[None] | None]
Event = Literal["startup", "shutdown"]


class App(RouteRegistry):
    """A Bocadillo application: an ASGI app that ``uvicorn module:app`` serves.

    Args:
        name: A name for logs and ``repr`` (defaults to ``"bocadillo"``).
        debug: Show tracebacks in 500 responses. Never in production.

    Example::

        app = App()

        @app.route("/")
        async def index(req, res):
            res.text = "Hello, world!"
    """

    def __init__(self, name: str | None = None, *, debug: bool = False) -> None:
        super().__init__()
        self.name = name or "bocadillo"
        self.debug = debug
        #: Application-wide user data.
        self.state = State()
        self._handlers: dict[Event, list[EventHandler]] = {"startup": [], "shutdown": []}
        self._error_handlers: dict[type[BaseException], ErrorHandler] = {
            HTTPError: http_error_handler,
        }
        self._middleware: list[tuple[Callable[..., ASGIApp], tuple[Any, ...], dict[str, Any]]] = []
        self._router: Router | None = None
        self._stack: ASGIApp | None = None

    def _changed(self) -> None:
        self._router = None
        self._stack = None

    # Lifespan -------------------------------------------------------------------------------

    def on(self, event: Event, handler: F | None = None) -> Any:
        """Register a ``startup`` or ``shutdown`` handler (sync or async).

        Usable as ``@app.on("startup")`` or ``app.on("startup", handler)``.

        Raises:
            ConfigurationError: for another event name.
        """
        if event not in self._handlers:
            raise ConfigurationError(f"unknown event {event!r}: use 'startup' or 'shutdown'")

        def register(func: F) -> F:
            self._handlers[event].append(func)
            return func

        return register(handler) if handler is not None else register

    async def _run_handlers(self, event: Event) -> None:
        for handler in self._handlers[event]:
            result = handler()
            if inspect.isawaitable(result):
                await result

    @asynccontextmanager
    async def _lifespan(self, _app: Any) -> AsyncIterator[None]:
        await self._run_handlers("startup")
        try:
            yield
        finally:
            await self._run_handlers("shutdown")

    # Errors ---------------------------------------------------------------------------------

    def error_handler(self, exc_type: type[BaseException]) -> Callable[[F], F]:
        """Handle ``exc_type`` (and subclasses) raised by HTTP views with
        ``handler(req, res, exc)`` (sync or async).

        The most specific handler (by the exception's MRO) wins. Register one for
        ``HTTPError`` to change how 404s, 405s and other HTTP errors look.
        """
        if exc_type is HTTPException:
            exc_type = HTTPError

        def register(handler: F) -> F:
            self._error_handlers[exc_type] = handler
            self._changed()
            return handler

        return register

    # Middleware -----------------------------------------------------------------------------

    def add_middleware(self, middleware: Callable[..., ASGIApp], *args: Any, **kwargs: Any) -> None:
        """Wrap the app in an ASGI middleware: ``middleware(app, *args, **kwargs)``.

        The last one added is the outermost: it sees requests first and responses last.
        """
        self._middleware.append((middleware, args, kwargs))
        self._changed()

    # Routing --------------------------------------------------------------------------------

    @property
    def router(self) -> Router:
        """The compiled Starlette router."""
        if self._router is None:
            self._router = Router(
                routes=compile_routes(self, configure_ws=self._configure_ws),
                lifespan=self._lifespan,
            )
        return self._router

    def _configure_ws(self, route: Any) -> None:
        """Hook for the realtime layer to attach itself to WebSocket routes."""

    def url_for(self, name: str, /, **params: Any) -> URLPath:
        """The path of the route named ``name`` (``"recipe:view"`` inside a recipe).

        Raises:
            starlette.routing.NoMatchFound: if no route has that name and parameters.
        """
        return self.router.url_path_for(name, **params)

    def _build(self) -> ASGIApp:
        app: ASGIApp = ErrorMiddleware(self.router, dict(self._error_handlers))
        for cls, args, kwargs in self._middleware:
            app = cls(app, *args, **kwargs)
        return ServerErrorMiddleware(
            app, handler=None if self.debug else internal_error_response, debug=self.debug
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        stack = self._stack
        if stack is None:
            stack = self._stack = self._build()
        await stack(scope, receive, send)

    def __repr__(self) -> str:
        return f"<App {self.name}>"
