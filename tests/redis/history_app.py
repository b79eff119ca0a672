"""The app the history tests run in two uvicorn processes over one Redis: rooms named
``news*`` keep 2,000 publications; ``enter`` joins, ``say`` publishes, ``ping`` answers."""

from __future__ import annotations

from typing import Any

from bocadillo import App, WebSocket
from tests.live import fast_loop

app = App(rate_limit=None, stats_endpoint="/stats")
app.room_options("news*", history_size=2000, history_ttl=600)
app.on("startup")(fast_loop)


@app.socket("enter")
def enter(data: str, ws: WebSocket) -> str:
    ws.join(data)
    return data


@app.socket("say")
def say(data: dict[str, Any]) -> None:
    app.hub.broadcast(data["text"], type="said", room=data["room"])


@app.socket("ping")
def ping() -> str:
    return "pong"
