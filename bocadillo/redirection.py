"""``Redirect``: raise it in a view (or hook) to send the client elsewhere.

The class lives in ``errors.py`` with every other exception; this module answers it.
"""

from __future__ import annotations

from .errors import Redirect
from .request import Request
from .response import Response

__all__ = ["Redirect", "redirect_handler"]


async def redirect_handler(req: Request, res: Response, exc: Redirect) -> None:
    """Answer a ``Redirect`` with its status and a ``Location`` header."""
    location = exc.url
    if location is None:
        assert exc.name is not None
        location = str(req.app.url_for(exc.name, **exc.params))
    res.status_code = exc.status
    res.headers["location"] = location
