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
so its ``finally`` blocks run; with ``@res.event_stream(raise_on_disconnect=True)``,
``ClientDisconnect`` is raised in it at its next ``yield`` instead.
"""

from __future__ import annotations

from collections.abc import AsyncIterable
from typing import Any

from .errors import InvalidArgument
from .jsoncodec import dumps
from .streaming import StreamingBody
from .types import Receive, Scope, Send

__all__ = ["EventStream", "server_event"]


_UNSET: Any = object()


def server_event(
    value: Any = _UNSET,
    /,
    data: Any = _UNSET,
    *,
    json: Any = _UNSET,
    event: str | None = None,
    id: str | int | None = None,
    retry: int | None = None,
    comment: str | None = None,
    name: str | None = None,
) -> str:
    """Format one server-sent event.

    ``server_event(payload, event=..., id=...)``: the payload is a ``str`` (multi-line is
    fine), or any other value, sent as JSON (``bocadillo.jsoncodec``: non-ASCII kept as is).

    Bocadillo 0.18's spellings work too: ``server_event("greeting", data="Hello")`` (a
    first argument given with ``data=`` or ``json=`` is the event's name),
    ``server_event(data=["line 1", "line 2"])`` (one ``data:`` line per item) and
    ``server_event(json={...})``.

    Args:
        value: The payload (or, with ``data=`` or ``json=``, the event's name).
        data: Text: a ``str``, or a list of lines.
        json: A value sent as JSON.
        event: The event type (``event:`` field); ``name`` is an alias.
        id: The event id, which the browser sends back as ``Last-Event-ID``.
        retry: The reconnection delay the browser should use, in milliseconds.
        comment: A comment line (ignored by browsers; useful as a keep-alive).

    Raises:
        InvalidArgument: if ``event`` or ``id`` contains a newline, or both ``data`` and
            ``json`` are given.
        ValueError: if the payload holds what JSON cannot carry (``NaN``, ``Infinity``...).
    """
    if data is not _UNSET and json is not _UNSET:
        raise InvalidArgument("server_event() takes data= or json=, not both")
    if value is not _UNSET and (data is not _UNSET or json is not _UNSET):
        event = event or str(value)  # 0.18: server_event("greeting", data=...)
        value = _UNSET
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
    text: str | None = None  # sent as is, one data line per line
    payload: Any = None  # sent as JSON
    if json is not _UNSET:
        payload = json
    elif data is not _UNSET and isinstance(data, (list, tuple)):
        text = "\n".join(str(line) for line in data)
    else:
        chosen = data if data is not _UNSET else value
        if isinstance(chosen, str):
            text = chosen
        elif chosen is not _UNSET:
            payload = chosen
    if text is not None:
        lines.extend(f"data: {line}" for line in text.splitlines() or [""])
    elif payload is not None:
        # JSON text has no line break (they are escaped in strings): one line, whatever
        # other separators (U+2028...) its strings hold.
        lines.append(f"data: {dumps(payload)}")
    return "\n".join(lines) + "\n\n"


class EventStream:
    """An ASGI response streaming server-sent events from an async iterable of strings.

    Args:
        events: The events, as ``server_event(...)`` strings (or bytes).
        headers: Extra raw headers; a ``Content-Type`` or ``Cache-Control`` given here
            replaces the default one.
        raise_on_disconnect: Raise ``ClientDisconnect`` in the generator at its next
            ``yield`` when the client leaves, instead of cancelling it.
    """

    def __init__(
        self,
        events: AsyncIterable[str | bytes],
        headers: list[tuple[bytes, bytes]] | None = None,
        *,
        raise_on_disconnect: bool = False,
    ) -> None:
        self.events = events
        self.headers = headers or []
        self.raise_on_disconnect = raise_on_disconnect

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        names = {key.lower() for key, _ in self.headers}
        defaults = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"connection", b"keep-alive"),
            (b"x-accel-buffering", b"no"),
        ]
        headers = [*self.headers, *(item for item in defaults if item[0] not in names)]
        body = StreamingBody(
            self.events, headers=headers, raise_on_disconnect=self.raise_on_disconnect
        )
        await body(scope, receive, send)
