"""HTTP routes: a pattern and a view (a function or a class), and what serves them.

An ``HTTPRoute`` is what ``@app.route()`` registers; it never changes afterwards, so one
route (in a recipe, say) may serve several apps. Compiling an app binds each route to
that app's providers as an ``HTTPEndpoint``, the ASGI app Starlette's router calls.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import Any, Literal

from ..converters import ParameterError, ParameterPlan
from ..errors import ConfigurationError, HTTPError, InvalidData
from ..injection import ProviderRegistry, ProviderScope, Resolver, global_provider_names
from ..request import Request
from ..response import Response
from ..schemas import validate_model
from ..types import Receive, Scope, Send
from ..views import Handler, callable_name, view_handlers
from .patterns import compile_path_checked, expand_pattern, route_params

__all__ = ["BodyLimit", "HTTPEndpoint", "HTTPRoute", "MethodDispatch"]

#: A route's request body limit: bytes, ``None`` (no limit) or ``"app"`` (the setting).
BodyLimit = int | None | Literal["app"]


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
    """An HTTP route: a pattern and a view, as registered (immutable afterwards).

    The parameter plan of each handler is computed here, once, so that a parameter that
    cannot be converted fails at registration.
    """

    def __init__(
        self,
        pattern: str,
        view: Any,
        *,
        methods: Collection[str] | None = None,
        name: str | None = None,
        providers: Collection[str] = (),
        max_body_size: BodyLimit = "app",
    ) -> None:
        if (
            max_body_size != "app"
            and max_body_size is not None
            and (
                isinstance(max_body_size, bool)
                or not isinstance(max_body_size, int)
                or max_body_size < 0
            )
        ):
            raise ConfigurationError(
                "max_body_size must be a number of bytes >= 0, None or 'app', "
                f"not {max_body_size!r}"
            )
        #: The request body limit of this route (``"app"``: the app's setting).
        self.max_body_size = max_body_size
        self.pattern = pattern
        self.path = expand_pattern(pattern)
        compile_path_checked(self.path)
        self.view = view
        self.handlers, self.catch_all, owner = view_handlers(view, methods)
        self.name = name or callable_name(owner)
        self.route_params = route_params(self.path)
        # Parameters named after providers are not planned as query parameters, so
        # their annotation need not be convertible from a string.
        exclude = providers or global_provider_names()
        self.plans: dict[Handler, ParameterPlan] = {
            handler: ParameterPlan(
                handler, leading=2, route_params=self.route_params, exclude=exclude
            )
            for handler in self.all_handlers()
        }
        #: The verbs the view declares (``None``: any, through a ``handle`` catch-all).
        self.declared: frozenset[str] | None = (
            None if self.catch_all is not None else frozenset(self.handlers)
        )
        if "GET" in self.handlers and "HEAD" not in self.handlers:
            self.handlers["HEAD"] = self.handlers["GET"]

    def all_handlers(self) -> list[Handler]:
        """Every handler of the view, each once."""
        handlers = list(dict.fromkeys(self.handlers.values()))
        if self.catch_all is not None:
            handlers.append(self.catch_all)
        return handlers

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

    def bind(self, providers: ProviderRegistry) -> HTTPEndpoint:
        """This route as served by an app with ``providers`` (called when it compiles).

        Raises:
            ConfigurationError: for a missing or circular provider.
        """
        return HTTPEndpoint(self, providers)

    def __repr__(self) -> str:
        return f"<HTTPRoute {self.pattern} {self.name}>"


class HTTPEndpoint:
    """An ``HTTPRoute`` bound to one app's providers: the ASGI app serving it.

    Parameters named after the app's providers are injected instead of read from the
    query string.
    """

    __slots__ = ("_inject", "_plans", "_providers", "route")

    def __init__(self, route: HTTPRoute, providers: ProviderRegistry) -> None:
        self.route = route
        self._providers = providers if providers.definitions else None
        self._plans = dict(route.plans)
        self._inject: dict[Handler, ProviderScope] = {}
        for handler in route.all_handlers():
            plan = self._plans[handler]
            where = f"view {callable_name(handler)!r}"
            scope = ProviderScope.of(handler, providers, skip=plan.skipped, where=where)
            injected = frozenset(scope.injected)
            if injected & plan.names or not plan.excluded <= injected:
                self._plans[handler] = ParameterPlan(
                    handler, leading=2, route_params=route.route_params, exclude=scope.injected
                )
            if not scope.empty:
                self._inject[handler] = scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        req = Request(scope, receive, send)
        res = Response()
        handler = self.route.handler_for(scope["method"])
        plan = self._plans[handler]
        try:
            kwargs = plan.resolve(
                scope.get("path_params", {}), req.query_params if plan.uses_query else None
            )
        except ParameterError as exc:
            raise HTTPError(400, detail=exc.errors) from None
        if plan.body is not None:
            name, model = plan.body
            kwargs[name] = await _validated_body(req, model)
        try:
            if self._providers is None:
                await _respond(handler, req, res, kwargs, scope, receive, send)
                return
            resolver = req.providers = Resolver(self._providers)
            try:
                injection = self._inject.get(handler)
                if injection is not None:
                    kwargs.update(await injection.kwargs(resolver))
                await _respond(handler, req, res, kwargs, scope, receive, send)
            finally:
                await resolver.aclose()
        finally:
            if req._form is not None:
                await req.close()  # uploaded files are temporary files: close them

    def __repr__(self) -> str:
        return f"<HTTPEndpoint {self.route.pattern}>"


async def _validated_body(req: Request, model: Any) -> Any:
    """The request's JSON body, validated by ``model`` (a Pydantic model or msgspec Struct).

    Raises:
        HTTPError: 400 for a body that is not JSON, or that the model refuses (the
            detail names what is wrong by field path).
    """
    data = await req.json()
    try:
        return validate_model(model, data)
    except InvalidData as exc:
        raise HTTPError(400, detail=exc.details) from None


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


class MethodDispatch:
    """Serve several function views registered on one path, by method."""

    __slots__ = ("by_method", "catch_all")

    def __init__(self, endpoints: list[HTTPEndpoint]) -> None:
        self.by_method: dict[str, HTTPEndpoint] = {}
        self.catch_all: HTTPEndpoint | None = None
        for endpoint in endpoints:
            route = endpoint.route
            if route.declared is None:
                self.catch_all = self.catch_all or endpoint
            for method in route.handlers:
                if route.declared is not None and method in route.declared:
                    self.by_method[method] = endpoint  # declared beats an implicit HEAD
                else:
                    self.by_method.setdefault(method, endpoint)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self.by_method.get(scope["method"]) or self.catch_all
        if endpoint is None:
            allow = ", ".join(sorted(self.by_method))
            raise HTTPError(405, headers={"Allow": allow})
        await endpoint(scope, receive, send)
