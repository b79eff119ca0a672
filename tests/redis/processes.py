"""Two uvicorn processes of one app on one server (Redis or NATS), and a client's calls on
the message-type endpoint: what the multi-process tests share."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection

from tests.uvicorn_process import UvicornProcess

__all__ = ["TIMEOUT", "call", "hub_env", "processes", "recv"]

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
