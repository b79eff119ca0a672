"""The app the presence and request tests run in two uvicorn processes over one Redis:
``hello`` names the connection and joins ``lobby`` (which sends presence events),
``who`` lists the room's presence, ``ask`` makes the server ask the client."""

from __future__ import annotations

import asyncio
from typing import Any

from bocadillo import App, WebSocket
from tests.live import fast_loop

app = App(rate_limit=None, stats_endpoint="/stats", presence_events=True)
app.on("startup")(fast_loop)
_tasks: set[asyncio.Task[None]] = set()


@app.socket("hello")
def hello(data: Any, ws: WebSocket) -> str:
    ws.user = data
    ws.join("lobby")
    return "in"


@app.socket("who")
async def who() -> Any:
    return await app.hub.presence("lobby")


@app.socket("ask")
async def ask(data: Any, ws: WebSocket) -> bool:
    """Ask this client ``data`` from another task; tell it the answer as ``answered``."""

    async def asking() -> None:
        try:
            answer = await ws.request("question", data, timeout=5)
        except Exception as exc:
            answer = {"error": type(exc).__name__}
        app.hub.send(ws.id, answer, type="answered")

    task = asyncio.get_running_loop().create_task(asking())
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)
    return True
