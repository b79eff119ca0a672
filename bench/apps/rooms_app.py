"""The app of the per-room traffic benchmark (``bench/rooms.py``, Bocadillo only).

Clients of the message-type endpoint ``/ws`` join their room with a ``resume`` message;
a ``say`` message (``{"r": room, "t": the sender's clock, ...}``) is broadcast to its
room as a ``said`` event, and answers nothing. ``GET /hub-stats`` serves the hub's
counters (``BOCADILLO_STATS_ENDPOINT``), ``GET /json`` answers when the app is up. The
hub's backend comes from ``BOCADILLO_HUB_URL``.
"""

from __future__ import annotations

from typing import Any

from bocadillo import App

from .common import HELLO

# Thousands of connections from one address, sending as fast as the run asks.
app = App(max_connections_per_ip=None, rate_limit=None, max_rooms_per_connection=None)


@app.route("/json")
async def hello(req: Any, res: Any) -> None:
    res.json = HELLO


@app.socket("say")
async def say(data: dict[str, Any]) -> None:
    app.hub.broadcast(data, type="said", room=data["r"])
