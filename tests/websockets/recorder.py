"""An ASGI wrapper that records what the app sends, for in-process WebSocket tests.

When a view fails, Starlette's test client closes its streams as soon as the app raises, so
the client may not get to read the final ``websocket.close`` event. Recording the events on
the server side makes the close code observable without a race.
"""

from __future__ import annotations

from bocadillo.types import ASGIApp, Message, Receive, Scope, Send


class SentEvents:
    """Wrap ``app``; ``events`` lists every ASGI event it sends on WebSocket connections."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.events: list[Message] = []

    @property
    def close_codes(self) -> list[int]:
        """The codes of the ``websocket.close`` events sent, in order."""
        return [event["code"] for event in self.events if event["type"] == "websocket.close"]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return

        async def recording_send(message: Message) -> None:
            self.events.append(message)
            await send(message)

        await self.app(scope, receive, recording_send)
