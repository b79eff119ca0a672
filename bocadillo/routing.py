"""Routes and the decorators that register them.

``RouteRegistry`` is shared by ``App`` and ``Recipe``: it records HTTP routes, WebSocket
routes, mounts and included recipes. ``compile_routes`` turns a registry (recursively,
with prefixes) into Starlette ``Route``/``WebSocketRoute``/``Mount`` objects whose
endpoints are our ASGI route objects, so Starlette does the path matching.
"""

from __future__ import annotations

import inspect
import logging
import re
from collections.abc import Awaitable, Callable, Collection
from typing import Any, TypeVar

from starlette.routing import (
    BaseRoute,
    Match,
    Mount as _StarletteMount,
    Route as _StarletteRoute,
    Router as _StarletteRouter,
    WebSocketRoute as _StarletteWebSocketRoute,
    compile_path,
)
from starlette.websockets import WebSocketDisconnect

from .converters import ParameterError, ParameterPlan
from .errors import ConfigurationError, HTTPError
from .injection import ProviderRegistry, ProviderScope, Resolver, global_provider_names
from .realtime.dispatch import Dispatcher, SocketHandler, welcome_message
from .realtime.hub import Hub, MessageCodec
from .realtime.outbox import OverflowPolicy
from .request import Request
from .response import Response
from .types import ASGIApp, Receive, Scope, Send
from .views import Handler, callable_name, ensure_async, is_sync_callable, view_handlers
from .websockets import (
    CaughtCloseCodes,
    Codec,
    WebSocket,
    check_codec,
    normalize_caught_codes,
)

__all__ = [
    "AppRouter",
    "HTTPRoute",
    "RouteRegistry",
    "WebSocketRoute",
    "compile_routes",
    "expand_pattern",
]

logger = logging.getLogger("bocadillo.routing")
F = TypeVar("F", bound=Callable[..., Any])
_WILDCARD = "__wildcard__"
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-zA-Z_][a-zA-Z0-9_]*)?}")


def expand_pattern(pattern: str) -> str:
    """Turn a Bocadillo pattern into a Starlette path.

    ``*`` as a whole segment (or the whole pattern) matches the rest of the path,
    slashes included: ``/static/*`` matches ``/static/css/site.css``.

    Raises:
        ConfigurationError: if the pattern does not start with ``/`` (or is not ``*``).
    """
    if pattern == "*":
        return "/{" + _WILDCARD + ":path}"
    if not pattern.startswith("/"):
        raise ConfigurationError(f"route pattern {pattern!r} must start with '/'")
    parts = pattern.split("/")
    if "*" in parts[:-1]:
        raise ConfigurationError(f"'*' may only end a route pattern: {pattern!r}")
    if parts[-1] == "*":
        parts[-1] = "{" + _WILDCARD + ":path}"
    return "/".join(parts)


def route_params(path: str) -> set[str]:
    """The parameter names of a Starlette path."""
    return {name for name in _PARAM.findall(path) if name != _WILDCARD}


def _apply_result(res: Response, result: Any) -> bool:
    """Store a view's return value in ``res``. Returns False for a ready-made ASGI response."""
    if isinstance(result, (dict, list)):
        res.json = result
    elif isinstance(result, str):
        res.text = result
    elif isinstance(result, (bytes, bytearray)):
        res.content = bytes(result)
    elif callable(result):
        return False
    else:
        raise TypeError(
            f"a view returned {type(result).__name__}; return None, dict, list, str, bytes "
            "or a Starlette Response, or set attributes on res"
        )
    return True


