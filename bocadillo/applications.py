"""The ``App``: wires the router, the middleware stack and the lifespan together.

It holds no feature logic: routes come from ``RouteRegistry``, errors from
``middleware.errors``. The Starlette router and middleware stack are compiled on the
first ASGI call (and again after a later registration), so the decorators can be used in
any order.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any, Literal, TypeVar, overload

from starlette.datastructures import State, URLPath
from starlette.exceptions import HTTPException
from starlette.middleware.cors import CORSMiddleware
from starlette.middleware.errors import ServerErrorMiddleware
from starlette.middleware.gzip import GZipMiddleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.responses import Response as _StarletteResponse
from starlette.routing import Match, Route

from .asyncapi import ServerMessage, asyncapi_document, render_html
from .clientscript import client_script_route
from .closecodes import HANDSHAKE_REJECTED_STATUS
from .config import CORS_DEFAULTS, Plugin, Settings, check_setting_names, configure
from .errors import ConfigurationError, HTTPError, SettingsError
from .injection import Provider, ProviderDecorator, ProviderRegistry
from .jsoncodec import dumps_bytes
from .metrics import HTTPMetricsMiddleware, Metrics
from .middleware.bodylimit import BodyLimitMiddleware
from .middleware.chain import Link, build_middleware
from .middleware.errors import (
    ErrorHandler,
    ErrorMiddleware,
    http_error_handler,
    internal_error_response,
)
from .middleware.hsts import HSTSMiddleware
from .middleware.sessions import SessionMiddleware
from .realtime.drain import DrainHandlers, install_drain_handlers
from .realtime.history import RoomOptions, RoomRules
from .realtime.hub import Hub, HubLimits
from .realtime.jobs import Job, Jobs
from .redirection import Redirect, redirect_handler
from .routing import AppRouter, RouteRegistry, compile_routes
from .staticfiles import static
from .types import ASGIApp, Receive, Scope, Send
from .views import ensure_async

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
        **settings: Initial settings (see ``bocadillo.config.DEFAULTS``); ``configure()``
            adds to them. Unconfigured apps are configured with these when they first
            serve.

    Example::

        app = App()

        @app.route("/")
        async def index(req, res):
            res.text = "Hello, world!"
    """

    def __init__(self, name: str | None = None, *, debug: bool = False, **settings: Any) -> None:
        check_setting_names(settings)
        super().__init__()
        self.name = name or "bocadillo"
        self.debug = debug
        #: Application-wide user data.
        self.state = State()
        #: The app's providers (see ``bocadillo.injection``).
        self.providers = ProviderRegistry()
        #: ``@app.provider``: like ``@provider``, for this app only (it overrides a
        #: provider of the same name declared with ``@provider``).
        self.provider = ProviderDecorator(self._add_provider)
        self._initial_settings: dict[str, Any] = {"debug": debug, **settings}
        self._configured = False
        self._settings: Settings | None = None
        self._handlers: dict[Event, list[EventHandler]] = {"startup": [], "shutdown": []}
        self._error_handlers: dict[type[BaseException], ErrorHandler] = {
            HTTPError: http_error_handler,
            Redirect: redirect_handler,
        }
        #: User middleware, innermost first, each with the link to its inner app.
        self._middleware: list[tuple[ASGIApp, Link]] = []
        self._router: AppRouter | None = None
        self._stack: ServerErrorMiddleware | None = None
        self._hub: Hub | None = None
        self._id_generator: Callable[[], str] | None = None
        self._room_options: list[tuple[str, dict[str, Any]]] = []
        self._join_guard: Callable[[Any, str], Any] | None = None
        self.jobs = Jobs()
        self._drain_handlers: DrainHandlers | None = None
        self._metrics: Metrics | None = None
        self._server_messages: dict[str | None, dict[str, ServerMessage]] = {}

    def _changed(self) -> None:
        self._router = None
        self._stack = None

    def _add_provider(self, definition: Provider) -> None:
        self.providers.add(definition)
        self._changed()

    def _provider_names(self) -> frozenset[str]:
        return frozenset(self.providers.definitions)

    # Settings -------------------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        """This app's settings (configured with the defaults on first access if needed)."""
        if self._settings is None:
            configure(self, **self._initial_settings)
        assert self._settings is not None
        return self._settings

    def _apply_settings(self, settings: Settings, plugins: list[Plugin]) -> None:
        """Called once by ``configure()``: store settings and run plugins."""
        self._settings = settings
        self._configured = True
        try:
            for func in plugins:
                func(self)
            sessions = settings["sessions"]
            if isinstance(sessions, dict) and "secret_key" in sessions:
                # Bocadillo 0.18 spelling: sessions={"secret_key": ...}.
                settings["secret_key"] = sessions["secret_key"]
            if sessions and not settings["secret_key"]:
                raise SettingsError(
                    "sessions are on but no secret key is set: pass secret_key=... to "
                    "configure() or set the SECRET_KEY environment variable"
                )
        except BaseException:
            # A failed configuration leaves the app unconfigured, so it fails again
            # (instead of serving half-configured) the next time it is used.
            self._settings = None
            self._configured = False
            raise
        self.debug = bool(settings["debug"])
        static_dir = settings["static_dir"]
        if static_dir:
            # Mounted even if the folder does not exist yet: it answers 404 until it does.
            config = dict(settings["static_config"] or {})
            app = static(static_dir, check_dir=False, max_age=config.get("max_age"))
            root = "/" + str(settings["static_root"]).strip("/")
            self.mount(root, app, name="static")
        self._changed()

    # Lifespan -------------------------------------------------------------------------------

    @overload
    def on(self, event: Event) -> Callable[[F], F]: ...

    @overload
    def on(self, event: Event, handler: F) -> F: ...

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
        hub = self.hub
        await hub.startup()
        self._drain_handlers = handlers = install_drain_handlers(
            self._drain, asyncio.get_running_loop()
        )
        try:
            await self._run_handlers("startup")
            self.jobs.start({"app": self, "hub": hub})
            try:
                yield
            finally:
                try:
                    await self.jobs.stop()
                    await self._drain()
                    await self._run_handlers("shutdown")
                finally:
                    await self.providers.aclose()
        finally:
            # Whether startup failed or the app served and stopped: the server's own
            # handlers come back, and a drain a signal started is awaited.
            await handlers.aclose()
            self._drain_handlers = None

    async def _drain(self) -> None:
        settings = self.settings
        await self.hub.shutdown(
            message=settings["shutdown_message"], timeout=float(settings["shutdown_timeout"])
        )

    # Real-time hub ----------------------------------------------------------------------------

    @property
    def hub(self) -> Hub:
        """The app's hub: every live WebSocket, rooms, delivery (see ``docs/realtime.md``)."""
        if self._hub is None:
            settings = self.settings
            rate = settings["rate_limit"]
            limits = HubLimits(
                allowed_origins=settings["allowed_origins"],
                allowed_hosts=tuple(settings["allowed_hosts"] or ()),
                max_connections=settings["max_connections"],
                max_connections_per_ip=settings["max_connections_per_ip"],
                max_room_members=settings["max_room_members"],
                max_rooms_per_connection=settings["max_rooms_per_connection"],
                rate_limit=(int(rate[0]), float(rate[1])) if rate else None,
                rate_limit_violations=settings["rate_limit_violations"],
                max_message_size=settings["max_message_size"],
                idle_timeout=settings["idle_timeout"],
                outbox_limit=int(settings["outbox_limit"]),
                overflow=settings["overflow"],
            )
            options = {
                "prefix": settings["hub_prefix"],
                "heartbeat_ttl": float(settings["hub_heartbeat_ttl"]),
                "publish_queue": int(settings["hub_publish_queue"]),
                "partitions": settings["hub_partitions"],
            }
            rules = RoomRules(
                RoomOptions(
                    history_size=int(settings["history_size"]),
                    history_ttl=float(settings["history_ttl"]),
                    presence_events=bool(settings["presence_events"]),
                )
            )
            for pattern, overrides in self._room_options:
                rules.add(pattern, replace(rules.default, **overrides))
            self._hub = Hub(
                settings["hub_backend"],
                backend_options=options,
                limits=limits,
                id_generator=self._id_generator,
                rooms=rules,
            )
            self._hub.join_guard = self._join_guard
        return self._hub

    def room_options(
        self,
        pattern: str,
        *,
        history_size: int | None = None,
        history_ttl: float | None = None,
        presence_events: bool | None = None,
    ) -> None:
        """Give the rooms whose name matches ``pattern`` (``fnmatch`` style: ``"game:*"``)
        their own history and presence settings; the first matching pattern wins, and
        what it leaves out comes from the app's settings.

        Args:
            pattern: A room name, or a pattern with ``*``, ``?`` and ``[...]``.
            history_size: Publications kept (0: no history).
            history_ttl: Seconds a publication is kept.
            presence_events: Send ``join``/``leave`` events to the room's members.

        Raises:
            ConfigurationError: for a negative size or a TTL that is not positive.
        """
        overrides: dict[str, Any] = {
            key: value
            for key, value in (
                ("history_size", history_size),
                ("history_ttl", history_ttl),
                ("presence_events", presence_events),
            )
            if value is not None
        }
        replace(RoomOptions(), **overrides)  # fail here on a bad value
        self._room_options.append((pattern, overrides))
        if self._hub is not None:
            self._hub.rules.add(pattern, replace(self._hub.rules.default, **overrides))

    def can_join(self, func: F) -> F:
        """Decide who may join which room when a client asks (a ``resume`` message, or
        ``ws.resume()``): ``func(ws, room)``, sync or async, returns a bool.

        Joins made by your own code (``ws.join``) are not checked: your code decides.
        """
        self._join_guard = func
        if self._hub is not None:
            self._hub.join_guard = func
        return func

    def id_generator(self, func: F) -> F:
        """Use ``func()`` to make connection ids (it must return unique strings).

        Takes effect for connections made after the call.
        """
        if self._hub is not None:
            self._hub.id_generator = func
        self._id_generator = func
        return func

    def every(self, seconds: float, *, immediately: bool = False) -> Callable[[F], F]:
        """Run the decorated function every ``seconds`` while the app runs.

        The function may be sync (run in a thread) or async, and may take ``app``
        and/or ``hub`` parameters. Errors are logged; the job keeps running.

        Raises:
            ConfigurationError: for a period that is not positive, or a parameter other
                than ``app`` and ``hub`` without a default.
        """

        def register(func: F) -> F:
            self.jobs.add(Job(func, seconds, immediately=immediately))
            return func

        return register

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

    def add_error_handler(self, exc_type: type[BaseException], handler: ErrorHandler) -> None:
        """Register ``handler`` for ``exc_type``, as ``@app.error_handler`` does
        (Bocadillo 0.18's spelling, which, like 0.18, takes coroutine functions only).

        Raises:
            ExpectedAsync: if ``handler`` is not a coroutine function.
        """
        self.error_handler(exc_type)(ensure_async(handler, "error handler"))

    # Middleware -----------------------------------------------------------------------------

    def add_middleware(self, middleware: Callable[..., ASGIApp], *args: Any, **kwargs: Any) -> None:
        """Wrap the app in an ASGI middleware: ``middleware(app, *args, **kwargs)``.

        The middleware is built here, once (``app`` is a link to the layers inside it). The
        last one added is the outermost: it sees requests first and responses last. An
        ``HTTPError`` it raises is answered by the app's error handlers.

        Raises:
            ConfigurationError: for an ASGI 2 middleware (``__call__(scope)``).
        """
        self._middleware.append(build_middleware(middleware, args, kwargs))
        self._changed()

    # Routing --------------------------------------------------------------------------------

    def include_router(self, router: RouteRegistry, prefix: str = "") -> None:
        """Include a ``Router`` (or ``Recipe``) under ``prefix`` (Bocadillo 0.18's spelling
        of ``app.include``)."""
        if prefix and not prefix.startswith("/"):
            prefix = "/" + prefix
        self.include(router, prefix=prefix)

    @property
    def router(self) -> AppRouter:
        """The compiled Starlette router."""
        if self._router is None:
            # The app takes its own copy of the declared providers now: what it serves
            # never reads a process-wide registry.
            self.providers.adopt()
            self._router = AppRouter(
                routes=self._stats_routes()
                + self._metrics_routes()
                + self._asyncapi_routes()
                + self._client_script_routes()
                + compile_routes(
                    self,
                    providers=self.providers,
                    socket_path=self.settings["socket_path"],
                    debug=self.debug,
                ),
                lifespan=self._lifespan,
                default=_not_found,
                # Trailing slashes are honoured; see ``_not_found`` for the one redirect.
                redirect_slashes=False,
            )
        return self._router

    def _stats_routes(self) -> list[Any]:
        path = self.settings["stats_endpoint"]
        if not path:
            return []
        hub_stats = self.hub.stats

        async def stats(request: Any) -> _StarletteResponse:
            return _StarletteResponse(dumps_bytes(hub_stats()), media_type="application/json")

        return [Route(path, stats, methods=["GET"], name="hub_stats")]

    @property
    def metrics(self) -> Metrics | None:
        """The app's Prometheus metrics, when the ``metrics_endpoint`` setting is on
        (see ``bocadillo.metrics``)."""
        if self._metrics is None and self.settings["metrics_endpoint"]:
            from .metrics import install

            self._metrics = install(self)
        return self._metrics

    def _metrics_routes(self) -> list[Any]:
        metrics = self.metrics
        if metrics is None:
            return []

        async def scrape(request: Any) -> _StarletteResponse:
            body, content_type = metrics.exposition()
            return _StarletteResponse(body, headers={"Content-Type": content_type})

        return [Route(self.settings["metrics_endpoint"], scrape, methods=["GET"], name="metrics")]

    # AsyncAPI -------------------------------------------------------------------------------

    def server_message(
        self,
        type: str,
        *,
        schema: Any = None,
        description: str | None = None,
        request: bool = False,
        room: bool = False,
        endpoint: str | None = None,
    ) -> None:
        """Declare a message type the server sends on its own (with ``hub.broadcast``,
        ``ws.send`` or ``ws.request``), for the AsyncAPI document (``asyncapi()``).

        Declaring changes nothing in what is sent: it documents it.

        Args:
            type: The envelope's ``type``.
            schema: What its ``data`` is: any schema ``@app.socket`` accepts.
            description: One line for the document.
            request: It is sent with ``ws.request()``: the client answers ``response``
                or ``error`` with the same ``id``.
            room: It is published to rooms with history (it carries ``room``,
                ``offset`` and ``epoch``).
            endpoint: The message-type endpoint (default: the ``socket_path`` setting).

        Raises:
            ConfigurationError: if ``schema`` cannot be described, or the type is
                declared twice on the endpoint.
        """
        from .realtime.dispatch import check_schema

        check_schema(schema, f"server message {type!r}")
        declared = self._server_messages.setdefault(endpoint, {})
        if type in declared:
            raise ConfigurationError(f"server message {type!r} is already declared")
        declared[type] = ServerMessage(type, schema, description, request, room)

    def asyncapi(
        self,
        *,
        title: str | None = None,
        version: str = "1.0.0",
        description: str | None = None,
        servers: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The AsyncAPI 3.0 document of this app's WebSocket endpoints (see
        ``bocadillo.asyncapi`` and ``docs/realtime.md``).

        Args:
            title: The API's title (default: the app's name).
            version: The API's version.
            description: A description of the API.
            servers: AsyncAPI server objects by name (``{"local": {"host":
                "localhost:8000", "protocol": "ws"}}``).

        Returns:
            The document, as JSON-ready dicts and lists.
        """
        return asyncapi_document(
            self, title=title, version=version, description=description, servers=servers
        )

    def _asyncapi_routes(self) -> list[Any]:
        settings = self.settings
        routes: list[Any] = []
        if settings["asyncapi_endpoint"]:

            async def document(request: Any) -> _StarletteResponse:
                return _StarletteResponse(
                    dumps_bytes(self.asyncapi()), media_type="application/json"
                )

            routes.append(
                Route(settings["asyncapi_endpoint"], document, methods=["GET"], name="asyncapi")
            )
        if settings["asyncapi_page"]:

            async def page(request: Any) -> _StarletteResponse:
                return _StarletteResponse(
                    render_html(self.asyncapi()), media_type="text/html; charset=utf-8"
                )

            routes.append(
                Route(settings["asyncapi_page"], page, methods=["GET"], name="asyncapi_page")
            )
        return routes

    def _client_script_routes(self) -> list[Any]:
        path = self.settings["client_script"]
        return [client_script_route(path)] if path else []

    def url_for(self, name: str, /, **params: Any) -> URLPath:
        """The path of the route named ``name`` (``"recipe:view"`` inside a recipe).

        Raises:
            starlette.routing.NoMatchFound: if no route has that name and parameters.
        """
        return self.router.url_path_for(name, **params)

    def _build(self) -> ServerErrorMiddleware:
        settings = self.settings
        handlers = dict(self._error_handlers)
        app: ASGIApp = ErrorMiddleware(self.router, handlers)
        for middleware, link in self._middleware:
            link.app = app
            app = middleware
        if self._middleware:
            # Errors raised by the user middleware themselves (HTTPError, Redirect...) are
            # answered by the app's handlers as well.
            app = ErrorMiddleware(app, handlers)
        # Built-in middleware, innermost first: sessions, gzip, CORS, HSTS, allowed hosts.
        if settings["sessions"]:
            options = settings["sessions"] if isinstance(settings["sessions"], dict) else {}
            options = {k: v for k, v in options.items() if k != "secret_key"}
            app = SessionMiddleware(app, secret_key=settings["secret_key"], **options)
        if settings["gzip"]:
            app = GZipMiddleware(app, minimum_size=int(settings["gzip_min_size"]))
        if settings["cors"]:
            extra = settings["cors"] if isinstance(settings["cors"], dict) else {}
            app = CORSMiddleware(app, **{**CORS_DEFAULTS, **extra})
        if settings["hsts"]:
            app = HSTSMiddleware(app)
        hosts = list(settings["allowed_hosts"] or ["*"])
        if hosts != ["*"]:
            app = TrustedHostMiddleware(app, allowed_hosts=hosts)
        # Outermost, so every layer that reads the body reads it through the limit.
        app = BodyLimitMiddleware(app, settings["max_body_size"])
        metrics = self.metrics
        if metrics is not None:
            # Outside everything but the last-resort 500: it times whole requests.
            app = HTTPMetricsMiddleware(app, metrics)
        return ServerErrorMiddleware(
            app, handler=None if self.debug else internal_error_response, debug=self.debug
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        scope["app"] = self
        stack = self._stack
        if stack is None:
            try:
                stack = self._stack = self._build()
            except Exception as exc:
                if scope["type"] != "lifespan":
                    raise
                await _startup_failed(receive, send, exc)
                raise
        if scope["type"] == "http":
            await stack(scope, receive, send)
        else:
            # ServerErrorMiddleware handles only HTTP: skipping it keeps its frame off a
            # WebSocket for the connection's life (memory: see routing/compiler.py).
            await stack.app(scope, receive, send)

    def __repr__(self) -> str:
        return f"<App {self.name}>"


async def _startup_failed(receive: Receive, send: Send, exc: Exception) -> None:
    """The app cannot be built (a registration the checks could only make now, such as a
    handler parameter nothing provides): fail the startup, so that the server says why
    and exits, instead of serving a 500 for every request. The caller re-raises, as
    Starlette's lifespan does after a failed startup."""
    logger.error("the app cannot start: %s", exc)
    message = await receive()
    if message["type"] == "lifespan.startup":
        await send({"type": "lifespan.startup.failed", "message": f"{type(exc).__name__}: {exc}"})


async def _not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """No route matched: 404 for HTTP; for a WebSocket, close before accept, which the
    server turns into an HTTP 403 answer to the handshake.

    With the ``redirect_trailing_slash`` setting (the default), an HTTP path without a
    trailing slash that matches once the slash is added is redirected there (302).
    """
    if scope["type"] == "websocket":
        logger.warning("no WebSocket route matches %s: handshake refused (403)", scope["path"])
        await send({"type": "websocket.close", "code": HANDSHAKE_REJECTED_STATUS, "reason": ""})
        return
    path = scope["path"]
    app = scope.get("app")
    router = scope.get("router")
    if (
        not path.endswith("/")
        and isinstance(app, App)
        and router is not None
        and app.settings["redirect_trailing_slash"]
    ):
        slashed = {**scope, "path": path + "/"}
        if any(route.matches(slashed)[0] is not Match.NONE for route in router.routes):
            query = scope.get("query_string", b"").decode("latin-1")
            raise Redirect(path + "/" + (f"?{query}" if query else ""))
    raise HTTPError(404)
