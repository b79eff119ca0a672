"""Litestar: the broadcast goes through its channels plugin (in-memory backend).

The ``/fanout`` handler is the one the plugin generates for its own WebSocket routes
(``ChannelsPlugin._ws_handler_func``): subscribe, send every event in a background
task, read until the client disconnects.
"""

from __future__ import annotations

from litestar import Litestar, WebSocket, get, post, websocket
from litestar.channels import ChannelsPlugin
from litestar.channels.backends.memory import MemoryChannelsBackend
from litestar.exceptions import WebSocketDisconnect

from .common import HELLO, broadcast_text, fill_text


@get("/json")
async def hello() -> dict[str, str]:
    return HELLO


@post("/broadcast", status_code=200)
async def broadcast(channels: ChannelsPlugin, seq: int = 0) -> dict[str, int]:
    channels.publish(broadcast_text(seq), "fanout")
    return {"sent": 1}


@post("/fill", status_code=200)
async def fill(channels: ChannelsPlugin, size: int = 65536, count: int = 1) -> dict[str, int]:
    text = fill_text(size)
    for _ in range(count):
        channels.publish(text, "stalled")
    return {"stalled": count}


@websocket("/echo")
async def echo(socket: WebSocket) -> None:
    await socket.accept()
    try:
        while True:
            await socket.send_text(await socket.receive_text())
    except WebSocketDisconnect:
        pass


@websocket("/fanout")
async def fanout(socket: WebSocket, channels: ChannelsPlugin) -> None:
    await socket.accept()
    names = ["fanout", "stalled"] if socket.query_params.get("stalled") == "1" else ["fanout"]
    async with channels.start_subscription(names) as subscriber:
        async with subscriber.run_in_background(socket.send_text):
            while (await socket.receive())["type"] != "websocket.disconnect":
                continue


channels_plugin = ChannelsPlugin(backend=MemoryChannelsBackend(), channels=["fanout", "stalled"])
app = Litestar(
    route_handlers=[hello, broadcast, fill, echo, fanout],
    plugins=[channels_plugin],
)
