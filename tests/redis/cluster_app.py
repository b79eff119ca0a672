"""The app that the multi-process tests run in several uvicorn processes over one Redis
(or NATS).

Configured by the environment (``BOCADILLO_HUB_URL``, ``BOCADILLO_HUB_PREFIX``,
``BOCADILLO_HUB_HEARTBEAT_TTL``); every hub operation is one message type, so the tests
drive each process through its clients only. ``stream`` starts a broadcast stream from
the process itself (``tick`` 0, 1, 2... to a room at a fixed pace), ``sent`` tells how far
it went and ``stop`` ends it.
"""

from __future__ import annotations

import asyncio
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


@app.socket("hello")
def hello(data: Any, ws: WebSocket) -> str:
    ws.user = data
    return "hi"


@app.socket("presence")
async def presence(data: str) -> list[Any]:
    return sorted(member["user"] for member in await app.hub.presence(data))


#: Room -> the stream task and how many ticks it broadcast.
_streams: dict[str, tuple[asyncio.Task[None], list[int]]] = {}


@app.socket("stream")
async def stream(data: dict[str, Any]) -> str:
    """Broadcast ``tick`` 0, 1, 2... to ``data["room"]`` every ``data["every"]`` seconds,
    ``data["limit"]`` times at most (the bound of a stream nobody stops)."""
    room, every, limit = str(data["room"]), float(data["every"]), int(data["limit"])
    sent = [0]

    async def ticks() -> None:
        for n in range(limit):
            app.hub.broadcast(n, type="tick", room=room)
            sent[0] = n + 1
            await asyncio.sleep(every)

    _streams[room] = (asyncio.get_running_loop().create_task(ticks()), sent)
    return room


@app.socket("sent")
async def sent(data: str) -> int:
    return _streams[data][1][0]


@app.socket("stop")
async def stop(data: str) -> int:
    """End the stream to room ``data``; how many ticks it broadcast."""
    task, count = _streams.pop(data)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return count[0]


@app.socket("ask")
async def ask(data: dict[str, Any]) -> Any:
    """Ask the connection ``data["to"]``, wherever it lives, and return its answer."""
    return await app.hub.request(data["to"], "question", data["q"], timeout=10)
