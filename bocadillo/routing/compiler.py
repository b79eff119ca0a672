"""Compiling an app: its registry (and included recipes) into Starlette routes.

``compile_routes`` walks a ``RouteRegistry`` recursively, with prefixes, and binds each
registered route to the app's providers (``HTTPRoute.bind``, ``WebSocketRoute.bind``,
``Dispatcher.bind``). It creates new endpoint objects and writes nothing onto what was
registered, so one recipe may be included in several apps. Starlette does the path
matching and routing (``starlette.routing.Router``, which also puts the matched route in
``scope["route"]``).
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any

from starlette.routing import (
    BaseRoute,
    Match,
    Mount as _StarletteMount,
    Route as _StarletteRoute,
    Router as _StarletteRouter,
    WebSocketRoute as _StarletteWebSocketRoute,
)

from ..errors import ConfigurationError
from ..injection import ProviderRegistry
from ..types import Receive, Scope, Send
from .http import HTTPEndpoint, HTTPRoute, MethodDispatch
from .patterns import WILDCARD, join
from .registry import RouteRegistry
from .websocket import WebSocketRoute

__all__ = ["AppRouter", "compile_routes"]


def compile_routes(
    registry: RouteRegistry,
    *,
    providers: ProviderRegistry,
    socket_path: str = "/ws",
    debug: bool = False,
) -> list[BaseRoute]:
    """Flatten a registry and its recipes into Starlette routes bound to ``providers``.

    Order: exact routes (the app's, then each recipe's), then mounts, then wildcard
    routes, the longest literal prefix first, so a wildcard never shadows a more
    specific route, mount or recipe.

    Raises:
        ConfigurationError: if recipes include each other in a cycle, for a missing or
            circular provider, or if a WebSocket route has the message-type endpoint's
            path (``socket_path``).
    """
    compiler = _Compiler(providers, socket_path, debug)
    compiler.collect(registry, "", None, ())
    compiler.wildcards.sort(key=lambda item: (-item[0], item[1]))
    return compiler.routes + [route for _, _, route in compiler.wildcards]


class _Compiler:
    def __init__(self, providers: ProviderRegistry, socket_path: str, debug: bool) -> None:
        self.providers = providers
        self.socket_path = socket_path
        self.debug = debug
        self.routes: list[BaseRoute] = []
        self.wildcards: list[tuple[int, int, BaseRoute]] = []

    def collect(
        self, registry: RouteRegistry, prefix: str, qualify: Any, seen: tuple[int, ...]
    ) -> None:
        if id(registry) in seen:
            raise ConfigurationError("recipes include each other in a cycle")
        seen = (*seen, id(registry))

        def name_of(name: str) -> str:
            local = registry._qualify(name)
            return str(qualify(local)) if qualify else local

        # A ``Router`` (0.18) joins its prefix literally: its "/" route under "/tacos" is
        # "/tacos/"; a ``Recipe``'s is "/tacos".
        as_written = getattr(registry, "joins_literally", False)
        self._http(registry._http_routes, prefix, name_of, as_written=as_written)
        ws_routes = list(registry._ws_routes)
        if None in registry._dispatchers:
            for route in ws_routes:
                if route.path == self.socket_path:
                    raise ConfigurationError(
                        f"WebSocket view {route.name!r} has the path {route.path}, which is "
                        "the message-type endpoint of the @socket handlers (the socket_path "
                        "setting): give the view another path, or set socket_path"
                    )
        for endpoint, dispatcher in registry._dispatchers.items():
            bound = dispatcher.bind(self.providers, debug=self.debug)
            route = WebSocketRoute(
                endpoint or self.socket_path,
                bound.serve,
                auto_accept=False,
                caught_close_codes=all,
                name=f"socket:{endpoint or self.socket_path}",
                hub_codec="envelope",
            )
            route.on_disconnect(bound.disconnected)
            ws_routes.append(route)
        for ws_route in ws_routes:
            self.routes.append(
                _CompiledWebSocketRoute(
                    join(prefix, ws_route.path),
                    endpoint=ws_route.bind(self.providers),
                    name=name_of(ws_route.name),
                )
            )
        for sub_prefix, recipe in registry._recipes:
            self.collect(recipe, prefix + sub_prefix, name_of, seen)
        for mount in registry._mounts:
            self.routes.append(
                _StarletteMount(join(prefix, mount.prefix), app=mount.app, name=mount.name)
            )

    def _http(
        self, http_routes: list[HTTPRoute], prefix: str, name_of: Any, *, as_written: bool = False
    ) -> None:
        # Function views sharing a path are served by one Starlette route, so a 405 lists
        # every method of the path in its Allow header.
        groups: dict[str, list[HTTPEndpoint]] = {}
        for route in http_routes:
            groups.setdefault(route.path, []).append(route.bind(self.providers))
        for path, group in groups.items():
            full_path = prefix + path if as_written else join(prefix, path)
            first, *others = group
            endpoint: Any = first if not others else MethodDispatch(group)
            methods: list[str] | None = None
            if all(e.route.methods is not None for e in group):
                methods = sorted({m for e in group for m in e.route.methods or ()})
            compiled = [
                _StarletteRoute(
                    full_path, endpoint=endpoint, methods=methods, name=name_of(first.route.name)
                )
            ]
            # The other views keep their names for url_for (they never match first).
            compiled += [
                _StarletteRoute(
                    full_path,
                    endpoint=e,
                    methods=e.route.methods,
                    name=name_of(e.route.name),
                )
                for e in others
            ]
            for item, endpoint_of in zip(compiled, [first, *others], strict=True):
                limit = endpoint_of.route.max_body_size
                if limit != "app":
                    # Read by the body-limit middleware from scope["route"].
                    item.max_body_size = limit  # type: ignore[attr-defined]
            if WILDCARD in path:
                literal = len(full_path.split("{" + WILDCARD)[0])
                self.wildcards.extend((literal, len(self.wildcards), item) for item in compiled)
            else:
                self.routes.extend(compiled)


# The two classes below keep coroutine frames off a WebSocket's path. Each frame between
# the server and a view lives as long as the connection: make bench's memory scenario
# (2,000 idle connections, 2026-11-30, quiet machine) measured 21.5 KiB per connection
# with them and the ServerErrorMiddleware skip in App.__call__, 22.8 KiB without (0.86
# and 0.91 of Starlette's); bench.micro's echo, 0-1% each.


class _CompiledWebSocketRoute(_StarletteWebSocketRoute):
    """Starlette's WebSocket route whose ``handle`` hands back the endpoint's coroutine
    instead of awaiting it in a frame of its own."""

    def handle(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        return self.app(scope, receive, send)


class AppRouter(_StarletteRouter):
    """Starlette's router, with WebSocket connections handed straight to their route.

    For a WebSocket scope this ``__call__`` finds the route itself (as ``Router.app``
    does, ``scope["route"]`` included) and returns the route's coroutine, so
    ``Router.__call__`` and ``Router.app`` keep no frames for the connection's life.
    Anything else (HTTP, lifespan, no full match, router middleware) goes through
    Starlette's own code.
    """

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:  # type: ignore[override]
        if scope["type"] == "websocket" and self.middleware_stack == self.app:
            if "router" not in scope:
                scope["router"] = self
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:
                    scope["route"] = route
                    scope.update(child_scope)
                    return route.handle(scope, receive, send)
        return self.middleware_stack(scope, receive, send)
