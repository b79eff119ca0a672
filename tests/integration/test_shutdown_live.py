"""Graceful shutdown of a real ``uvicorn app:app`` process on SIGTERM.

uvicorn on its own closes every WebSocket with 1012 the moment it gets the signal. The hub
wraps uvicorn's signal handlers (``bocadillo/realtime/drain.py``) so that the first
SIGTERM drains first: every client gets the shutdown notice after what was already queued
for it, then a 1001 close, and connections attempted meanwhile are refused. The server is
``tests/integration/shutdown_app.py``, started as ``python -m uvicorn`` on a loopback
socket bound by the test (``--fd``); the signal goes to that process only, and the process
is killed by its PID whatever happens. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect

from bocadillo import CloseCode
from tests.live import eventually, listening_socket, read_until_closed, stalled_client
from tests.uvicorn_process import spawn_uvicorn

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

APP = "tests.integration.shutdown_app:app"
NOTICE = "server going away"
#: Upper bound for any wait (the machine may be busy): never an expectation about speed.
TIMEOUT = 30.0
#: A burst of BURST messages of PAD bytes is more than the kernel buffers of one TCP
#: connection hold (tcp_wmem allows 4 MiB at most), so the rest waits in its outbox.
BURST = 100
PAD = 60_000


class Served:
    """A ``python -m uvicorn`` subprocess serving ``shutdown_app``."""

    def __init__(self, log_path: Path, env: dict[str, str], args: list[str]) -> None:
        # uvicorn serves a socket bound here (--fd): the port is never free in between.
        listener = listening_socket()
        self.port: int = listener.getsockname()[1]
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{self.port}"
        self.ws_url = f"ws://127.0.0.1:{self.port}"
        self.process = spawn_uvicorn(APP, listener, log_path, {**os.environ, **env}, args)

    @property
    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    async def wait_ready(self) -> None:
        async with httpx.AsyncClient(timeout=5) as client:

            async def answers() -> bool:
                if self.process.poll() is not None:
                    raise AssertionError(f"uvicorn exited early:\n{self.log}")
                try:
                    return bool((await client.get(self.url + "/count")).status_code == 200)
                except httpx.TransportError:
                    return False

            try:
                await eventually(answers, 20.0, interval=0.05)
            except AssertionError:
                raise AssertionError(f"uvicorn did not answer in time:\n{self.log}") from None

    async def get(self, path: str) -> Any:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.get(self.url + path)
        assert response.status_code == 200
        return response.json()

    async def post(self, path: str, **params: Any) -> Any:
        async with httpx.AsyncClient(timeout=TIMEOUT) as client:
            response = await client.post(self.url + path, params=params)
        assert response.status_code == 200
        return response.json()

    async def wait_for_count(self, expected: int) -> None:
        async def reached() -> bool:
            return bool((await self.get("/count"))["count"] == expected)

        await eventually(reached, 10.0, what=f"hub count reaches {expected}")

    def sigterm(self) -> None:
        os.kill(self.process.pid, signal.SIGTERM)

    async def wait_exit(self) -> int:
        try:
            return await asyncio.to_thread(self.process.wait, TIMEOUT)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"uvicorn did not exit in time:\n{self.log}") from None

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(TIMEOUT)


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """Start ``shutdown_app`` under uvicorn: ``serve(*uvicorn_args, **env)``, settings as
    ``BOCADILLO_*`` variables."""
    started: list[Served] = []

    def start(*args: str, **env: str) -> Served:
        served = Served(tmp_path / f"uvicorn-{len(started)}.log", env, list(args))
        started.append(served)
        return served

    try:
        yield start
    finally:
        for served in started:
            served.kill()


async def read_json_until_closed(ws: ClientConnection) -> list[Any]:
    """Every message (decoded JSON) the server sent before it closed the connection."""
    return [json.loads(message) for message in await read_until_closed(ws, TIMEOUT)]


def assert_clean_exit(served: Served, returncode: int, *, graceful_timeout: bool = False) -> None:
    # uvicorn finishes its shutdown (lifespan included), then raises the signal it caught
    # again with the default handler, so the exit status says "terminated by SIGTERM"
    # (-15 here, 143 in a shell), as it does for any app; the log tells it was graceful.
    assert returncode == -signal.SIGTERM, served.log
    log = served.log
    assert "Application shutdown complete." in log
    assert "Finished server process" in log
    assert "Traceback" not in log
    # uvicorn logs an ERROR when --timeout-graceful-shutdown runs out, and only then.
    assert ("timeout graceful shutdown exceeded" in log) is graceful_timeout
    assert log.count("ERROR") == (1 if graceful_timeout else 0)


def small_buffer_socket(port: int) -> socket.socket:
    """A connected TCP socket whose receive buffer holds only a few kilobytes."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8192)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_sigterm_sends_notice_then_closes_every_client_with_1001(serve):
    served = serve()
    try:
        await served.wait_ready()
        feeds = [await connect(served.ws_url + "/feed") for _ in range(15)]
        sockets = [await connect(served.ws_url + "/ws") for _ in range(5)]
        for ws in feeds:
            assert "id" in json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
        for n, ws in enumerate(sockets):
            await ws.send(json.dumps({"type": "join", "data": f"room-{n}", "id": n}))
            reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
            assert reply == {"type": "response", "data": {"joined": f"room-{n}"}, "id": n}
        await served.wait_for_count(20)

        served.sigterm()

        # The notice is the last message of every client, then 1001 (not uvicorn's 1012).
        for ws in feeds:
            assert await read_json_until_closed(ws) == [NOTICE]
        for ws in sockets:
            assert await read_json_until_closed(ws) == [{"type": "shutdown", "data": NOTICE}]
        for ws in feeds + sockets:
            assert ws.close_code == CloseCode.GOING_AWAY
            assert ws.close_reason == "server shutdown"
        assert_clean_exit(served, await served.wait_exit())
    finally:
        served.kill()


