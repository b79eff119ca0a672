"""The example chat's server: one page, static files and typed socket handlers on ``/ws``.

The browser speaks the message-type protocol (``{"type", "data", "id"}`` envelopes):

============  =====================================  ==========================================
client sends  ``data``                               the server answers / pushes
============  =====================================  ==========================================
``join``      ``{"room", "name"}``                   response ``{"room", "name", "history",
                                                     "members"}``; ``presence`` (joined) to
                                                     the room; ``rooms`` to everyone
``leave``     nothing                                response ``{"room"}``; ``presence`` (left)
``message``   ``{"text"}``                           ``message`` to the room (sender included);
                                                     response ``{"seq"}``
``typing``    ``{"typing": bool}``                   ``typing`` to the rest of the room
``rooms``     nothing                                response ``{"rooms": [...]}``
============  =====================================  ==========================================

On connect the server sends ``welcome`` with the client id and the room list. Invalid
data (an empty message, a bad room name...) comes back as an ``invalid_data`` error, a
message before any join as ``not_joined``, and too many messages as ``rate_limited``:
the browser shows each of them.

History and usernames live in this process's memory. The hub backend comes from the
settings (``BOCADILLO_HUB_URL``), so the same code runs on the in-memory hub or on Redis.
"""

from __future__ import annotations

import time
from collections import deque
from pathlib import Path
from typing import Any

import typesystem

from bocadillo import App, EnvelopeError, Request, Response, Templates, WebSocket

__all__ = ["HISTORY", "Chat", "app", "create_app"]

HERE = Path(__file__).resolve().parent
#: Messages kept per room, and sent to whoever joins it.
HISTORY = 50
#: Rooms listed even when nobody is in them.
DEFAULT_ROOMS = ("general", "random")
#: Per connection: 20 messages (typing notices included) per 10 seconds.
RATE_LIMIT = (20, 10.0)

JOIN = typesystem.Schema(
    fields={
        "room": typesystem.String(max_length=32, pattern=r"^[A-Za-z0-9_-]+$"),
        "name": typesystem.String(max_length=24),
    }
)
MESSAGE = typesystem.Schema(fields={"text": typesystem.String(max_length=2000)})
TYPING = typesystem.Schema(fields={"typing": typesystem.Boolean()})

# The page runs no inline script and talks only to its own origin.
CSP = "default-src 'self'; connect-src 'self'; img-src 'self' data:; object-src 'none'"


class Chat:
    """The chat's state: a bounded history per room, on top of the app's hub.

    Room membership is the hub's (``ws.join``); a connection's username and current room
    are its ``ws.state`` (so ``app.hub.info(id).user_data`` shows them too).
    """

    def __init__(self, app: App, history: int = HISTORY) -> None:
        self.app = app
        self.history_size = history
        self.history: dict[str, deque[dict[str, Any]]] = {}
        self.seq = 0

    def room_history(self, room: str) -> deque[dict[str, Any]]:
        """The history of ``room``, created (empty) on first use."""
        history = self.history.get(room)
        if history is None:
            history = self.history[room] = deque(maxlen=self.history_size)
        return history

    def members(self, room: str, *, without: str | None = None) -> list[str]:
        """The usernames in ``room`` (in this process), sorted, each once."""
        hub = self.app.hub
        names = set()
        for conn_id in hub.local_members(room):
            if conn_id == without or not hub.is_connected(conn_id):
                continue
            name = hub.info(conn_id).user_data.get("name")
            if isinstance(name, str):
                names.add(name)
        return sorted(names)

    def rooms(self, *, without: str | None = None) -> list[dict[str, Any]]:
        """Every known room with its number of users."""
        names = set(DEFAULT_ROOMS) | set(self.history) | set(self.app.hub.local_rooms)
        return [
            {"name": name, "users": len(self.members(name, without=without))}
            for name in sorted(names)
        ]

    def announce(
        self, room: str, event: str, name: str, *, conn_id: str, gone: bool = False
    ) -> None:
        """Tell the rest of the room who came or went, and everyone the new room counts.

        Args:
            room: The room joined or left.
            event: ``"joined"`` or ``"left"``.
            name: The username.
            conn_id: The connection that joined or left; it gets no presence notice
                (its join response says it all).
            gone: The connection is ending: count it out and send it nothing.
        """
        hub = self.app.hub
        without = conn_id if gone else None
        presence = {
            "room": room,
            "event": event,
            "name": name,
            "members": self.members(room, without=without),
        }
        hub.broadcast(presence, type="presence", room=room, exclude=[conn_id])
        rooms = {"rooms": self.rooms(without=without)}
        hub.broadcast(rooms, type="rooms", exclude=[conn_id] if gone else None)

    def post(self, room: str, name: str, text: str) -> dict[str, Any]:
        """Record a message in the room's history and return it."""
        self.seq += 1
        message = {"seq": self.seq, "room": room, "name": name, "text": text, "ts": time.time()}
        self.room_history(room).append(message)
        return message


