"""WebSocket routes: a pattern, a view and its codecs, and what serves one connection.

A ``WebSocketRoute`` is what ``@app.websocket_route()`` registers (with its
``on_connect``/``on_disconnect`` hooks); compiling an app binds it to the app's providers
as a ``WebSocketEndpoint``. Serving a connection, the endpoint converts the parameters,
then hands the connection's life to the app's hub: ``async with hub.session(...)``
admits, registers at accept and unregisters at the end, whatever ends it.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
from collections.abc import Callable, Collection
from typing import Any, TypeVar

from starlette.websockets import WebSocketDisconnect

from ..closecodes import CloseCode
from ..codecs import CaughtCloseCodes, Codec, check_codec, normalize_caught_codes
from ..converters import ParameterError, ParameterPlan
from ..injection import ProviderRegistry, ProviderScope, Resolver, global_provider_names
from ..realtime.delivery import MessageCodec
from ..realtime.limits import OverflowPolicy
from ..types import Receive, Scope, Send
from ..views import callable_name, ensure_async, is_sync_callable
from ..websockets import WebSocket
from .patterns import compile_path_checked, expand_pattern, route_params

__all__ = ["WebSocketEndpoint", "WebSocketRoute"]

logger = logging.getLogger("bocadillo.routing")
F = TypeVar("F", bound=Callable[..., Any])
Hook = Callable[..., Any]


class WebSocketRoute:
    """A WebSocket route: a pattern, a view and its codecs.

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
        caught_close_codes: CaughtCloseCodes = (
            CloseCode.NORMAL_CLOSURE,
            CloseCode.GOING_AWAY,
        ),
        name: str | None = None,
        providers: Collection[str] = (),
        overflow: OverflowPolicy | None = None,
        outbox_limit: int | None = None,
        hub_codec: MessageCodec | None = None,
    ) -> None:
        ensure_async(view, "WebSocket view")
        self.pattern = pattern
        self.path = expand_pattern(pattern)
        compile_path_checked(self.path)
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
        self.hub_codec: MessageCodec = hub_codec or (
            "text" if self.send_type == "event" else self.send_type
        )
        self.plan = ParameterPlan(
            view,
            leading=1,
            route_params=route_params(self.path),
            exclude=providers or global_provider_names(),
        )
        self.connect_hooks: list[Hook] = []
        self.disconnect_hooks: list[Hook] = []
        self.__name__ = self.name
        self.__doc__ = getattr(view, "__doc__", None)

    def on_connect(self, hook: F) -> F:
        """Register ``hook(ws)`` (sync or async) to run right after accept, before the view.

        It may send, or close the connection to refuse the client (the view then does
        not run). A value it returns is sent with the route's send codec.
        """
        self.connect_hooks.append(hook)
        return hook

    def on_disconnect(self, hook: F) -> F:
        """Register ``hook(ws)`` (sync or async) to run once when an accepted connection ends,
        however it ended. ``ws.close_code`` tells the code."""
        self.disconnect_hooks.append(hook)
        return hook

    async def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the view itself (the route stays usable as the function it decorates)."""
        return await self.view(*args, **kwargs)

    def bind(self, providers: ProviderRegistry) -> WebSocketEndpoint:
        """This route as served by an app with ``providers`` (called when it compiles).

        Raises:
            ConfigurationError: for a missing or circular provider.
        """
        return WebSocketEndpoint(self, providers)

    def __repr__(self) -> str:
        return f"<WebSocketRoute {self.pattern} {self.name}>"


#: Seconds a failed view waits for the client to answer its 1011 close before the error
#: goes on to the server.
_CLOSE_ANSWER_TIMEOUT = 5.0


class WebSocketEndpoint:
    """A ``WebSocketRoute`` bound to one app's providers: the ASGI app serving it."""

    __slots__ = ("_inject", "_plan", "_providers", "route")

    def __init__(self, route: WebSocketRoute, providers: ProviderRegistry) -> None:
        self.route = route
        self._providers = providers if providers.definitions else None
        plan = route.plan
        where = f"WebSocket view {route.name!r}"
        scope = ProviderScope.of(route.view, providers, skip=plan.skipped, where=where)
        injected = frozenset(scope.injected)
        if injected & plan.names or not plan.excluded <= injected:
            plan = ParameterPlan(
                route.view,
                leading=1,
                route_params=route_params(route.path),
                exclude=scope.injected,
            )
        self._plan = plan
        self._inject = None if scope.empty else scope

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one connection: parameters, admission, accept, hooks, the view, the end."""
        route = self.route
        hub = scope["app"].hub
        ws = WebSocket(
            scope,
            receive,
            send,
            receive_type=route.receive_type,
            send_type=route.send_type,
            caught_close_codes=route.caught_close_codes,
            id=hub.new_id(),
        )
        try:
            kwargs = self._plan.resolve(scope.get("path_params", {}), ws.query_params)
        except ParameterError as exc:
            logger.info("rejecting WebSocket %s: %s", scope.get("path"), exc)
            await ws.reject()
            return
        session = hub.session(
            ws.id,
            send,
            codec=route.hub_codec,
            close=ws._close_from_hub,
            path=ws.url.path,
            remote_address=ws.client.host if ws.client else None,
            user_data=ws.state._state,
            outbox_limit=route.outbox_limit,
            overflow=route.overflow,
        )
        headers = ws.headers
        refusal = session.admit(headers.get("origin"), headers.get("host"))
        if refusal is not None:
            if refusal.close is None:
                await ws.reject()
            else:
                await ws.accept()
                await ws.close(refusal.close, refusal.reason)
            return
        ws.hub = hub
        ws._session = session
        if route.connect_hooks:
            ws._on_accept = self._after_accept
        async with session:
            try:
                await self._serve(ws, kwargs)
            except asyncio.CancelledError:
                if not session.aborted:
                    raise
                # The hub gave up on a client that reads nothing (``Hub._force_close``):
                # end quietly; the server drops the connection.

    async def _serve(self, ws: WebSocket, kwargs: dict[str, Any]) -> None:
        route = self.route
        resolver: Resolver | None = None
        if self._providers is not None:
            resolver = ws.providers = Resolver(self._providers)
        try:
            if self._inject is not None and resolver is not None:
                kwargs.update(await self._inject.kwargs(resolver))
            if route.auto_accept:
                await ws.accept()
            if not ws.closed or not route.auto_accept:
                await route.view(ws, **kwargs)
        except WebSocketDisconnect as exc:
            if not ws.silences(exc):
                raise
        except Exception:
            await ws.ensure_closed(CloseCode.INTERNAL_ERROR)
            # The error goes on to the server (which logs it) only once the client has
            # seen the 1011 close (or the refused handshake): raising at once may drop the
            # connection before the close is out.
            await ws._wait_peer_closed(_CLOSE_ANSWER_TIMEOUT)
            raise
        else:
            await ws.ensure_closed(CloseCode.NORMAL_CLOSURE)
        finally:
            try:
                if ws.accepted:
                    await self._disconnected(ws)
            finally:
                if resolver is not None:
                    await resolver.aclose()

    async def _after_accept(self, ws: WebSocket) -> None:
        for hook in self.route.connect_hooks:
            result = await _run_hook(hook, ws)
            if ws.closed:
                return
            if result is not None:
                await ws.send(result)

    async def _disconnected(self, ws: WebSocket) -> None:
        for hook in self.route.disconnect_hooks:
            try:
                await _run_hook(hook, ws)
            except Exception:
                logger.exception("on_disconnect hook %s failed", callable_name(hook))

    def __repr__(self) -> str:
        return f"<WebSocketEndpoint {self.route.pattern}>"


async def _run_hook(hook: Hook, ws: WebSocket) -> Any:
    result = hook(ws) if _takes_argument(hook) else hook()
    if not is_sync_callable(hook):
        result = await result
    return result


def _takes_argument(func: Callable[..., Any]) -> bool:
    try:
        return bool(inspect.signature(func).parameters)
    except (TypeError, ValueError):
        return True
