"""Server-sent events: ``server_event`` formats one event, ``EventStream`` sends them.

In a view::

    @app.route("/clock")
    async def clock(req, res):
        @res.event_stream
        async def ticks():
            for n in itertools.count():
                yield server_event(data=str(n), event="tick", id=str(n))
                await asyncio.sleep(1)

The response is ``text/event-stream``, uncached, and sent as the generator yields. When
the client disconnects, the generator is cancelled at its current ``await`` and closed,
so its ``finally`` blocks run.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from typing import Any

from .errors import InvalidArgument
from .jsoncodec import dumps
from .types import Message, Receive, Scope, Send

__all__ = ["EventStream", "server_event"]


def server_event(
    data: Any = None,
    *,
    event: str | None = None,
    id: str | int | None = None,
    retry: int | None = None,
    comment: str | None = None,
    name: str | None = None,
) -> str:
    """Format one server-sent event.

    Args:
        data: The payload: a ``str`` (multi-line is fine), or any other value, sent as
            JSON (``bocadillo.jsoncodec``: non-ASCII kept as is).
        event: The event type (``event:`` field); ``name`` is an alias.
        id: The event id, which the browser sends back as ``Last-Event-ID``.
        retry: The reconnection delay the browser should use, in milliseconds.
        comment: A comment line (ignored by browsers; useful as a keep-alive).

    Raises:
        InvalidArgument: if ``event`` or ``id`` contains a newline.
        ValueError: if ``data`` holds what JSON cannot carry (``NaN``, ``Infinity``...).
    """
    event = event or name
    lines: list[str] = []
    if comment is not None:
        lines.extend(f": {line}" for line in comment.splitlines() or [""])
    if id is not None:
        if "\n" in str(id) or "\r" in str(id):
            raise InvalidArgument("an event id cannot contain a newline")
        lines.append(f"id: {id}")
    if event is not None:
        if "\n" in event or "\r" in event:
            raise InvalidArgument("an event name cannot contain a newline")
        lines.append(f"event: {event}")
    if retry is not None:
        lines.append(f"retry: {int(retry)}")
    if isinstance(data, str):
        lines.extend(f"data: {line}" for line in data.splitlines() or [""])
    elif data is not None:
        # JSON text has no line break (they are escaped in strings): one line, whatever
        # other separators (U+2028...) its strings hold.
        lines.append(f"data: {dumps(data)}")
    return "\n".join(lines) + "\n\n"


class EventStream:
    """An ASGI response streaming server-sent events from an async iterable of strings."""

    def __init__(
        self, events: AsyncIterable[str | bytes], headers: list[tuple[bytes, bytes]] | None = None
    ) -> None:
        self.events = events
        self.headers = headers or []

    async def _pump(self, send: Send) -> None:
        async for chunk in self.events:
            body = chunk.encode("utf-8") if isinstance(chunk, str) else chunk
            await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        names = {key for key, _ in self.headers}
        headers = [
            *self.headers,
            *(
                [(b"content-type", b"text/event-stream; charset=utf-8")]
                if b"content-type" not in names
                else []
            ),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        pump = asyncio.ensure_future(self._pump(send))
        listen = asyncio.ensure_future(_wait_disconnect(receive))
        try:
            await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            pump.cancel()
            listen.cancel()
            await asyncio.gather(pump, listen, return_exceptions=True)
            closer = getattr(self.events, "aclose", None)
            if closer is not None:
                await closer()
        error = None if pump.cancelled() else pump.exception()
        if error is not None and not isinstance(error, OSError):
            raise error


async def _wait_disconnect(receive: Receive) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            return
