"""The HTTP request object handed to views as ``req``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from starlette.requests import Request as _StarletteRequest

from .errors import ClientDisconnect, HTTPError
from .jsoncodec import loads
from .types import JSONValue

__all__ = ["ClientDisconnect", "Request", "loads_strict"]

#: The JSON codec's ``loads`` under its former name (``bocadillo.jsoncodec``).
loads_strict = loads


class Request(_StarletteRequest):
    """An incoming HTTP request.

    Everything of Starlette's ``Request`` is here (``method``, ``url``, ``headers``,
    ``cookies``, ``client``, ``query_params``, ``path_params``, ``body()``, ``form()``,
    ``stream()``, ``session``), plus:

    - ``await req.json()`` answers 400 instead of raising when the body is not JSON;
    - ``async for chunk in req`` streams the body.
    """

    #: The provider values of this request (set when the app has providers).
    providers: Any = None

    async def json(self) -> JSONValue:
        """Parse the body as JSON.

        The body must be JSON in UTF-8; ``NaN``, ``Infinity`` and numbers beyond a
        float are refused (see ``bocadillo.jsoncodec``).

        Raises:
            HTTPError: 400 when the body is not JSON the codec accepts.
        """
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = loads(body)
            except ValueError as exc:
                # Whatever the JSON codec refuses: not UTF-8, not JSON, NaN or Infinity, a
                # number out of range, a lone surrogate, nesting too deep.
                raise HTTPError(400, detail=f"Invalid JSON body: {exc}") from None
        return self._json

    def __aiter__(self) -> AsyncIterator[bytes]:
        return self.stream()

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.url.path}>"

    # ``HTTPConnection`` is a Mapping over the scope; keep equality by identity.
    def __eq__(self, other: Any) -> bool:
        return self is other

    __hash__ = object.__hash__
