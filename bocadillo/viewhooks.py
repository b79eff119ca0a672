"""``@before`` and ``@after`` hooks on HTTP views (``bocadillo.before``, ``bocadillo.after``).

A hook is ``hook(req, res, params, *args, **kwargs)``, sync or async, where ``params`` is
the dict of the view's converted parameters. Other parameters of the hook named after
providers are injected. A before-hook that raises (for example ``HTTPError``) stops the
view; an after-hook runs only when the view returned normally.

Hooks decorate a function view, a class-based view (every handler of the class), or a
single method of a class-based view. Stacked hooks run outermost first.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any, Literal, TypeVar

from .errors import ArgumentTypeError
from .views import HTTP_METHODS

__all__ = ["after", "before"]

T = TypeVar("T")
Hook = Callable[..., Any]


async def _call_hook(
    hook: Hook, req: Any, res: Any, params: dict[str, Any], args: Any, kw: Any
) -> None:
    extra = dict(kw)
    resolver = getattr(req, "providers", None)
    if resolver is not None:
        for name in _hook_provider_names(hook, len(args), kw):
            if name in resolver.registry:
                extra[name] = await resolver.get(name)
    result = hook(req, res, params, *args, **extra)
    if inspect.isawaitable(result):
        await result


@functools.lru_cache(maxsize=512)
def _signature_names(hook: Hook) -> tuple[str, ...]:
    try:
        return tuple(inspect.signature(hook).parameters)
    except (TypeError, ValueError):
        return ()


def _hook_provider_names(hook: Hook, n_args: int, kw: dict[str, Any]) -> tuple[str, ...]:
    names = _signature_names(hook)[3 + n_args :]
    return tuple(name for name in names if name not in kw)


def _wrap(
    kind: Literal["before", "after"], func: Callable[..., Any], hook: Hook, args: Any, kw: Any
) -> Any:
    @functools.wraps(func)
    async def wrapped(*call_args: Any, **params: Any) -> Any:
        req, res = call_args[-2], call_args[-1]
        if kind == "before":
            await _call_hook(hook, req, res, params, args, kw)
            return await func(*call_args, **params)
        result = await func(*call_args, **params)
        await _call_hook(hook, req, res, params, args, kw)
        return result

    return wrapped


def _decorate(kind: Literal["before", "after"], hook: Hook, args: Any, kw: Any) -> Callable[[T], T]:
    if not callable(hook):
        raise ArgumentTypeError(
            f"a {kind} hook must be a function or an object with a __call__ method, not {hook!r}"
        )

    def decorate(view: T) -> T:
        if inspect.isclass(view):
            for name in (*HTTP_METHODS, "handle"):
                # getattr, not __dict__: handlers inherited from a base class are hooked too
                # (the wrapper is set on this class only, so the base class is unchanged).
                method = getattr(view, name, None)
                if method is not None:
                    setattr(view, name, _wrap(kind, method, hook, args, kw))
            return view
        return _wrap(kind, view, hook, args, kw)  # type: ignore[arg-type, no-any-return]

    return decorate


def before(hook: Hook, *args: Any, **kwargs: Any) -> Callable[[T], T]:
    """Run ``hook(req, res, params, *args, **kwargs)`` before the decorated view.

    Raise in the hook (``raise HTTPError(401)``) to stop the view.

    Raises:
        ArgumentTypeError: if ``hook`` is not callable.
    """
    return _decorate("before", hook, args, kwargs)


def after(hook: Hook, *args: Any, **kwargs: Any) -> Callable[[T], T]:
    """Run ``hook(req, res, params, *args, **kwargs)`` after the decorated view returns.

    Raises:
        ArgumentTypeError: if ``hook`` is not callable.
    """
    return _decorate("after", hook, args, kwargs)
