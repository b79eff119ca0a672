"""Route registration, shared by ``App`` and ``Recipe``.

``RouteRegistry`` records HTTP routes, WebSocket routes, message-type handlers, mounts
and included recipes, and checks each at registration. It never compiles anything and
nothing writes to what it records afterwards: ``compiler.py`` reads it to build each
app's Starlette routes.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar

from ..codecs import CaughtCloseCodes, Codec
from ..errors import ConfigurationError
from ..injection import global_provider_names
from ..realtime.dispatch import Dispatcher, SocketHandler
from ..realtime.limits import OverflowPolicy
from ..types import ASGIApp
from ..views import callable_name
from .http import BodyLimit, HTTPRoute
from .patterns import expand_pattern
from .websocket import WebSocketRoute

__all__ = ["MountEntry", "RouteRegistry"]

if TYPE_CHECKING:
    from typing_extensions import Unpack

    class WebSocketOptions(TypedDict, total=False):
        """The options of ``WebSocketRoute`` that ``websocket_route`` takes."""

        auto_accept: bool
        value_type: Codec | None
        receive_type: Codec
        send_type: Codec
        caught_close_codes: CaughtCloseCodes
        name: str | None
        overflow: OverflowPolicy | None
        outbox_limit: int | None


F = TypeVar("F", bound=Callable[..., Any])


class MountEntry:
    """An ASGI app served under a prefix."""

    def __init__(self, prefix: str, app: ASGIApp, name: str | None) -> None:
        self.prefix = prefix
        self.app = app
        self.name = name


class RouteRegistry:
    """Route registration shared by ``App`` and ``Recipe``."""

    def __init__(self) -> None:
        self._http_routes: list[HTTPRoute] = []
        self._ws_routes: list[WebSocketRoute] = []
        self._mounts: list[MountEntry] = []
        self._recipes: list[tuple[str, RouteRegistry]] = []
        #: Message-type endpoints by path (``None``: the app's ``socket_path``).
        self._dispatchers: dict[str | None, Dispatcher] = {}

    def _changed(self) -> None:
        """Called after every registration (the app drops its compiled router)."""

    def _provider_names(self) -> frozenset[str]:
        """The provider names known when a route is registered."""
        return global_provider_names()

    def _known_providers(self) -> frozenset[str]:
        """Every provider name known now: this registry's and those declared so far (an
        app that has built itself no longer reads later declarations, until it rebuilds)."""
        return self._provider_names() | global_provider_names()

    # HTTP -----------------------------------------------------------------------------------

    def route(
        self,
        pattern: str,
        *,
        methods: Collection[str] | None = None,
        name: str | None = None,
        max_body_size: BodyLimit = "app",
    ) -> Callable[[F], F]:
        """Register an HTTP view (a function or a class) for ``pattern``.

        Args:
            pattern: ``/items/{pk}``; ``{name:path}`` or a final ``*`` match the rest.
            methods: For function views, the allowed verbs (default ``["GET"]``, HEAD
                included). Class-based views serve the verbs they define.
            name: The route's name for ``url_for`` (defaults to the view's name).
            max_body_size: This route's request body limit in bytes (``None``: no limit;
                ``"app"``: the app's ``max_body_size`` setting).

        Raises:
            ExpectedAsync: if a handler is not ``async def``.
            ConfigurationError: for a bad pattern or a parameter that cannot be converted.
        """

        def decorate(view: F) -> F:
            self.add_route(pattern, view, methods=methods, name=name, max_body_size=max_body_size)
            return view

        return decorate

    def add_route(
        self,
        pattern: str,
        view: Any,
        *,
        methods: Collection[str] | None = None,
        name: str | None = None,
        max_body_size: BodyLimit = "app",
    ) -> HTTPRoute:
        """Register ``view`` for ``pattern`` (the non-decorator form of ``route``)."""
        route = HTTPRoute(
            pattern,
            view,
            methods=methods,
            name=name,
            providers=self._provider_names(),
            max_body_size=max_body_size,
        )
        for other in self._http_routes:
            if other.path == route.path:
                _check_no_overlap(route, other)
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
        self, pattern: str, **options: Unpack[WebSocketOptions]
    ) -> Callable[[Callable[..., Any]], WebSocketRoute]:
        """Register an async WebSocket view ``view(ws, **params)`` for ``pattern``.

        The options are ``WebSocketRoute``'s, with the same defaults:

        Args:
            pattern: As for ``route``; parameters are typed the same way.
            auto_accept: Accept before the view runs and close (1000) after it returns
                (default: true).
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
            self._check_ws_path_free(expand_pattern(pattern), f"websocket_route({pattern!r})")
            route = WebSocketRoute(pattern, view, providers=self._provider_names(), **options)
            self._ws_routes.append(route)
            self._changed()
            return route

        return decorate

    # Message-type routing ---------------------------------------------------------------------

    def _check_ws_path_free(self, path: str, what: str) -> None:
        """Raise if a WebSocket route or a message-type endpoint already serves ``path``.

        Raises:
            ConfigurationError: naming both.
        """
        for route in self._ws_routes:
            if route.path == path:
                raise ConfigurationError(
                    f"{what}: {path} is already served by WebSocket view {route.name!r}; "
                    "give one of them another path"
                )
        if path in self._dispatchers:
            raise ConfigurationError(
                f"{what}: {path} is already the message-type endpoint of @socket handlers; "
                "give the route another path (or the handlers another endpoint=)"
            )

    def _dispatcher(self, endpoint: str | None) -> Dispatcher:
        if endpoint is not None and not endpoint.startswith("/"):
            raise ConfigurationError(f"socket endpoint {endpoint!r} must start with '/'")
        dispatcher = self._dispatchers.get(endpoint)
        if dispatcher is None:
            if endpoint is not None:
                self._check_ws_path_free(endpoint, f"socket endpoint {endpoint!r}")
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
                a dataclass, a Pydantic model or a msgspec Struct (``data`` is then an
                instance of it).
            endpoint: The WebSocket path (default: the ``socket_path`` setting, ``/ws``).

        Raises:
            ConfigurationError: if the type already has a handler on that endpoint, or
                a parameter looks like a typo of a built-in name (``clientid``): a name
                that is neither built in nor a provider is checked at startup, since a
                provider may be declared after the handler.
        """

        def register(func: F) -> F:
            self._dispatcher(endpoint).add(type, func, schema, providers=self._known_providers())
            self._changed()
            return func

        return register

    def socket_connect(self, *, endpoint: str | None = None) -> Callable[[F], F]:
        """Run the decorated function (sync or async) when a client connects, before
        accept. Returning ``False`` refuses the client (HTTP 403); another non-None value
        is sent to it as ``{"type": "welcome", "data": value}``. Parameters are those of
        ``socket`` handlers (``data``, ``message``, ``type`` and ``id`` are None).

        Raises:
            ConfigurationError: for a parameter that looks like a typo of a built-in name.
        """

        def register(func: F) -> F:
            dispatcher = self._dispatcher(endpoint)
            dispatcher.connect_handlers.append(
                SocketHandler(
                    func,
                    what=f"socket_connect handler {callable_name(func)!r}",
                    providers=self._known_providers(),
                )
            )
            return func

        return register

    def socket_disconnect(self, *, endpoint: str | None = None) -> Callable[[F], F]:
        """Run the decorated function (sync or async) once when a client's connection
        ends, however it ended. Parameters are those of ``socket_connect`` handlers.

        Raises:
            ConfigurationError: for a parameter that looks like a typo of a built-in name.
        """

        def register(func: F) -> F:
            dispatcher = self._dispatcher(endpoint)
            dispatcher.disconnect_handlers.append(
                SocketHandler(
                    func,
                    what=f"socket_disconnect handler {callable_name(func)!r}",
                    providers=self._known_providers(),
                )
            )
            return func

        return register

    # Composition ----------------------------------------------------------------------------

    def mount(self, prefix: str, app: ASGIApp, name: str | None = None) -> None:
        """Serve any ASGI app (a Starlette app, a ``StaticFiles`` folder...) under ``prefix``.

        A prefix without its leading ``/`` gets one (``assets`` is ``/assets``).
        """
        if not prefix.startswith("/"):
            prefix = "/" + prefix
        self._mounts.append(MountEntry(prefix.rstrip("/"), app, name))
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


def _check_no_overlap(route: HTTPRoute, other: HTTPRoute) -> None:
    """Raise if two views registered on one path serve a method in common (the second
    would never be called).

    Raises:
        ConfigurationError: naming the path, the methods and the view already there.
    """
    mine, theirs = route.declared, other.declared
    if mine is None or theirs is None:
        common = "every method (a handle() catch-all)"
    else:
        shared = mine & theirs
        if not shared:
            return
        common = ", ".join(sorted(shared))
    raise ConfigurationError(
        f"{route.pattern}: {common} is already served by view {other.name!r}; "
        "register each method of a path once (merge the views, or change a path)"
    )