def _current_room(ws: WebSocket) -> str:
    room = getattr(ws.state, "room", None)
    if not isinstance(room, str):
        raise EnvelopeError("not_joined", "join a room first")
    return room


def create_app(**settings: Any) -> App:
    """Build the chat app; ``settings`` are passed to ``App`` (the environment wins)."""
    settings.setdefault("rate_limit", RATE_LIMIT)
    settings.setdefault("static_dir", str(HERE / "static"))
    app = App("example_chat", **settings)
    chat = Chat(app)
    app.state.chat = chat
    templates = Templates(app, directory=HERE / "templates")

    @app.route("/")
    async def index(req: Request, res: Response) -> None:
        res.html = await templates.render(
            "index.html", static_root=app.settings["static_root"], history=HISTORY
        )
        res.headers["Content-Security-Policy"] = CSP

    @app.socket_connect()
    async def welcome(client_id: str) -> dict[str, Any]:
        return {"client_id": client_id, "rooms": chat.rooms()}

    @app.socket("join", schema=JOIN)
    async def join(data: dict[str, Any], ws: WebSocket) -> dict[str, Any]:
        room, name = data["room"], data["name"]
        previous = getattr(ws.state, "room", None)
        if previous != room:
            ws.join(room)  # first: a full room (room_full) changes nothing
        ws.state.name = name
        ws.state.room = room
        history = chat.room_history(room)
        if previous != room:
            if isinstance(previous, str):
                ws.leave(previous)
                chat.announce(previous, "left", name, conn_id=ws.id)
            chat.announce(room, "joined", name, conn_id=ws.id)
        return {
            "room": room,
            "name": name,
            "history": list(history),
            "members": chat.members(room),
        }

    @app.socket("leave")
    async def leave(ws: WebSocket) -> dict[str, Any]:
        room = getattr(ws.state, "room", None)
        if isinstance(room, str):
            ws.leave(room)
            ws.state.room = None
            chat.announce(room, "left", ws.state.name, conn_id=ws.id)
        return {"room": room}

    @app.socket("message", schema=MESSAGE)
    async def message(data: dict[str, Any], ws: WebSocket) -> dict[str, Any]:
        room = _current_room(ws)
        posted = chat.post(room, ws.state.name, data["text"])
        app.hub.broadcast(posted, type="message", room=room)
        return {"seq": posted["seq"]}

    @app.socket("typing", schema=TYPING)
    async def typing(data: dict[str, Any], ws: WebSocket) -> None:
        room = _current_room(ws)
        notice = {"room": room, "name": ws.state.name, "typing": data["typing"]}
        ws.broadcast(notice, type="typing", room=room, exclude_self=True)

    @app.socket("rooms")
    async def rooms() -> dict[str, Any]:
        return {"rooms": chat.rooms()}

    @app.socket_disconnect()
    async def gone(ws: WebSocket, client_id: str) -> None:
        room = getattr(ws.state, "room", None)
        if isinstance(room, str):
            # The hub still lists this connection while disconnect handlers run.
            chat.announce(room, "left", ws.state.name, conn_id=client_id, gone=True)

    return app


app = create_app()
