"""The example chat's server: one page, static files and typed socket handlers on ``/ws``.

The page runs on the official JavaScript client (``/bocadillo/client.js``, see
``docs/clients.md``) and speaks the message-type protocol:

============  =======================  ===================================================
client sends  ``data``                 the server answers / pushes
============  =======================  ===================================================
``hello``     ``{"name"}``             response ``{"name"}``: who this connection is
``join``      the room's name          response ``{"room", "epoch", "offset", "history",
                                       "members"}``; ``join`` (presence) to the room
``leave``     the room's name          response ``true``; ``leave`` (presence) to the room
``message``   ``{"room", "text"}``     ``message`` to the room (a publication, kept in
                                       its history); response ``true``
``typing``    ``{"room"}``             ``typing`` to the rest of the room
============  =======================  ===================================================

Rooms keep their last ``HISTORY`` messages in the hub's room history: a page that lost
its connection resumes its room with the last offset it saw and gets exactly what it
missed. Members come from the hub's presence. Every few seconds, if it changed, everyone
gets the list of rooms (the default ones and those somebody is in: a room nobody is in is
no longer listed, and its history expires). A name is unique in a room: a second "ada"
gets ``name_taken``.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import typesystem

from bocadillo import App, EnvelopeError, Request, Response, Templates, WebSocket
from bocadillo.realtime.hub import Hub

__all__ = ["HISTORY", "RATE_LIMIT", "app", "create_app", "room_list"]

HERE = Path(__file__).resolve().parent
#: Messages kept per room, and sent to whoever joins it.
HISTORY = 50
#: Rooms listed even when nobody is in them.
DEFAULT_ROOMS = ("general", "random")
#: Per connection: 30 messages per 10 seconds. A person typing fast sends one message a
#: second, and the page sends at most one typing notice per 3 seconds.
RATE_LIMIT = (30, 10.0)
#: Seconds between two checks of the room list (sent only when it changed).
ROOMS_EVERY = 2.0

ROOM = typesystem.String(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")
HELLO = typesystem.Schema(fields={"name": typesystem.String(min_length=1, max_length=24)})
MESSAGE = typesystem.Schema(
    fields={"room": ROOM, "text": typesystem.String(min_length=1, max_length=2000)}
)
TYPING = typesystem.Schema(fields={"room": ROOM})

# The page runs no inline script and talks only to its own origin.
CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'"


def _name(ws: WebSocket) -> str:
    user = ws.user
    if not isinstance(user, dict) or not isinstance(user.get("name"), str):
        raise EnvelopeError("not_named", "say who you are first")
    return str(user["name"])


def _in_room(ws: WebSocket, room: str) -> None:
    if room not in ws.rooms:
        raise EnvelopeError("not_joined", f"join #{room} first")


def _members(presence: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``[{"id", "name"}]`` of the named connections of a room's presence."""
    return [
        {"id": member["id"], "name": member["user"]["name"]}
        for member in presence
        if isinstance(member["user"], dict) and isinstance(member["user"].get("name"), str)
    ]


async def room_list(hub: Hub) -> list[dict[str, Any]]:
    """The default rooms and every room somebody is in, with their number of users."""
    names = sorted(set(DEFAULT_ROOMS) | set(hub.local_rooms))
    return [{"name": name, "users": (await hub.presence_stats(name))["users"]} for name in names]


def create_app(**settings: Any) -> App:
    """Build the chat app; ``settings`` are passed to ``App`` (the environment wins)."""
    settings.setdefault("rate_limit", RATE_LIMIT)
    settings.setdefault("static_dir", str(HERE / "static"))
    settings.setdefault("history_size", HISTORY)
    settings.setdefault("history_ttl", 3600.0)
    settings.setdefault("presence_events", True)
    app = App("example_chat", **settings)  # on Redis, the history lives in Redis
    templates = Templates(app, directory=HERE / "templates")
    listed: list[Any] = [None]  # the room list everyone has

    @app.route("/")
    async def index(req: Request, res: Response) -> None:
        res.html = await templates.render("index.html", static_root=app.settings["static_root"])
        res.headers["Content-Security-Policy"] = CSP

    @app.socket_connect()
    async def welcome(client_id: str, hub: Hub) -> dict[str, Any]:
        return {"client_id": client_id, "rooms": await room_list(hub)}

    @app.socket("hello", schema=HELLO)
    def hello(data: dict[str, Any], ws: WebSocket) -> dict[str, Any]:
        name = " ".join(data["name"].split())
        if not name:
            raise EnvelopeError("invalid_data", "name: must not be blank")
        ws.user = {"name": name}
        return {"name": name}

    @app.can_join
    def can_join(ws: WebSocket, room: str) -> bool:
        # A page resuming its room after a reconnection: it said hello first.
        return ws.user is not None and ROOM.validate_or_error(room).error is None

    @app.socket("join", schema=ROOM)
    async def join(data: str, ws: WebSocket, hub: Hub) -> dict[str, Any]:
        name = _name(ws)
        members = _members(await hub.presence(data))
        if any(m["name"] == name and m["id"] != ws.id for m in members):
            raise EnvelopeError("name_taken", f"someone in #{data} is already called {name}")
        ws.join(data)  # a full room (room_full) changes nothing
        position = await hub.position(data)
        history = [
            {"offset": p.offset, **p.data} for p in await hub.history(data) if p.type == "message"
        ]
        return {
            "room": data,
            **(position.as_dict() if position is not None else {}),
            "history": history,
            "members": _members(await hub.presence(data)),
        }

    @app.socket("leave", schema=ROOM)
    def leave(data: str, ws: WebSocket) -> bool:
        ws.leave(data)
        return True

    @app.socket("message", schema=MESSAGE)
    def message(data: dict[str, Any], ws: WebSocket, hub: Hub) -> bool:
        room = data["room"]
        _in_room(ws, room)
        text = data["text"].strip()
        if not text:
            raise EnvelopeError("invalid_data", "text: must not be blank")
        posted = {"name": _name(ws), "text": text, "ts": time.time()}
        hub.broadcast(posted, type="message", room=room)
        return True

    @app.socket("typing", schema=TYPING)
    def typing(data: dict[str, Any], ws: WebSocket, hub: Hub) -> None:
        room = data["room"]
        _in_room(ws, room)
        # Sent to the others by id: not a publication, so never kept in the history.
        others = [i for i in hub.local_members(room) if i != ws.id]
        if others:
            hub.broadcast({"room": room, "name": _name(ws)}, type="typing", to=others)

    @app.every(ROOMS_EVERY)
    async def rooms(hub: Hub) -> None:
        current = await room_list(hub)
        if current != listed[0]:
            listed[0] = current
            hub.broadcast({"rooms": current}, type="rooms")

    return app


app = create_app()
