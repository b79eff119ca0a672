"""Bocadillo: the broadcast is ``app.hub.broadcast`` to a room (default outboxes,
``drop_oldest``).

For ``fanout-history`` and ``resume`` (Bocadillo only) the app also serves the
message-type endpoint ``/ws``, whose clients join rooms with a ``resume`` message, and
rooms named ``history:...`` keep their last publications (``room_options``).
"""

from __future__ import annotations

from bocadillo import App

from .common import HELLO, broadcast_data, broadcast_text, fill_text

#: Rooms with history: ``POST /publish?room=history:...`` gives each publication an
#: offset, and a client of ``/ws`` that comes back resumes from its last one.
HISTORY_ROOMS = "history:*"
HISTORY_SIZE = 1000

# The benchmarks open thousands of connections from one address and send as fast as they
# can: the per-address cap and the rate limit (on by default) are off here.
app = App(max_connections_per_ip=None, rate_limit=None)
app.room_options(HISTORY_ROOMS, history_size=HISTORY_SIZE)


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


@app.route("/publish", methods=["POST"])
async def publish(req, res, room: str = "fanout", seq: int = 0, count: int = 1):
    """``count`` broadcasts of ``{"seq": N, "pad": ...}`` to ``room``, N from ``seq`` up:
    the ``/ws`` clients get each in an envelope, with its position if the room has
    history."""
    sent = 0
    for number in range(seq, seq + max(0, min(count, HISTORY_SIZE))):
        sent += app.hub.broadcast(broadcast_data(number), room=room)
    res.json = {"sent": sent}


@app.route("/position")
async def position(req, res, room: str = "fanout"):
    """The room's position (``{"epoch", "offset"}``), ``null`` without history."""
    found = await app.hub.position(room)
    res.json = None if found is None else found.as_dict()


@app.socket("ping")
async def ping(data):
    """The message-type endpoint exists once a handler does; ``resume`` is built in."""
    return data


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
