"""``create_client``: Starlette's ``TestClient`` for Bocadillo apps, which also takes the
spellings of requests that Bocadillo 0.18's test client took (see ``testclient.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..errors import MissingDependency
from ..types import ASGIApp

if TYPE_CHECKING:
    from .testclient import TestClient

__all__ = ["create_client"]


def create_client(app: ASGIApp, **kwargs: Any) -> TestClient:
    """Return a test client that calls ``app`` in-process, for HTTP and WebSockets.

    Use it as a context manager (``with create_client(app) as client:``) so that the
    lifespan runs and every request and WebSocket session shares one event loop.

    The client is Starlette's (an ``httpx2.Client``), which also takes the keywords of
    requests that the test client of Bocadillo 0.18 took, so a 0.18 test suite runs
    unchanged: ``allow_redirects=`` (``follow_redirects=``), ``data=`` on any verb (a
    mapping is a form; text, bytes or an iterable of either is the body) and
    ``stream=True`` (the body is read as the test iterates it; ``iter_lines()`` and
    ``iter_content()`` yield bytes). See ``bocadillo.testing.testclient.TestClient``.

    Args:
        app: The application.
        **kwargs: Passed to ``starlette.testclient.TestClient`` (for example
            ``raise_server_exceptions=False`` to see the 500 response instead of the error).

    Returns:
        A ``bocadillo.testing.testclient.TestClient``, a subclass of Starlette's.

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
    from .testclient import TestClient

    kwargs.setdefault("base_url", "http://testserver")
    return TestClient(app, **kwargs)
