"""``create_client``: Starlette's ``TestClient`` for Bocadillo apps."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import MissingDependency
from ..types import ASGIApp

if TYPE_CHECKING:
    from starlette.testclient import TestClient

__all__ = ["create_client"]


def create_client(app: ASGIApp, **kwargs: Any) -> TestClient:
    """Return a test client that calls ``app`` in-process, for HTTP and WebSockets.

    Use it as a context manager (``with create_client(app) as client:``) so that the
    lifespan runs and every request and WebSocket session shares one event loop.

    Args:
        app: The application.
        **kwargs: Passed to ``starlette.testclient.TestClient`` (for example
            ``raise_server_exceptions=False`` to see the 500 response instead of the error).
    """
    try:
        from starlette.testclient import TestClient
    except ImportError as exc:  # httpx2 is a test dependency, not a runtime one
        raise MissingDependency(
            "create_client() needs httpx2: pip install 'bocadillo[dev]'"
        ) from exc
    kwargs.setdefault("base_url", "http://testserver")
    return TestClient(app, **kwargs)
