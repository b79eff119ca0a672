"""The app every reliability scenario serves with a real ``python -m uvicorn`` subprocess.

Settings come from ``BOCADILLO_*`` variables (the environment wins over the code), so
one module serves every scenario: ``BOCADILLO_RATE_LIMIT``, ``BOCADILLO_OUTBOX_LIMIT``,
``BOCADILLO_HUB_URL``... It uses the public API only:

- ``/feed?room=R`` (and ``/feed-close``, whose overflow policy is ``close``): join room
  ``R``, send ``{"id": <connection id>}``, then read until the client leaves;
- ``/ws``, the message-type endpoint: ``echo``, ``join``, ``say`` (a dataclass schema,
  broadcasts to a room), ``typed`` (a typesystem schema) and ``boom`` (always raises);
- HTTP: ``GET /state`` (exact counts, ids, room members, stats, tasks), ``POST /pace``
  (broadcast at a steady rate, in the server), ``POST /broadcast``, and ``/items``,
  ``/session`` for the HTTP bad-input scenario.

Bocadillo's loggers are sent to stderr with their level, so the tests can assert that
nothing was logged at ERROR and no traceback was printed.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import resource
from typing import Any

import typesystem

from bocadillo import App, HTTPError
from tests.live import fast_loop

logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")

# Thousands of connections: allow as many open files as the system lets this process.
_soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
if _soft != _hard:
    resource.setrlimit(resource.RLIMIT_NOFILE, (_hard, _hard))

# The scenarios open thousands of connections from one address, flood on purpose and post
# large valid bodies: the safe defaults that would cut them short are off here (the
# environment turns them on again where a scenario tests them).
app = App(
    sessions=True,
    secret_key="reliability secret",
    max_connections_per_ip=None,
    rate_limit=None,
    max_body_size=None,
)

#: The paced broadcast (``POST /pace``) in progress, if any.
_pace: dict[str, Any] = {"task": None, "sent": 0, "done": True, "started": 0.0, "ended": 0.0}


app.on("startup")(fast_loop)  # a load test


async def _feed(ws: Any, room: str) -> None:
    ws.join(room)
    await ws.send({"id": ws.id})
    async for _ in ws:
        pass


@app.websocket_route("/feed", value_type="json", caught_close_codes=all)
async def feed(ws, room: str = "all"):
    await _feed(ws, room)


@app.websocket_route("/feed-close", value_type="json", caught_close_codes=all, overflow="close")
async def feed_close(ws, room: str = "all"):
    await _feed(ws, room)


# The message-type endpoint -------------------------------------------------------------------


@dataclasses.dataclass
class Say:
    room: str
    text: str


@app.socket("echo")
async def echo(data):
    return {"echo": data}


@app.socket("join", schema=typesystem.String(max_length=100))
def join(data, ws):
    ws.join(data)
    return {"joined": data}


@app.socket("say", schema=Say)
async def say(data: Say, ws, client_id):
    delivered = ws.broadcast({"from": client_id, "text": data.text}, type="chat", room=data.room)
    return {"delivered": delivered}


TYPED = typesystem.Schema(
    fields={
        "n": typesystem.Integer(minimum=0, maximum=1_000_000),
        "s": typesystem.String(max_length=50),
    }
)


@app.socket("typed", schema=TYPED)
async def typed(data):
    return {"typed": dict(data)}


@app.socket("boom")
async def boom():
    raise RuntimeError("boom (expected by the reliability tests)")


# Inspection and load ---------------------------------------------------------------------------


@app.route("/state")
async def state(req, res):
    """Everything the scenarios compare with what their clients saw."""
    hub = app.hub
    rooms = {room: sorted(hub.members(room)) for room in sorted(hub.rooms)}
    body: dict[str, Any] = {
        "count": hub.count,
        "ids": sorted(hub.ids),
        "rooms": rooms,
        "stats": hub.stats(),
        "tasks": len(asyncio.all_tasks()),
        "pending": max((hub.connection(conn_id).outbox.pending for conn_id in hub.ids), default=0),
        "pace": {k: v for k, v in _pace.items() if k != "task"},
    }
    if req.query_params.get("gc"):
        gc.collect()
        body["gc_objects"] = len(gc.get_objects())
    if req.query_params.get("shared"):
        # Across every process, through the backend (Redis presence).
        body["shared_count"] = await hub.connection_count()
        body["shared_rooms"] = {
            room: sorted(await hub.room_members(room)) for room in req.query_params.getlist("room")
        }
    res.json = body


async def _run_pace(n: int, rate: float, rooms: list[str], pad: str) -> None:
    loop = asyncio.get_running_loop()
    start = _pace["started"] = loop.time()
    try:
        for seq in range(n):
            # A fixed schedule, not a sleep per message: a busy moment does not slow the
            # rate down for the rest of the run.
            delay = start + seq / rate - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            for room in rooms:
                app.hub.broadcast({"r": room, "s": seq, "p": pad}, room=room)
            _pace["sent"] = seq + 1
    finally:
        _pace["done"] = True
        _pace["ended"] = loop.time()


@app.route("/pace", methods=["POST"])
async def pace(req, res, n: int, rate: float, pad: int = 0):
    """Broadcast ``n`` messages per room at ``rate`` per second: ``{"r", "s", "p"}``."""
    rooms = req.query_params.getlist("room")
    if not rooms or rate <= 0 or not _pace["done"]:
        raise HTTPError(400, detail="rooms and a positive rate, one pace at a time")
    _pace.update(sent=0, done=False)
    task = asyncio.get_running_loop().create_task(_run_pace(n, rate, rooms, "x" * pad))
    _pace["task"] = task
    res.json = {"started": n}


@app.route("/broadcast", methods=["POST"])
async def broadcast(req, res):
    """Broadcast the JSON body to everyone, or to a room (``?room=``)."""
    room = req.query_params.get("room")
    res.json = {"delivered": app.hub.broadcast(await req.json(), room=room)}


# HTTP bad input -------------------------------------------------------------------------------


@app.route("/items/{pk}", methods=["GET", "POST"])
async def item(req, res, pk: int, limit: int = 10):
    if req.method == "POST":
        body = await req.json()
        res.json = {"pk": pk, "limit": limit, "kind": type(body).__name__}
    else:
        res.json = {"pk": pk, "limit": limit}


@app.route("/upload", methods=["POST"])
async def upload(req, res):
    size = 0
    async for chunk in req:
        size += len(chunk)
    res.json = {"size": size}


@app.route("/session")
async def session(req, res):
    res.json = dict(req.session)


@app.route("/login", methods=["POST"])
async def login(req, res, user: str):
    req.session["user"] = user
    res.json = {"user": user}
