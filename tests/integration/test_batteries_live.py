"""HTTP batteries over a real socket: server-sent events and background tasks on uvicorn."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest

from bocadillo import App, server_event

pytestmark = pytest.mark.integration

WAIT = 10.0  # seconds: a bound on waiting for the server, never a sleep


def read_event(lines: Iterator[str]) -> list[str]:
    """Read the lines of one server-sent event (up to its blank line)."""
    event: list[str] = []
    for line in lines:
        if line == "":
            return event
        event.append(line)
    raise AssertionError(f"the stream ended in the middle of an event: {event}")


def sse_app(stopped: threading.Event, log: list[str], **settings: Any) -> App:
    """An app whose ``/events`` stream sends one event per ``POST /next``, forever."""
    app = App(**settings)
    state: dict[str, asyncio.Event] = {}

    @app.on("startup")
    async def make_gate():
        state["next"] = asyncio.Event()

    @app.route("/next", methods=["POST"])
    async def release_next(req, res):
        state["next"].set()
        res.status_code = 204

    @app.route("/events")
    async def events(req, res):
        @res.event_stream
        async def stream():
            try:
                number = 0
                while True:
                    number += 1
                    log.append(f"sent {number}")
                    yield server_event({"n": number}, event="count", id=number)
                    await state["next"].wait()
                    state["next"].clear()
            finally:
                log.append("stopped")
                stopped.set()

    return app


@pytest.mark.parametrize(
    "settings",
    [{}, {"gzip": True, "gzip_min_size": 1}],
    ids=["plain", "gzip-on"],  # GZip must not buffer an event stream
)
def test_sse_events_arrive_one_by_one_and_the_generator_stops_on_disconnect(
    live_server, settings: dict[str, Any]
):
    stopped = threading.Event()
    log: list[str] = []
    server = live_server(sse_app(stopped, log, **settings))

    with httpx.Client(base_url=server.url, timeout=WAIT) as client:
        with client.stream("GET", "/events", headers={"Accept-Encoding": "gzip"}) as response:
            assert response.status_code == 200
            assert response.headers["content-type"].startswith("text/event-stream")
            assert response.headers["cache-control"] == "no-cache"
            assert "content-encoding" not in response.headers
            lines = response.iter_lines()

            # The first event arrives while the generator is still waiting for /next.
            assert read_event(lines) == ["id: 1", "event: count", 'data: {"n":1}']
            assert log == ["sent 1"]

            assert httpx.post(server.url + "/next", timeout=WAIT).status_code == 204
            assert read_event(lines) == ["id: 2", "event: count", 'data: {"n":2}']

            assert httpx.post(server.url + "/next", timeout=WAIT).status_code == 204
            assert read_event(lines) == ["id: 3", "event: count", 'data: {"n":3}']
            assert not stopped.is_set()
        # Leaving the block closes the connection in the middle of the stream.

    assert stopped.wait(WAIT), "the event generator did not stop after the client left"
    assert log == ["sent 1", "sent 2", "sent 3", "stopped"]


def test_sse_generator_stops_when_the_client_leaves_before_any_event(live_server):
    stopped = threading.Event()
    started = threading.Event()
    app = App()

    @app.route("/quiet")
    async def quiet(req, res):
        @res.event_stream
        async def stream():
            try:
                started.set()
                yield server_event(comment="connected")
                await asyncio.Event().wait()  # nothing else, ever
                yield server_event("unreachable")
            finally:
                stopped.set()

    server = live_server(app)

    with (
        httpx.Client(base_url=server.url, timeout=WAIT) as client,
        client.stream("GET", "/quiet") as response,
    ):
        assert next(response.iter_lines()) == ": connected"
        assert started.is_set()

    assert stopped.wait(WAIT), "the event generator did not stop after the client left"


def test_background_task_runs_after_the_client_received_the_response(live_server):
    release = threading.Event()
    sync_done = threading.Event()
    async_done = threading.Event()
    results: list[tuple[str, bool]] = []
    app = App()

    def sync_task(name: str) -> None:
        # Blocks until the test has the response in hand: if the task ran before the
        # response was sent, the client would time out instead.
        results.append((name, release.wait(WAIT)))
        sync_done.set()

    async def async_task(name: str) -> None:
        results.append((name, await asyncio.to_thread(release.wait, WAIT)))
        async_done.set()

    @app.route("/work")
    async def work(req, res):
        res.background(sync_task, "sync")
        res.background(async_task, "async")
        res.json = {"accepted": True}

    server = live_server(app)

    response = httpx.get(server.url + "/work", timeout=WAIT / 2)

    assert response.status_code == 200
    assert response.json() == {"accepted": True}
    assert results == []
    release.set()
    assert sync_done.wait(WAIT)
    assert async_done.wait(WAIT)
    assert results == [("sync", True), ("async", True)]
