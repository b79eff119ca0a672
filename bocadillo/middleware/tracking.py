"""``TrackedSend``: an ASGI ``send`` that notes whether the response has started, for
middleware that may still answer with an error response only until then."""

from __future__ import annotations

from ..types import Message, Send

__all__ = ["TrackedSend"]


class TrackedSend:
    """Wraps ``send``; ``started`` turns true with the ``http.response.start`` message."""

    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.started = True
        await self._send(message)
