"""Run hub calls on the app's event loop from a test, through the test client's portal."""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from starlette.testclient import TestClient

T = TypeVar("T")


def on_loop(client: TestClient, func: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    """Run ``func(*args, **kwargs)`` on the app's loop."""
    portal = client.portal
    assert portal is not None, "use `with create_client(app) as client:`"
    return portal.call(functools.partial(func, *args, **kwargs))


def awaited(client: TestClient, func: Callable[..., Awaitable[T]], *args: Any, **kwargs: Any) -> T:
    """Await ``func(*args, **kwargs)`` on the app's loop."""
    portal = client.portal
    assert portal is not None, "use `with create_client(app) as client:`"

    async def call() -> T:
        return await func(*args, **kwargs)

    return portal.call(call)
