"""Streams over a real uvicorn: a client that leaves stops the generator, even one that never
awaits, and ``raise_on_disconnect=True`` hands it ``ClientDisconnect`` (Bocadillo 0.18)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import httpx2 as httpx
import pytest

from bocadillo import App, ClientDisconnect, LiveServer, server_event

pytestmark = pytest.mark.integration

WAIT = 10.0  # seconds: a bound on waiting for the server, never a sleep


def endless_app(
    kind: str, raise_on_disconnect: bool, ended: threading.Event, log: list[str]
) -> App:
    """``/endless`` yields forever without awaiting anything between two chunks."""
    app = App()

    async def chunks():
        try:
            while True:
                yield server_event("tick") if kind == "events" else "∞"
        except ClientDisconnect:
            log.append("ClientDisconnect")
        finally:
            log.append("finally")
            ended.set()

    @app.route("/endless")
    async def endless(req, res):
        stream: Callable[..., Any] = res.event_stream if kind == "events" else res.stream
        if raise_on_disconnect:
            stream(raise_on_disconnect=True)(chunks)
        else:
            stream(chunks)

    return app


@pytest.mark.parametrize("kind", ["stream", "events"])
@pytest.mark.parametrize("raise_on_disconnect", [False, True])
def test_a_generator_that_never_awaits_stops_when_the_client_leaves(kind, raise_on_disconnect):
    ended = threading.Event()
    log: list[str] = []
    app = endless_app(kind, raise_on_disconnect, ended, log)

    with LiveServer(app) as server:
        with httpx.stream("GET", server.url("/endless"), timeout=WAIT) as response:
            assert response.status_code == 200
            received = 0
            for chunk in response.iter_bytes():
                received += len(chunk)
                if received > 10_000:
                    break  # leave in the middle of the endless body
        assert ended.wait(WAIT), "the generator kept running after the client left"
        # The server is still responsive: the loop was never monopolised.
        assert httpx.get(server.url("/missing"), timeout=WAIT).status_code == 404

    expected = ["ClientDisconnect", "finally"] if raise_on_disconnect else ["finally"]
    assert log == expected
