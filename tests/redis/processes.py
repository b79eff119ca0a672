"""Two uvicorn processes of one app on one server (Redis or NATS), and a client's calls on
the message-type endpoint: what the multi-process tests share."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx2 as httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.uvicorn_process import UvicornProcess

__all__ = ["TIMEOUT", "Peer", "call", "hub_env", "processes", "recv", "stats"]

#: Upper bound for any wait (the machine may be busy): never an expectation about speed.
TIMEOUT = 20.0


@contextmanager
def processes(
    app: str, tmp_path: Path, env: dict[str, str], *, clean_logs: bool = True
) -> Iterator[list[UvicornProcess]]:
    """Start two processes of ``app`` with ``env``; kill them at the end and, with
    ``clean_logs``, check that neither logged a traceback."""
    started: list[UvicornProcess] = []
    try:
        for name in ("one", "two"):
            started.append(UvicornProcess(app, tmp_path / f"{name}.log", env=env).start())
        yield started
    finally:
        for server in started:
            server.kill()
    if clean_logs:
        for server in started:
            assert "Traceback" not in server.log, server.log


def hub_env(url: str, prefix: str, heartbeat_ttl: float = 2.0) -> dict[str, str]:
    """The environment putting an app's hub on the server (Redis or NATS) at ``url``."""
    return {
        "BOCADILLO_HUB_URL": url,
        "BOCADILLO_HUB_PREFIX": prefix,
        "BOCADILLO_HUB_HEARTBEAT_TTL": str(heartbeat_ttl),
    }


async def recv(ws: ClientConnection) -> Any:
    return json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))


async def call(ws: ClientConnection, kind: str, data: Any = None, id: Any = 1) -> Any:
    """Send a request; return its response, skipping the pushes that came before it."""
    await ws.send(json.dumps({"type": kind, "data": data, "id": id}))
    while True:
        message = await recv(ws)
        if message.get("id") == id and message["type"] in ("response", "error"):
            assert message["type"] == "response", message
            return message["data"]


class Peer:
    """A client of the message-type endpoint: calls with ids, and the pushes it got."""

    def __init__(self, ws: ClientConnection, welcome: dict[str, Any]) -> None:
        self.ws = ws
        self.id: str = welcome["id"]
        self.pid: int = welcome["pid"]
        self.pushes: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._waiting: dict[int, asyncio.Future[Any]] = {}
        self._reader = asyncio.get_running_loop().create_task(self._read())

    @classmethod
    async def open(cls, server: UvicornProcess) -> Peer:
        ws = await connect(f"{server.ws_url}/ws", open_timeout=TIMEOUT)
        welcome = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        assert welcome["type"] == "welcome", welcome
        return cls(ws, welcome["data"])

    async def _read(self) -> None:
        try:
            async for raw in self.ws:
                message = json.loads(raw)
                waiter = self._waiting.pop(message.get("id"), None)
                if waiter is not None and message["type"] in ("response", "error"):
                    waiter.set_result(message)
                else:
                    self.pushes.append(message)
        except ConnectionClosed:
            pass

    async def call(self, kind: str, data: Any = None) -> Any:
        request_id = next(self._ids)
        waiter = asyncio.get_running_loop().create_future()
        self._waiting[request_id] = waiter
        await self.ws.send(json.dumps({"type": kind, "data": data, "id": request_id}))
        reply = await asyncio.wait_for(waiter, TIMEOUT)
        assert reply["type"] == "response", reply
        return reply["data"]

    def got(self, kind: str) -> list[Any]:
        return [push["data"] for push in self.pushes if push["type"] == kind]

    async def close(self) -> None:
        await self.ws.close()
        await asyncio.gather(self._reader, return_exceptions=True)


async def stats(server: UvicornProcess) -> dict[str, Any]:
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        response = await client.get(f"{server.url}/stats")
        response.raise_for_status()
        data: dict[str, Any] = response.json()
        return data
