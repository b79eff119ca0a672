"""Streamed HTTP bodies: chunks sent as an (async) iterable yields them.

Used by ``res.stream`` and ``res.event_stream``. When the client disconnects, the iterable
is cancelled at its current ``await`` and closed (its ``finally`` blocks run), or, with
``raise_on_disconnect=True``, ``ClientDisconnect`` is raised inside an async generator at
its next ``yield`` so that it can clean up or record the fact.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Iterable
from typing import Any

from starlette.concurrency import iterate_in_threadpool
from starlette.requests import ClientDisconnect

from .types import Message, Receive, Scope, Send

__all__ = ["StreamingBody", "as_async_iterable"]


def as_async_iterable(source: AsyncIterable[Any] | Iterable[Any]) -> AsyncIterable[Any]:
    """``source`` itself if async; a sync iterable is iterated in a worker thread."""
    if isinstance(source, AsyncIterable):
        return source
    return iterate_in_threadpool(iter(source))


class StreamingBody:
    """An ASGI response whose body is sent chunk by chunk (``str`` chunks as UTF-8).

    Args:
        chunks: The body, as an (async) iterable of ``str`` or ``bytes``.
        status_code: The HTTP status.
        headers: Raw response headers.
        raise_on_disconnect: Raise ``ClientDisconnect`` inside an async generator at its
            next ``yield`` once the client is gone, instead of cancelling it.
        background: Called (and awaited) after the body has been sent.
    """

    def __init__(
        self,
        chunks: AsyncIterable[Any] | Iterable[Any],
        *,
        status_code: int = 200,
        headers: list[tuple[bytes, bytes]] | None = None,
        raise_on_disconnect: bool = False,
        background: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self.chunks = as_async_iterable(chunks)
        self.status_code = status_code
        self.headers = headers or []
        self.raise_on_disconnect = raise_on_disconnect
        self.background = background

    async def _pump(self, send: Send, gone: asyncio.Event) -> None:
        iterator = aiter(self.chunks)
        while True:
            try:
                chunk = await anext(iterator)
            except StopAsyncIteration:
                break
            if gone.is_set():
                if self.raise_on_disconnect:
                    await _throw_disconnect(iterator)
                return  # otherwise the generator is closed (aclose) by the caller
            body = chunk.encode("utf-8") if isinstance(chunk, str) else bytes(chunk)
            await send({"type": "http.response.body", "body": body, "more_body": True})
            # A generator that never awaits would otherwise keep the loop to itself, and
            # the disconnect would never be seen.
            await asyncio.sleep(0)
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await send(
            {"type": "http.response.start", "status": self.status_code, "headers": self.headers}
        )
        gone = asyncio.Event()
        pump = asyncio.ensure_future(self._pump(send, gone))
        listen = asyncio.ensure_future(_wait_disconnect(receive, gone))
        try:
            await asyncio.wait({pump, listen}, return_when=asyncio.FIRST_COMPLETED)
            if not pump.done() and self.raise_on_disconnect:
                # The pump raises ClientDisconnect in the generator at its next yield.
                await asyncio.wait({pump})
        finally:
            pump.cancel()
            listen.cancel()
            await asyncio.gather(pump, listen, return_exceptions=True)
            closer = getattr(self.chunks, "aclose", None)
            if closer is not None:
                await closer()
        error = None if pump.cancelled() else pump.exception()
        if error is not None and not isinstance(error, (OSError, ClientDisconnect)):
            raise error
        if self.background is not None:
            await self.background()


async def _throw_disconnect(iterator: AsyncIterator[Any]) -> None:
    thrower = getattr(iterator, "athrow", None)
    if thrower is None:
        return
    try:
        await thrower(ClientDisconnect())
    except (StopAsyncIteration, ClientDisconnect):
        return


async def _wait_disconnect(receive: Receive, gone: asyncio.Event) -> None:
    while True:
        message: Message = await receive()
        if message["type"] == "http.disconnect":
            gone.set()
            return