async def test_sigterm_refuses_new_connections_while_draining(serve):
    # One client that never reads keeps the drain busy for the whole shutdown_timeout.
    served = serve(BOCADILLO_SHUTDOWN_TIMEOUT="3")
    stalled: socket.socket | None = None
    try:
        await served.wait_ready()
        healthy = [await connect(served.ws_url + "/feed") for _ in range(5)]
        for ws in healthy:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        stalled = await stalled_client(served.port, "/feed?room=slow")
        await served.wait_for_count(6)
        assert (await served.post("/blast", n=BURST, size=PAD, room="slow"))["delivered"] == BURST
        assert max((await served.get("/pending"))["pending"]) > 0  # the stalled client's

        served.sigterm()
        for ws in healthy:
            assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT)) == NOTICE

        # Draining: the handshake succeeds, then the server closes at once with 1001.
        for path in ("/feed", "/ws"):
            async with connect(served.ws_url + path) as late:
                assert await read_json_until_closed(late) == []
                assert late.close_code == CloseCode.GOING_AWAY
                assert late.close_reason == "shutting down"
        # The server still answers HTTP, and never registered the late connections.
        assert (await served.get("/count"))["count"] == 6

        for ws in healthy:
            assert await read_json_until_closed(ws) == []
            assert ws.close_code == CloseCode.GOING_AWAY
        # uvicorn itself waits for every TCP connection to end, and one whose client reads
        # nothing never ends: the stalled client goes away now.
        stalled.close()
        assert_clean_exit(served, await served.wait_exit())
    finally:
        if stalled is not None:
            stalled.close()
        served.kill()


async def test_sigterm_delivers_queued_messages_before_closing(serve):
    asyncio.get_running_loop().set_debug(False)  # megabytes to read
    served = serve(BOCADILLO_SHUTDOWN_TIMEOUT="30")
    clients = 3
    try:
        await served.wait_ready()
        # Small buffers, a small client queue and no compression (the padding would
        # shrink to nothing): the clients stop reading after a few messages, so the end
        # of the burst waits in the server's outboxes.
        feeds = [
            await connect(
                served.ws_url + "/feed",
                sock=small_buffer_socket(served.port),
                max_queue=4,
                compression=None,
            )
            for _ in range(clients)
        ]
        for ws in feeds:
            await asyncio.wait_for(ws.recv(), TIMEOUT)
        await served.wait_for_count(clients)
        result = await served.post("/blast", n=BURST, size=PAD)
        assert result["delivered"] == clients * BURST
        pending = (await served.get("/pending"))["pending"]
        assert len(pending) == clients
        assert min(pending) > 0

        served.sigterm()

        # Read them all at once: the closes come only once every outbox is drained.
        results = await asyncio.gather(*(read_json_until_closed(ws) for ws in feeds))
        for ws, received in zip(feeds, results, strict=True):
            assert [m["seq"] for m in received[:-1]] == list(range(BURST))
            assert received[-1] == NOTICE
            assert ws.close_code == CloseCode.GOING_AWAY
        assert_clean_exit(served, await served.wait_exit())
    finally:
        served.kill()


async def test_sigterm_with_a_client_that_reads_nothing_exits_within_the_timeouts(serve):
    # The stalled client never gets its close frame and its TCP connection never ends:
    # the hub gives up after shutdown_timeout, and uvicorn, which would wait for the
    # connection forever, gives up after --timeout-graceful-shutdown.
    served = serve("--timeout-graceful-shutdown", "1", BOCADILLO_SHUTDOWN_TIMEOUT="1")
    stalled: socket.socket | None = None
    try:
        await served.wait_ready()
        stalled = await stalled_client(served.port, "/feed?room=slow")
        await served.wait_for_count(1)
        assert (await served.post("/blast", n=BURST, size=PAD, room="slow"))["delivered"] == BURST
        assert (await served.get("/pending"))["pending"][0] > 0

        served.sigterm()

        assert_clean_exit(served, await served.wait_exit(), graceful_timeout=True)
    finally:
        if stalled is not None:
            stalled.close()
        served.kill()