class HTTPRoute:
    """An HTTP route: a pattern and a view, callable as an ASGI app.

    The parameter plan of each handler is computed here, once.
    """

    def __init__(
        self,
        pattern: str,
        view: Any,
        *,
        methods: Collection[str] | None = None,
        name: str | None = None,
        providers: Collection[str] = (),
    ) -> None:
        self.pattern = pattern
        self.path = expand_pattern(pattern)
        compile_path(self.path)  # fail early on a malformed pattern
        self.view = view
        self.handlers, self.catch_all, owner = view_handlers(view, methods)
        self.name = name or callable_name(owner)
        self._route_params = route_params(self.path)
        self._plans: dict[Handler, ParameterPlan] = {}
        for handler in self._all_handlers():
            # Parameters named after providers are not planned as query parameters, so
            # their annotation need not be convertible from a string.
            self._plans[handler] = ParameterPlan(
                handler,
                leading=2,
                route_params=self._route_params,
                exclude=providers or global_provider_names(),
            )
        self._inject: dict[Handler, ProviderScope] = {}
        self._providers: ProviderRegistry | None = None
        if "GET" in self.handlers and "HEAD" not in self.handlers:
            self.handlers["HEAD"] = self.handlers["GET"]

    def _all_handlers(self) -> list[Handler]:
        handlers = list(dict.fromkeys(self.handlers.values()))
        if self.catch_all is not None:
            handlers.append(self.catch_all)
        return handlers

    def prepare(self, providers: ProviderRegistry) -> None:
        """Bind the route to an app's providers (called when the app compiles its routes).

        Parameters named after providers are injected instead of read from the query.

        Raises:
            ConfigurationError: for a missing or circular provider.
        """
        self._providers = providers if providers.definitions else None
        self._inject = {}
        for handler in self._all_handlers():
            plan = self._plans[handler]
            where = f"view {callable_name(handler)!r}"
            scope = ProviderScope.of(handler, providers, skip=plan.skipped, where=where)
            injected = frozenset(scope.injected)
            if injected & plan.names or not plan.excluded <= injected:
                self._plans[handler] = ParameterPlan(
                    handler, leading=2, route_params=self._route_params, exclude=scope.injected
                )
            if not scope.empty:
                self._inject[handler] = scope

    @property
    def methods(self) -> list[str] | None:
        """The allowed verbs, or ``None`` when a ``handle`` catch-all accepts any verb."""
        return None if self.catch_all is not None else sorted(self.handlers)

    def handler_for(self, method: str) -> Handler:
        """The handler serving ``method``.

        Raises:
            HTTPError: 405 with an ``Allow`` header if no handler serves it.
        """
        handler = self.handlers.get(method) or self.catch_all
        if handler is None:
            allow = ", ".join(sorted(self.handlers))
            raise HTTPError(405, headers={"Allow": allow})
        return handler

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = Request(scope, receive, send)
        res = Response()
        handler = self.handler_for(scope["method"])
        plan = self._plans[handler]
        try:
            kwargs = plan.resolve(
                scope.get("path_params", {}), req.query_params if plan.uses_query else None
            )
        except ParameterError as exc:
            raise HTTPError(400, detail=exc.errors) from None
        try:
            if self._providers is None:
                await self._respond(handler, req, res, kwargs, scope, receive, send)
                return
            resolver = req.providers = Resolver(self._providers)
            try:
                injection = self._inject.get(handler)
                if injection is not None:
                    kwargs.update(await injection.kwargs(resolver))
                await self._respond(handler, req, res, kwargs, scope, receive, send)
            finally:
                await resolver.aclose()
        finally:
            if req._form is not None:
                await req.close()  # uploaded files are temporary files: close them

    @staticmethod
    async def _respond(
        handler: Handler,
        req: Request,
        res: Response,
        kwargs: dict[str, Any],
        scope: Scope,
        receive: Receive,
        send: Send,
    ) -> None:
        result = await handler(req, res, **kwargs)
        if result is not None and not _apply_result(res, result):
            await result(scope, receive, send)
            return
        await res(scope, receive, send)

    def __repr__(self) -> str:
        return f"<HTTPRoute {self.pattern} {self.name}>"


Hook = Callable[..., Any]


