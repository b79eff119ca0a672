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

    Raises:
        MissingDependency: if the ``httpx2`` package (a dependency of Bocadillo, which
            Starlette's test client sends its requests with) is not installed.
    """
    # Starlette's TestClient sends its requests with httpx2, a dependency of Bocadillo.
    # Without it Starlette raises a RuntimeError (or falls back to httpx with a warning):
    # only an install made with --no-deps lacks it, so say which package is missing.
    try:
        import httpx2  # noqa: F401
    except ImportError as exc:
        raise MissingDependency(
            "create_client() needs the httpx2 package, a dependency of bocadillo that is "
            "missing from this environment: pip install httpx2"
        ) from exc
    from starlette.testclient import TestClient

    kwargs.setdefault("base_url", "http://testserver")
    return TestClient(app, **kwargs)
