"""Bocadillo: the broadcast is ``app.hub.broadcast`` to a room (default outboxes,
``drop_oldest``)."""

from __future__ import annotations

from bocadillo import App

from .common import HELLO, broadcast_text, fill_text

# The benchmarks open thousands of connections from one address and send as fast as they
# can: the per-address cap and the rate limit (on by default) are off here.
app = App(max_connections_per_ip=None, rate_limit=None)


@app.route("/json")
async def hello(req, res):
    res.json = HELLO


@app.route("/broadcast", methods=["POST"])
async def broadcast(req, res, seq: int = 0):
    res.json = {"sent": app.hub.broadcast(broadcast_text(seq), room="fanout")}


@app.route("/fill", methods=["POST"])
async def fill(req, res, size: int = 65536, count: int = 1):
    text = fill_text(size)
    res.json = {"stalled": sum(app.hub.broadcast(text, room="stalled") for _ in range(count))}


@app.websocket_route("/echo")
async def echo(ws):
    async for message in ws:
        await ws.send(message)


@app.websocket_route("/fanout")
async def fanout(ws, stalled: int = 0):
    ws.join("fanout")
    if stalled:
        ws.join("stalled")
    async for _ in ws:
        pass