class WebSocketRoute:
    """A WebSocket route: a pattern, a view and its codecs, callable as an ASGI app.

    The object returned by ``@app.websocket_route()``; it is still callable like the view,
    and offers ``@route.on_connect`` and ``@route.on_disconnect`` hooks.
    """

    def __init__(
        self,
        pattern: str,
        view: Any,
        *,
        auto_accept: bool = True,
        value_type: Codec | None = None,
        receive_type: Codec = "text",
        send_type: Codec = "text",
        caught_close_codes: CaughtCloseCodes = (1000, 1001),
        name: str | None = None,
        providers: Collection[str] = (),
        overflow: OverflowPolicy | None = None,
        outbox_limit: int | None = None,
        hub_codec: MessageCodec | None = None,
    ) -> None:
        ensure_async(view, "WebSocket view")
        self.pattern = pattern
        self.path = expand_pattern(pattern)
        compile_path(self.path)
        self.view = view
        self.name = name or callable_name(view)
        if value_type is not None:
            receive_type = send_type = value_type
        self.receive_type = check_codec("receive_type", receive_type)
        self.send_type = check_codec("send_type", send_type)
        self.auto_accept = auto_accept
        self.caught_close_codes = normalize_caught_codes(caught_close_codes)
        #: Overflow policy and outbox size for this route (``None``: the app's settings).
        self.overflow = overflow
        self.outbox_limit = outbox_limit
        #: How hub deliveries are encoded for this route's connections.
        self.hub_codec: MessageCodec = hub_codec or self.send_type
        #: Set by the app when it compiles its routes.
        self.hub: Hub | None = None
        self.plan = ParameterPlan(
            view,
            leading=1,
            route_params=route_params(self.path),
            exclude=providers or global_provider_names(),
        )
        self._inject: ProviderScope | None = None
        self._providers: ProviderRegistry | None = None
        self._on_connect: list[Hook] = []
        self._on_disconnect: list[Hook] = []
        #: Set by the app: called with each new ``WebSocket`` before the view runs.
        self.connection_factory: Callable[
            [Scope, Receive, Send, WebSocketRoute, str | None], WebSocket
        ] = _default_factory
        self.__name__ = self.name
        self.__doc__ = getattr(view, "__doc__", None)

    def prepare(self, providers: ProviderRegistry) -> None:
        """Bind the route to an app's providers (see ``HTTPRoute.prepare``)."""
        self._providers = providers if providers.definitions else None
        where = f"WebSocket view {self.name!r}"
        scope = ProviderScope.of(self.view, providers, skip=self.plan.skipped, where=where)
        injected = frozenset(scope.injected)
        if injected & self.plan.names or not self.plan.excluded <= injected:
            self.plan = ParameterPlan(
                self.view,
                leading=1,
                route_params=route_params(self.path),
                exclude=scope.injected,
            )
        self._inject = None if scope.empty else scope

    def on_connect(self, hook: F) -> F:
        """Register ``hook(ws)`` (sync or async) to run right after accept, before the view.

        It may send, or close the connection to refuse the client (the view then does
        not run). A value it returns is sent with the route's send codec.
        """
        self._on_connect.append(hook)
        return hook

    def on_disconnect(self, hook: F) -> F:
        """Register ``hook(ws)`` (sync or async) to run once when an accepted connection ends,
        however it ended. ``ws.close_code`` tells the code."""
        self._on_disconnect.append(hook)
        return hook

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the view itself (the route stays usable as the function it decorates)."""
        return await self.view(*args, **kwargs)

    @property
    def asgi(self) -> ASGIApp:
        """This route as an ASGI app (what the router calls)."""
        return _ASGIEndpoint(self)

    async def _run_hook(self, hook: Hook, ws: WebSocket) -> Any:
        result = hook(ws) if _takes_argument(hook) else hook()
        if not is_sync_callable(hook):
            result = await result
        return result

    async def _after_accept(self, ws: WebSocket) -> None:
        for hook in self._on_connect:
            result = await self._run_hook(hook, ws)
            if ws.closed:
                return
            if result is not None:
                await ws.send(result)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run one connection: convert parameters, accept, run hooks and the view, close."""
        hub = self.hub
        reservation: list[str | None] = []
        conn_id = hub.new_id() if hub is not None and hub.id_generator is not None else None
        ws = self.connection_factory(scope, receive, send, self, conn_id)
        try:
            kwargs = self.plan.resolve(scope.get("path_params", {}), ws.query_params)
        except ParameterError as exc:
            logger.info("rejecting WebSocket %s: %s", scope.get("path"), exc)
            await ws.reject()
            return
        if hub is not None:
            if not hub.check_origin(ws.headers.get("origin")):
                hub.counters.rejected += 1
                logger.info("rejecting WebSocket from origin %r", ws.headers.get("origin"))
                await ws.reject()
                return
            ip = ws.client.host if ws.client else None
            refusal = hub.admission(ip)
            if refusal is not None:
                hub.counters.rejected += 1
                await ws.accept()
                await ws.close(refusal, "server busy" if refusal == 1013 else "shutting down")
                return
            # Hold the admitted slot until the connection registers (at accept) or ends,
            # so that connections waiting in a connect hook count against the caps.
            hub.reserve(ip)
            reservation = [ip]

            async def register(ws: WebSocket) -> None:
                hub.release(reservation.pop())
                await self._register(ws)

            ws.hub = hub
            ws.on_accept(register)
        if self._on_connect:
            ws.on_accept(self._after_accept)
        resolver: Resolver | None = None
        if self._providers is not None:
            resolver = ws.providers = Resolver(self._providers)
        try:
            if self._inject is not None and resolver is not None:
                kwargs.update(await self._inject.kwargs(resolver))
            if self.auto_accept:
                await ws.accept()
            if not ws.closed or not self.auto_accept:
                await self.view(ws, **kwargs)
        except WebSocketDisconnect as exc:
            if not ws.silences(exc):
                raise
        except Exception:
            await ws.ensure_closed(1011)
            raise
        else:
            await ws.ensure_closed(1000)
        finally:
            try:
                if ws.accepted:
                    await self._disconnected(ws)
            finally:
                if hub is not None:
                    if reservation:
                        hub.release(reservation.pop())
                    if ws.connection is not None:
                        hub.unregister(ws.id)
                if resolver is not None:
                    await resolver.aclose()

    async def _register(self, ws: WebSocket) -> None:
        hub = self.hub
        assert hub is not None
        conn = hub.register(
            ws.id,
            ws.raw_send,
            codec=self.hub_codec,
            close=ws.close_from_hub,
            path=ws.url.path,
            remote_address=ws.client.host if ws.client else None,
            user_data=ws.state._state,
            outbox_limit=self.outbox_limit,
            overflow=self.overflow,
        )
        ws.attach(conn)

    async def _disconnected(self, ws: WebSocket) -> None:
        for hook in self._on_disconnect:
            try:
                await self._run_hook(hook, ws)
            except Exception:
                logger.exception("on_disconnect hook %s failed", callable_name(hook))

    def __repr__(self) -> str:
        return f"<WebSocketRoute {self.pattern} {self.name}>"


