"""The app that the multi-process tests run in several uvicorn processes over one Redis.

Configured by the environment (``BOCADILLO_HUB_URL``, ``BOCADILLO_HUB_PREFIX``,
``BOCADILLO_HUB_HEARTBEAT_TTL``); every hub operation is one message type, so the tests
drive each process through its clients only.
"""

from __future__ import annotations

import os
from typing import Any

from bocadillo import App, WebSocket
from tests.live import fast_loop

app = App(stats_endpoint="/stats")


app.on("startup")(fast_loop)


@app.socket_connect()
def welcome(client_id: str) -> dict[str, Any]:
    return {"id": client_id, "pid": os.getpid()}


@app.socket("join")
def join(data: str, ws: WebSocket) -> str:
    ws.join(data)
    return data


@app.socket("say")
def say(data: dict[str, Any]) -> int:
    return app.hub.broadcast(
        data["text"],
        type="said",
        room=data.get("room"),
        to=data.get("to"),
        exclude=data.get("exclude"),
    )


@app.socket("mark")
def mark(data: str) -> int:
    """A broadcast to everyone of its own type: the tests' proof that nothing else came."""
    return app.hub.broadcast(data, type="mark")


@app.socket("dm")
def dm(data: dict[str, Any]) -> bool:
    return app.hub.send(data["to"], data["text"], type="dm")


@app.socket("kick")
async def kick(data: str) -> bool:
    return await app.hub.disconnect(data, 4001, "kicked", message="bye", type="notice")


@app.socket("count")
async def count() -> int:
    return await app.hub.connection_count()


@app.socket("members")
async def members(data: str) -> list[str]:
    return sorted(await app.hub.room_members(data))


@app.socket("rooms_of")
async def rooms_of(data: str) -> list[str]:
    return sorted(await app.hub.connection_rooms(data))


@app.socket("ask")
async def ask(data: dict[str, Any]) -> Any:
    """Ask the connection ``data["to"]``, wherever it lives, and return its answer."""
    return await app.hub.request(data["to"], "question", data["q"], timeout=10)
