"""The app both clients are tested against (Python in-process, JavaScript through
``tests/clients/serve.py``): a join that answers the room's position, a room with
history, requests both ways, and HTTP routes that act on the hub from its own loop."""

from __future__ import annotations

import asyncio
from typing import Any

from bocadillo import App, CloseCode

__all__ = ["create_app"]


def create_app(**settings: Any) -> App:
    """The test app; ``settings`` override its defaults (history for every room)."""
    settings.setdefault("history_size", 100)
    settings.setdefault("shutdown_timeout", 1.0)
    app = App(**settings)
    tasks: set[asyncio.Task[Any]] = set()

    @app.socket("join")
    async def join(ws: Any, data: Any) -> Any:
        ws.join(data)
        position = await ws.hub.position(data)
        return position.as_dict() if position is not None else True

    @app.socket("leave")
    def leave(ws: Any, data: Any) -> bool:
        ws.leave(data)
        return True

    @app.socket("say")
    def say(ws: Any, data: Any) -> bool:
        ws.hub.broadcast({"text": data["text"]}, type="said", room=data["room"])
        return True

    @app.socket("add")
    def add(data: Any) -> Any:
        return data["a"] + data["b"]

    @app.socket("ask")
    async def ask(ws: Any, data: Any) -> bool:
        """Ask the client (a request from the server), then tell it what it answered."""

        async def run() -> None:
            try:
                answer = await ws.request("confirm", data, timeout=5)
                ws.hub.send(ws.id, {"answer": answer}, type="answered")
            except Exception as exc:
                ws.hub.send(
                    ws.id, {"error": getattr(exc, "code", type(exc).__name__)}, type="answered"
                )

        task = asyncio.get_running_loop().create_task(run())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return True

    @app.route("/control/publish/{room}/{count}", methods=["post"])
    async def publish(req: Any, res: Any, room: str, count: int) -> None:
        for n in range(count):
            app.hub.broadcast({"n": n}, type="news", room=room)
        position = await app.hub.position(room)
        res.json = {"offset": position.offset if position is not None else None}

    @app.route("/control/kick", methods=["post"])
    async def kick(req: Any, res: Any) -> None:
        """Close every connection from the server's side (1012), then publish to the
        room named in the query (``?room=r&count=3``): what a client misses meanwhile."""
        for conn_id in list(app.hub.local_ids):
            await app.hub.disconnect(conn_id, CloseCode.SERVICE_RESTART, "kicked by the test")
        room = req.query_params.get("room")
        for n in range(int(req.query_params.get("count", "0"))):
            app.hub.broadcast({"n": n}, type="news", room=room)
        res.json = {"kicked": True}

    @app.route("/control/drain", methods=["post"])
    async def drain(req: Any, res: Any) -> None:
        await app.hub.shutdown(message={"bye": True}, timeout=1.0)
        res.json = {"drained": True}

    @app.route("/control/count")
    async def count(req: Any, res: Any) -> None:
        res.json = {"count": app.hub.local_count}

    return app