class _ASGIEndpoint:
    """Wraps a ``WebSocketRoute`` so Starlette treats it as an ASGI app, not a function."""

    __slots__ = ("route",)

    def __init__(self, route: WebSocketRoute) -> None:
        self.route = route

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        return self.route.handle(scope, receive, send)  # no frame of its own


class _CompiledWebSocketRoute(_StarletteWebSocketRoute):
    """Starlette's WebSocket route whose ``handle`` hands back the endpoint's coroutine
    instead of awaiting it in a frame of its own."""

    def handle(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        return self.app(scope, receive, send)


class AppRouter(_StarletteRouter):
    """Starlette's router, with WebSocket connections handed straight to their route.

    Every coroutine frame between the server and a WebSocket view is resumed and
    suspended again for each message the view waits for, for as long as the connection
    lives. For a WebSocket scope this ``__call__`` finds the route itself and returns the
    route's coroutine, so ``Router.__call__`` and ``Router.app`` keep no frames on that
    path. Anything else (HTTP, lifespan, no full match, router middleware) goes through
    Starlette's own code unchanged.
    """

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        if scope["type"] == "websocket" and self.middleware_stack == self.app:
            if "router" not in scope:
                scope["router"] = self
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope.update(child_scope)
                    return route.handle(scope, receive, send)
        return self.middleware_stack(scope, receive, send)


def _takes_argument(func: Callable[..., Any]) -> bool:
    try:
        return bool(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return True


def _default_factory(
    scope: Scope, receive: Receive, send: Send, route: WebSocketRoute, conn_id: str | None
) -> WebSocket:
    return WebSocket(
        scope,
        receive,
        send,
        receive_type=route.receive_type,
        send_type=route.send_type,
        caught_close_codes=route.caught_close_codes,
        id=conn_id,
    )


class _MountEntry:
    def __init__(self, prefix: str, app: ASGIApp, name: str | None) -> None:
        self.prefix = prefix
        self.app = app
        self.name = name


class RouteRegistry:
    """Route registration shared by ``App`` and ``Recipe``."""

    def __init__(self) -> None:
        self._http_routes: list[HTTPRoute] = []
        self._ws_routes: list[WebSocketRoute] = []
        self._mounts: list[_MountEntry] = []
        self._recipes: list[tuple[str, RouteRegistry]] = []
        #: Message-type endpoints by path (``None``: the app's ``socket_path``).
        self._dispatchers: dict[str | None, Dispatcher] = {}

    def _changed(self) -> None:
        """Called after every registration (the app drops its compiled router)."""

    def _provider_names(self) -> frozenset[str]:
        """The provider names known when a route is registered."""
        return global_provider_names()

    # HTTP -----------------------------------------------------------------------------------

    def route(
        self, pattern: str, *, methods: Collection[str] | None = None, name: str | None = None
    ) -> Callable[[F], F]:
        """Register an HTTP view (a function or a class) for ``pattern``.

        Args:
            pattern: ``/items/{pk}``; ``{name:path}`` or a final ``*`` match the rest.
            methods: For function views, the allowed verbs (default ``["GET"]``, HEAD
                included). Class-based views serve the verbs they define.
            name: The route's name for ``url_for`` (defaults to the view's name).

        Raises:
            ExpectedAsync: if a handler is not ``async def``.
            ConfigurationError: for a bad pattern or a parameter that cannot be converted.
        """

        def decorate(view: F) -> F:
            self.add_route(pattern, view, methods=methods, name=name)
            return view

        return decorate

    def add_route(
        self,
        pattern: str,
        view: Any,
        *,
        methods: Collection[str] | None = None,
        name: str | None = None,
    ) -> HTTPRoute:
        """Register ``view`` for ``pattern`` (the non-decorator form of ``route``)."""
        route = HTTPRoute(
            pattern, view, methods=methods, name=name, providers=self._provider_names()
        )
        self._http_routes.append(route)
        self._changed()
        return route

    def _verb(self, verb: str, pattern: str, name: str | None) -> Callable[[F], F]:
        return self.route(pattern, methods=[verb], name=name)

    def get(self, pattern: str, *, name: str | None = None) -> Callable[[F], F]:
        """Register a GET (and HEAD) view."""
        return self._verb("GET", pattern, name)

    def post(self, pattern: str, *, name: str | None = None) -> Callable[[F], F]:
        """Register a POST view."""
        return self._verb("POST", pattern, name)

    def put(self, pattern: str, *, name: str | None = None) -> Callable[[F], F]:
        """Register a PUT view."""
        return self._verb("PUT", pattern, name)

    def patch(self, pattern: str, *, name: str | None = None) -> Callable[[F], F]:
        """Register a PATCH view."""
        return self._verb("PATCH", pattern, name)

    def delete(self, pattern: str, *, name: str | None = None) -> Callable[[F], F]:
        """Register a DELETE view."""
        return self._verb("DELETE", pattern, name)

    def options(self, pattern: str, *, name: str | None = None) -> Callable[[F], F]:
        """Register an OPTIONS view."""
        return self._verb("OPTIONS", pattern, name)

    def head(self, pattern: str, *, name: str | None = None) -> Callable[[F], F]:
        """Register a HEAD view."""
        return self._verb("HEAD", pattern, name)

    # WebSockets -----------------------------------------------------------------------------

    def websocket_route(
        self,
        pattern: str,
        *,
        auto_accept: bool = True,
        value_type: Codec | None = None,
        receive_type: Codec = "text",
        send_type: Codec = "text",
        caught_close_codes: CaughtCloseCodes = (1000, 1001),
        name: str | None = None,
        overflow: OverflowPolicy | None = None,
        outbox_limit: int | None = None,
    ) -> Callable[[Callable[..., Any]], WebSocketRoute]:
        """Register an async WebSocket view ``view(ws, **params)`` for ``pattern``.

        Args:
            pattern: As for ``route``; parameters are typed the same way.
            auto_accept: Accept before the view runs and close (1000) after it returns.
            value_type: Sets both ``receive_type`` and ``send_type``.
            receive_type: Codec of ``ws.receive()``: ``"text"``, ``"bytes"``, ``"json"``.
            send_type: Codec of ``ws.send()``.
            caught_close_codes: Client close codes that end the view silently; ``all``
                for every code, ``()`` for none.
            name: The route's name for ``url_for``.
            overflow: What to do when a slow client's outbox is full: ``"drop_oldest"``,
                ``"drop_newest"`` or ``"close"`` (1013). Default: the app's setting.
            outbox_limit: Messages queued for a slow client (default: the app's setting).

        Returns:
            A decorator returning the ``WebSocketRoute`` (it has ``on_connect`` and
            ``on_disconnect``).

        Raises:
            ExpectedAsync: if the view is not ``async def``.
            ConfigurationError: for a bad codec, pattern or parameter annotation.
        """

        def decorate(view: Callable[..., Any]) -> WebSocketRoute:
            route = WebSocketRoute(
                pattern,
                view,
                auto_accept=auto_accept,
                value_type=value_type,
                receive_type=receive_type,
                send_type=send_type,
                caught_close_codes=caught_close_codes,
                name=name,
                providers=self._provider_names(),
                overflow=overflow,
                outbox_limit=outbox_limit,
            )
            self._ws_routes.append(route)
            self._changed()
            return route

        return decorate

    # Message-type routing ---------------------------------------------------------------------

    def _dispatcher(self, endpoint: str | None) -> Dispatcher:
        if endpoint is not None and not endpoint.startswith("/"):
            raise ConfigurationError(f"socket endpoint {endpoint!r} must start with '/'")
        dispatcher = self._dispatchers.get(endpoint)
        if dispatcher is None:
            dispatcher = self._dispatchers[endpoint] = Dispatcher(endpoint or "")
            self._changed()
        return dispatcher

    def socket(
        self, type: str, *, schema: Any = None, endpoint: str | None = None
    ) -> Callable[[F], F]:
        """Handle client messages ``{"type": type, "data": ..., "id": ...}``.

        The handler (sync or async) gets its parameters by name: ``data``, ``ws``,
        ``client_id``, ``message``, ``type``, ``id``, ``hub``, or a provider. What it
        returns is sent back as ``{"type": "response", "data": ..., "id": ...}``.

        Args:
            type: The message type.
            schema: Validate ``data`` first: a typesystem ``Schema`` instance or field,
                or a dataclass (``data`` is then an instance of it).
            endpoint: The WebSocket path (default: the ``socket_path`` setting, ``/ws``).

        Raises:
            ConfigurationError: if the type already has a handler on that endpoint.
        """

        def register(func: F) -> F:
            self._dispatcher(endpoint).add(type, func, schema)
            self._changed()
            return func

        return register

    def socket_connect(self, *, endpoint: str | None = None) -> Callable[[F], F]:
        """Run the decorated function (sync or async) when a client connects, before
        accept. Returning ``False`` refuses the client (HTTP 403); another non-None value
        is sent to it as ``{"type": "welcome", "data": value}``."""

        def register(func: F) -> F:
            dispatcher = self._dispatcher(endpoint)
            dispatcher.connect_handlers.append(
                SocketHandler(func, what=f"socket_connect handler {callable_name(func)!r}")
            )
            return func

        return register

    def socket_disconnect(self, *, endpoint: str | None = None) -> Callable[[F], F]:
        """Run the decorated function (sync or async) once when a client's connection
        ends, however it ended."""

        def register(func: F) -> F:
            dispatcher = self._dispatcher(endpoint)
            dispatcher.disconnect_handlers.append(
                SocketHandler(func, what=f"socket_disconnect handler {callable_name(func)!r}")
            )
            return func

        return register

    # Composition ----------------------------------------------------------------------------

    def mount(self, prefix: str, app: ASGIApp, name: str | None = None) -> None:
        """Serve any ASGI app (a Starlette app, a ``StaticFiles`` folder...) under ``prefix``.

        Raises:
            ConfigurationError: if ``prefix`` does not start with ``/``.
        """
        if not prefix.startswith("/"):
            raise ConfigurationError(f"mount prefix {prefix!r} must start with '/'")
        self._mounts.append(_MountEntry(prefix.rstrip("/"), app, name))
        self._changed()

    def include(self, recipe: RouteRegistry, prefix: str | None = None) -> None:
        """Include a ``Recipe``'s routes under its prefix (or ``prefix``)."""
        if recipe is self:
            raise ConfigurationError("a recipe cannot include itself")
        chosen = prefix if prefix is not None else getattr(recipe, "prefix", "")
        if chosen and not chosen.startswith("/"):
            raise ConfigurationError(f"recipe prefix {chosen!r} must start with '/'")
        self._recipes.append((chosen.rstrip("/"), recipe))
        self._changed()

    recipe = include

    def _qualify(self, name: str) -> str:
        return name


def compile_routes(
    registry: RouteRegistry,
    *,
    providers: ProviderRegistry | None = None,
    configure_ws: Callable[[WebSocketRoute], None] | None = None,
    socket_path: str = "/ws",
) -> list[BaseRoute]:
    """Flatten a registry and its recipes into Starlette routes.

    Order: exact routes (the app's, then each recipe's), then mounts, then wildcard
    routes, the longest literal prefix first, so a wildcard never shadows a more
    specific route, mount or recipe.

    Raises:
        ConfigurationError: if recipes include each other in a cycle.
    """
    routes: list[BaseRoute] = []
    wildcards: list[tuple[int, int, BaseRoute]] = []
    _collect(registry, routes, wildcards, providers, configure_ws, "", None, (), socket_path)
    wildcards.sort(key=lambda item: (-item[0], item[1]))
    return routes + [route for _, _, route in wildcards]


def _collect(
    registry: RouteRegistry,
    routes: list[BaseRoute],
    wildcards: list[tuple[int, int, BaseRoute]],
    providers: ProviderRegistry | None,
    configure_ws: Callable[[WebSocketRoute], None] | None,
    prefix: str,
    qualify: Callable[[str], str] | None,
    seen: tuple[int, ...],
    socket_path: str,
) -> None:
    if id(registry) in seen:
        raise ConfigurationError("recipes include each other in a cycle")
    seen = (*seen, id(registry))

    def name_of(name: str) -> str:
        local = registry._qualify(name)
        return qualify(local) if qualify else local

    # Function views sharing a path are served by one Starlette route, so a 405 lists
    # every method of the path in its Allow header.
    groups: dict[str, list[HTTPRoute]] = {}
    for route in registry._http_routes:
        if providers is not None:
            route.prepare(providers)
        groups.setdefault(route.path, []).append(route)
    for path, group in groups.items():
        full_path = _join(prefix, path)
        first, *others = group
        endpoint: Any = first if not others else _MethodDispatch(group)
        methods: list[str] | None = None
        if all(route.methods is not None for route in group):
            methods = sorted({m for route in group for m in route.methods or ()})
        compiled = [
            _StarletteRoute(full_path, endpoint=endpoint, methods=methods, name=name_of(first.name))
        ]
        # The other views keep their names for url_for (they never match first).
        compiled += [
            _StarletteRoute(
                full_path, endpoint=route, methods=route.methods, name=name_of(route.name)
            )
            for route in others
        ]
        if _WILDCARD in path:
            literal = len(full_path.split("{" + _WILDCARD)[0])
            wildcards.extend((literal, len(wildcards), item) for item in compiled)
        else:
            routes.extend(compiled)
    ws_routes = list(registry._ws_routes)
    for endpoint, dispatcher in registry._dispatchers.items():
        if providers is not None:
            dispatcher.prepare(providers)
        ws_routes.append(_dispatcher_route(dispatcher, endpoint or socket_path))
    for ws_route in ws_routes:
        if providers is not None:
            ws_route.prepare(providers)
        if configure_ws is not None:
            configure_ws(ws_route)
        routes.append(
            _CompiledWebSocketRoute(
                _join(prefix, ws_route.path),
                endpoint=ws_route.asgi,
                name=name_of(ws_route.name),
            )
        )
    for sub_prefix, recipe in registry._recipes:
        _collect(
            recipe,
            routes,
            wildcards,
            providers,
            configure_ws,
            prefix + sub_prefix,
            name_of,
            seen,
            socket_path,
        )
    for mount in registry._mounts:
        routes.append(_StarletteMount(_join(prefix, mount.prefix), app=mount.app, name=mount.name))


def _dispatcher_route(dispatcher: Dispatcher, path: str) -> WebSocketRoute:
    """The WebSocket route serving a message-type endpoint (made once per dispatcher)."""
    route: WebSocketRoute | None = getattr(dispatcher, "route", None)
    if route is not None and route.pattern == path:
        return route

    async def serve(ws: WebSocket) -> None:
        admitted, welcome = await dispatcher.connect(ws)
        if not admitted:
            await ws.reject()
            return
        await ws.accept()
        for value in welcome:
            await ws.send_text(welcome_message(value))
        while True:
            frame = await ws.receive_frame()
            if frame is None:
                continue  # refused by a limit; the client got an error envelope
            reply = await dispatcher.handle(ws, frame)
            if reply is not None:
                await ws.send_text(reply)

    route = WebSocketRoute(
        path,
        serve,
        auto_accept=False,
        caught_close_codes=all,
        name=f"socket:{path}",
        hub_codec="envelope",
    )
    route.on_disconnect(dispatcher.disconnected)
    dispatcher.route = route  # type: ignore[attr-defined]
    return route


class _MethodDispatch:
    """Serve several function views registered on one path, by method."""

    def __init__(self, routes: list[HTTPRoute]) -> None:
        self.by_method: dict[str, HTTPRoute] = {}
        self.catch_all: HTTPRoute | None = None
        for route in routes:
            if route.methods is None:
                self.catch_all = self.catch_all or route
            for method in route.handlers:
                self.by_method.setdefault(method, route)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self.by_method.get(scope["method"]) or self.catch_all
        if route is None:
            allow = ", ".join(sorted(self.by_method))
            raise HTTPError(405, headers={"Allow": allow})
        await route(scope, receive, send)


def _join(prefix: str, path: str) -> str:
    if not prefix:
        return path
    if path == "/":
        return prefix
    return prefix + path
