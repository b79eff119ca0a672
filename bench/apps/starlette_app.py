"""Starlette: the broadcast is a loop over a set of ``WebSocket`` objects."""

from __future__ import annotations

import asyncio

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from .common import HELLO, broadcast_text, fill_text

clients: set[WebSocket] = set()
stalled: set[WebSocket] = set()
_fills: set[asyncio.Task[None]] = set()


async def hello(request: Request) -> JSONResponse:
    return JSONResponse(HELLO)


async def broadcast(request: Request) -> JSONResponse:
    text = broadcast_text(int(request.query_params.get("seq", 0)))
    sent = 0
    for ws in list(clients):
        try:
            await ws.send_text(text)
            sent += 1
        except Exception:  # the client left meanwhile
            pass
    return JSONResponse({"sent": sent})


async def _fill(ws: WebSocket, text: str, count: int) -> None:
    for _ in range(count):
        await ws.send_text(text)


async def fill(request: Request) -> JSONResponse:
    text = fill_text(int(request.query_params.get("size", 65536)))
    count = int(request.query_params.get("count", 1))
    for ws in stalled:
        task = asyncio.get_running_loop().create_task(_fill(ws, text, count))
        _fills.add(task)
        task.add_done_callback(_fills.discard)
    return JSONResponse({"stalled": len(stalled)})


async def echo(ws: WebSocket) -> None:
    await ws.accept()
    try:
        async for message in ws.iter_text():
            await ws.send_text(message)
    except WebSocketDisconnect:
        pass


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


app = Starlette(
    routes=[
        Route("/json", hello),
        Route("/broadcast", broadcast, methods=["POST"]),
        Route("/fill", fill, methods=["POST"]),
        WebSocketRoute("/echo", echo),
        WebSocketRoute("/fanout", fanout),
    ]
)
