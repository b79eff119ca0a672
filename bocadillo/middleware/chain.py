"""The user middleware of an app: each built once, when it is added, and linked into the
stack whenever the app (re)builds it.

``app.add_middleware(cls, **options)`` calls ``cls(inner, **options)`` at once, with a
``Link`` as ``inner``; building the app points each link at the layer below it. So a
middleware is constructed exactly once, its constructor's errors show where it was added,
and an ASGI 2 middleware is refused there.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable
from typing import Any

from ..errors import ConfigurationError
from ..types import ASGIApp, Receive, Scope, Send

__all__ = ["Link", "build_middleware"]


class Link:
    """The inner app of a user middleware: forwards to the layer set by the app's build."""

    __slots__ = ("app",)

    def __init__(self) -> None:
        self.app: ASGIApp | None = None

    def __call__(self, scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
        # A plain function returning the next layer's awaitable: no frame of its own.
        if self.app is None:
            raise ConfigurationError("this middleware belongs to an app that is not built yet")
        return self.app(scope, receive, send)


def build_middleware(
    factory: Callable[..., ASGIApp], args: tuple[Any, ...], kwargs: dict[str, Any]
) -> tuple[ASGIApp, Link]:
    """Build ``factory(link, *args, **kwargs)`` and check that it speaks ASGI 3.

    Returns:
        The middleware and the link to point at its inner app.

    Raises:
        ConfigurationError: if the middleware is an ASGI 2 one (``__call__(scope)``
            returning an app), with how to upgrade it.
    """
    link = Link()
    middleware = factory(link, *args, **kwargs)
    if _is_asgi2(middleware):
        name = getattr(factory, "__qualname__", repr(factory))
        raise ConfigurationError(
            f"{name} is an ASGI2 middleware (__call__(scope)), which is not supported: "
            "please upgrade it to ASGI3, whose single asynchronous call takes "
            "(scope, receive, send)"
        )
    return middleware, link


def _is_asgi2(middleware: Any) -> bool:
    call = middleware if inspect.isroutine(middleware) else getattr(middleware, "__call__", None)  # noqa: B004
    if call is None:
        return False
    try:
        params = inspect.signature(call).parameters.values()
    except (TypeError, ValueError):
        return False
    if any(p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in params):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 1
