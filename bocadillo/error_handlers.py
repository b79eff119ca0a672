"""Ready-made ``HTTPError`` handlers (Bocadillo 0.18's ``bocadillo.error_handlers``).

Register one with ``app.add_error_handler(HTTPError, error_to_html)`` (or
``@app.error_handler``) to choose how HTTP errors look. Each writes the status line, such as
``403 Forbidden``, followed by the error's detail when it has one. The default handler
(JSON, or text for clients that do not accept JSON) needs no registration.
"""

from __future__ import annotations

from typing import Any

from .errors import HTTPError
from .request import Request
from .response import Response

__all__ = ["error_to_html", "error_to_json", "error_to_text"]


def _parts(res: Response, exc: HTTPError) -> tuple[str, Any]:
    res.status_code = exc.status_code
    for key, value in (exc.headers or {}).items():
        res.headers[key] = value
    detail = exc.detail_value
    # Without a detail of its own, the error's detail is its phrase: already in the title.
    return str(exc), ("" if detail == exc.title else detail)


async def error_to_html(req: Request, res: Response, exc: HTTPError) -> None:
    """Answer ``<h1>403 Forbidden</h1>``, then ``<p>detail</p>`` on the next line."""
    title, detail = _parts(res, exc)
    res.html = f"<h1>{title}</h1>" + (f"\n<p>{detail}</p>" if detail else "")


async def error_to_json(req: Request, res: Response, exc: HTTPError) -> None:
    """Answer ``{"error": "403 Forbidden", "status": 403}``, with ``"detail"`` if any."""
    title, detail = _parts(res, exc)
    body: dict[str, Any] = {"error": title, "status": exc.status_code}
    if detail:
        body["detail"] = detail
    res.json = body


async def error_to_text(req: Request, res: Response, exc: HTTPError) -> None:
    """Answer ``403 Forbidden`` as plain text, then the detail on the next line."""
    title, detail = _parts(res, exc)
    res.text = title + (f"\n{detail}" if detail else "")
