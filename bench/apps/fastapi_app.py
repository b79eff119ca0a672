"""FastAPI: the same as Starlette, written the FastAPI way."""

from __future__ import annotations

import asyncio

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

from .common import HELLO, broadcast_text, fill_text

app = FastAPI()
clients: set[WebSocket] = set()
stalled: set[WebSocket] = set()
_fills: set[asyncio.Task[None]] = set()


@app.get("/json")
async def hello() -> dict[str, str]:
    return HELLO


@app.post("/broadcast")
async def broadcast(seq: int = 0) -> dict[str, int]:
    text = broadcast_text(seq)
    sent = 0
    for ws in list(clients):
        try:
            await ws.send_text(text)
            sent += 1
        except Exception:  # the client left meanwhile
            pass
    return {"sent": sent}


async def _fill(ws: WebSocket, text: str, count: int) -> None:
    for _ in range(count):
        await ws.send_text(text)


@app.post("/fill")
async def fill(size: int = 65536, count: int = 1) -> dict[str, int]:
    text = fill_text(size)
    for ws in stalled:
        task = asyncio.get_running_loop().create_task(_fill(ws, text, count))
        _fills.add(task)
        task.add_done_callback(_fills.discard)
    return {"stalled": len(stalled)}


@app.websocket("/echo")
async def echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        async for message in ws.iter_text():
            await ws.send_text(message)
    except WebSocketDisconnect:
        pass


@app.websocket("/fanout")
async def fanout(ws: WebSocket) -> None:
    await ws.accept()
    is_stalled = ws.query_params.get("stalled") == "1"
    clients.add(ws)
    if is_stalled:
        stalled.add(ws)
    try:
        async for _ in ws.iter_text():
            pass
    finally:
        clients.discard(ws)
        stalled.discard(ws)
