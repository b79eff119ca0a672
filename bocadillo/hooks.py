"""Bocadillo 0.18's ``bocadillo.hooks``: ``hooks.before`` and ``hooks.after``.

They are ``bocadillo.before`` and ``bocadillo.after`` with 0.18's rule: a hook must be
asynchronous (a coroutine function, or an object whose ``__call__`` is one), and anything
else is refused when the view is decorated. ``bocadillo.before``/``after`` also take
plain functions.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any, TypeVar

from . import viewhooks
from .errors import ExpectedAsync

__all__ = ["after", "before"]

T = TypeVar("T")


def _check_async(hook: Any) -> None:
    if not callable(hook):
        return  # viewhooks refuses it, with its own message
    target = hook if inspect.isroutine(hook) else getattr(hook, "__call__", hook)  # noqa: B004
    if not inspect.iscoroutinefunction(target):
        name = getattr(hook, "__qualname__", None) or type(hook).__qualname__
        raise ExpectedAsync(
            f"hook {name} must be asynchronous: declare it (or its __call__) with "
            "'async def', or use bocadillo.before/bocadillo.after, which take plain "
            "functions too"
        )


def before(hook: Any, *args: Any, **kwargs: Any) -> Callable[[T], T]:
    """Run the asynchronous ``hook(req, res, params, *args, **kwargs)`` before the view.

    Raises:
        ExpectedAsync: if ``hook`` is not asynchronous.
        ArgumentTypeError: if ``hook`` is not callable.
    """
    _check_async(hook)
    return viewhooks.before(hook, *args, **kwargs)


def after(hook: Any, *args: Any, **kwargs: Any) -> Callable[[T], T]:
    """Run the asynchronous ``hook(req, res, params, *args, **kwargs)`` after the view.

    Raises:
        ExpectedAsync: if ``hook`` is not asynchronous.
        ArgumentTypeError: if ``hook`` is not callable.
    """
    _check_async(hook)
    return viewhooks.after(hook, *args, **kwargs)
