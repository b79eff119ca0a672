"""Raw ASGI, no framework: the ceiling.

The broadcast is the plainest loop: await each client's ``send`` in turn.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import parse_qs

from .common import HELLO, broadcast_text, fill_text

Scope = dict[str, Any]
Message = dict[str, Any]
Receive = Any
Send = Any

clients: set[Send] = set()
stalled: set[Send] = set()
_fills: set[asyncio.Task[None]] = set()


def _query(scope: Scope) -> dict[str, int]:
    parsed = parse_qs(scope["query_string"].decode("latin-1"))
    return {key: int(values[0]) for key, values in parsed.items()}


async def _respond(send: Send, status: int, body: Any) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(payload)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": payload})


async def _fill(send: Send, message: Message, count: int) -> None:
    for _ in range(count):
        await send(message)


async def _http(scope: Scope, receive: Receive, send: Send) -> None:
    path, method = scope["path"], scope["method"]
    if path == "/json" and method == "GET":
        await _respond(send, 200, HELLO)
    elif path == "/broadcast" and method == "POST":
        message = {"type": "websocket.send", "text": broadcast_text(_query(scope).get("seq", 0))}
        sent = 0
        for client in list(clients):
            try:
                await client(message)
                sent += 1
            except Exception:  # the client left meanwhile
                pass
        await _respond(send, 200, {"sent": sent})
    elif path == "/fill" and method == "POST":
        query = _query(scope)
        message = {"type": "websocket.send", "text": fill_text(query.get("size", 65536))}
        for client in stalled:
            task = asyncio.get_running_loop().create_task(
                _fill(client, message, query.get("count", 1))
            )
            _fills.add(task)
            task.add_done_callback(_fills.discard)
        await _respond(send, 200, {"stalled": len(stalled)})
    else:
        await _respond(send, 404, {"error": "Not Found"})


async def _websocket(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    path = scope["path"]
    if path not in ("/echo", "/fanout"):
        await send({"type": "websocket.close", "code": 1008})
        return
    await send({"type": "websocket.accept"})
    if path == "/echo":
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            if message.get("text") is not None:
                await send({"type": "websocket.send", "text": message["text"]})
            else:
                await send({"type": "websocket.send", "bytes": message.get("bytes")})
    is_stalled = _query(scope).get("stalled", 0) == 1
    clients.add(send)
    if is_stalled:
        stalled.add(send)
    try:
        while (await receive())["type"] != "websocket.disconnect":
            pass
    finally:
        clients.discard(send)
        stalled.discard(send)


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    kind = scope["type"]
    if kind == "http":
        await _http(scope, receive, send)
    elif kind == "websocket":
        await _websocket(scope, receive, send)
    elif kind == "lifespan":
        await _lifespan(receive, send)
