"""The app that ``test_shutdown_live.py`` serves with a real ``uvicorn`` subprocess.

It uses the public API only: a WebSocket route and a message-type endpoint whose clients
join rooms, and HTTP routes that count connections, broadcast a burst and report how many
messages wait in the outboxes. ``BOCADILLO_SHUTDOWN_TIMEOUT`` (any setting, in fact) can
be overridden through the environment.
"""

from __future__ import annotations

from bocadillo import App

app = App(shutdown_message="server going away", shutdown_timeout=5.0, outbox_limit=100_000)


@app.websocket_route("/feed", value_type="json", caught_close_codes=all)
async def feed(ws, room: str = "all"):
    ws.join(room)
    await ws.send({"id": ws.id})
    async for _ in ws:
        pass


@app.socket("join")
def join(data, ws):
    ws.join(data)
    return {"joined": data}


@app.route("/count")
async def count(req, res):
    res.json = {"count": app.hub.count}


@app.route("/blast", methods=["POST"])
async def blast(req, res, n: int, size: int = 100, room: str = "all"):
    pad = "x" * size
    delivered = 0
    for seq in range(n):
        delivered += app.hub.broadcast({"seq": seq, "pad": pad}, room=room)
    res.json = {"delivered": delivered}


@app.route("/pending")
async def pending(req, res):
    outboxes = [app.hub.connection(conn_id).outbox for conn_id in app.hub.ids]
    res.json = {"pending": [outbox.pending for outbox in outboxes]}
