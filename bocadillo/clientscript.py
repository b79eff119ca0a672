"""The JavaScript client served by the app, at ``/bocadillo/client.js`` by default.

A page imports it with no tooling (``import { connect } from "/bocadillo/client.js"``);
the setting ``client_script`` moves it to another path, ``None`` turns it off. It is the
file of ``clients/js/`` (the npm package), shipped inside the Python package.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

__all__ = ["CLIENT_SCRIPT", "client_script_route"]

#: The JavaScript client's file.
CLIENT_SCRIPT = Path(__file__).resolve().parent / "client.js"
_MEDIA_TYPE = "text/javascript; charset=utf-8"


def client_script_route(path: str) -> Route:
    """A GET route serving the JavaScript client at ``path``, with an ``ETag`` (a
    request whose ``If-None-Match`` matches gets a 304) and ``Cache-Control: no-cache``
    (browsers check it again on every load, so an upgrade shows at once)."""
    body = CLIENT_SCRIPT.read_bytes()
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"}

    async def client_script(request: Request) -> Response:
        if etag in request.headers.get("if-none-match", ""):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type=_MEDIA_TYPE, headers=headers)

    return Route(path, client_script, methods=["GET", "HEAD"], name="bocadillo_client_script")
