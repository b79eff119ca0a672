"""Views: turning what users register into per-method handlers.

A view is an ``async def view(req, res, **params)`` function, or a class whose methods
are named after HTTP verbs (``get``, ``post``, ...); a ``handle`` method, if the class has
one, serves every verb instead. Every handler must be a coroutine function; a plain
function is refused at registration.
"""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from .errors import ConfigurationError, ExpectedAsync

__all__ = ["HTTP_METHODS", "Handler", "ensure_async", "view_handlers"]

#: The verbs a class-based view may implement, lower-case as method names.
HTTP_METHODS = ("get", "head", "post", "put", "patch", "delete", "options")

Handler = Callable[..., Awaitable[Any]]


def _name(obj: Any) -> str:
    return getattr(obj, "__qualname__", None) or getattr(obj, "__name__", None) or repr(obj)


def ensure_async(func: Any, what: str = "view") -> Handler:
    """Return ``func`` if it is a coroutine function.

    Raises:
        ExpectedAsync: if ``func`` is a plain function, with the fix in the message.
    """
    target = func.__call__ if not inspect.isroutine(func) and callable(func) else func
    if not inspect.iscoroutinefunction(target):
        raise ExpectedAsync(
            f"{what} {_name(func)} must be asynchronous: declare it with 'async def'"
        )
    return func  # type: ignore[no-any-return]


def view_handlers(
    view: Any, methods: Collection[str] | None
) -> tuple[dict[str, Handler], Handler | None, Any]:
    """Split a view into per-method handlers.

    Args:
        view: An async function, a class, or an instance of a class-based view.
        methods: For function views, the allowed verbs (default ``["GET"]``; the builtin
            ``all`` allows every verb, as in Bocadillo 0.18).

    Returns:
        ``(handlers, catch_all, owner)``: upper-case verb to handler (empty when there
        is a ``handle`` method), the ``handle`` method if any, and the view object whose
        name names the route.

    Raises:
        ExpectedAsync: if a handler is not a coroutine function.
        ConfigurationError: for ``methods=`` on a class-based view, or an unknown verb.
    """
    if inspect.isfunction(view) or inspect.ismethod(view):
        ensure_async(view)
        if methods is all:  # type: ignore[comparison-overlap]
            methods = HTTP_METHODS
        verbs = [m.upper() for m in (methods or ["GET"])]
        for verb in verbs:
            if verb.lower() not in HTTP_METHODS:
                raise ConfigurationError(f"unknown HTTP method {verb!r} for {_name(view)}")
        return {verb: view for verb in verbs}, None, view
    if methods is not None:
        raise ConfigurationError(
            f"methods= applies to function views; {_name(view)} is class-based: "
            "define one method per verb instead"
        )
    instance = view() if inspect.isclass(view) else view
    handlers: dict[str, Handler] = {}
    for verb in HTTP_METHODS:
        method = getattr(instance, verb, None)
        if method is not None:
            handlers[verb.upper()] = ensure_async(method, "view method")
    catch_all = getattr(instance, "handle", None)
    if catch_all is not None:
        # ``handle`` serves every verb, as in Bocadillo 0.18: the verb methods beside it
        # are never called (they are still checked, since they are still mistakes).
        return {}, ensure_async(catch_all, "view method"), view
    # A class without any handler is allowed (as in Bocadillo 0.18): every verb gets 405.
    return handlers, None, view


def callable_name(obj: Any) -> str:
    """The name a route takes from its view."""
    return getattr(obj, "__name__", None) or type(obj).__name__


def is_sync_callable(func: Callable[..., Any]) -> bool:
    """True if calling ``func`` does not return an awaitable."""
    target: Any = func if inspect.isroutine(func) else getattr(func, "__call__", func)  # noqa: B004
    return not inspect.iscoroutinefunction(target)
