"""``Redirect``: raise it in a view (or hook) to send the client elsewhere."""

from __future__ import annotations

from typing import Any

from .request import Request
from .response import Response, check_header

__all__ = ["Redirect", "redirect_handler"]


class Redirect(Exception):
    """Redirect the client; a signal, not an error.

    Args:
        url: Where to go (absolute or a path).
        name: Instead of ``url``, the name of a route (``"recipe:view"`` in a recipe);
            ``params`` fill its path parameters.
        permanent: Answer 301 (permanent) instead of 302 (found).
        status: Any other 3xx status, such as 303, 307 or 308.

    Raises:
        ValueError: with neither or both of ``url`` and ``name``, or a ``url`` containing
            CR, LF or NUL (it would split the response's ``Location`` header).
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        name: str | None = None,
        permanent: bool = False,
        status: int | None = None,
        **params: Any,
    ) -> None:
        if (url is None) == (name is None):
            raise ValueError("Redirect() takes a url or a route name=..., not both")
        if url is not None:
            check_header("location", url)
        super().__init__(url or name)
        self.url = url
        self.name = name
        self.params = params
        self.status = status or (301 if permanent else 302)


async def redirect_handler(req: Request, res: Response, exc: Redirect) -> None:
    """Answer a ``Redirect`` with its status and a ``Location`` header."""
    location = exc.url
    if location is None:
        assert exc.name is not None
        location = str(req.app.url_for(exc.name, **exc.params))
    res.status_code = exc.status
    res.headers["location"] = location
