"""Prometheus metrics scraped from real servers and parsed with prometheus-client's parser.

One process (``LiveServer``): the hub's figures and the HTTP requests by route template.
Two workers (``uvicorn --workers 2`` in multiprocess mode): whichever worker answers a
scrape, it counts every worker's requests and connections.
"""

from __future__ import annotations

import asyncio
import json
import sys
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import InvalidStatus
from websockets.typing import Origin

from bocadillo import App, MissingDependency
from tests.live import eventually
from tests.metrics.app import create_app
from tests.uvicorn_process import UvicornProcess

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

TIMEOUT = 20.0
GOOD = Origin("http://good.example")


async def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``url``'s text format, by name and labels."""
    async with httpx.AsyncClient(timeout=TIMEOUT) as client:
        answer = await client.get(url + "/metrics")
    assert answer.status_code == 200
    assert answer.headers["content-type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(answer.text):
        for sample in family.samples:
            labels = tuple(sorted(sample.labels.items()))
            samples[(sample.name, labels)] = sample.value
    return samples


def value(samples: dict[Any, float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


async def whoami(ws: ClientConnection, request_id: int) -> int:
    await ws.send(json.dumps({"type": "whoami", "id": request_id}))
    reply = json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))
    assert reply["type"] == "response"
    return int(reply["data"])


async def test_one_process_exposes_hub_and_http_metrics(live_server):
    app = create_app()
    server = live_server(app)
    async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
        for pk in (1, 2, 3):
            assert (await client.get(f"/items/{pk}")).status_code == 200
        assert (await client.get("/nowhere/1")).status_code == 404
        assert (await client.get("/nowhere/2")).status_code == 404
        assert (await client.get("/boom")).status_code == 500
    with pytest.raises(InvalidStatus):
        async with connect(server.ws_url + "/ws", origin=Origin("http://evil.example")):
            pass
    async with connect(server.ws_url + "/ws", origin=GOOD) as ws:
        await whoami(ws, 1)
        samples = await scrape(server.url)

        assert value(samples, "bocadillo_websocket_connections") == 1
        assert value(samples, "bocadillo_websocket_connections_opened_total") == 1
        assert value(samples, "bocadillo_websocket_messages_received_total") == 1
        assert value(samples, "bocadillo_websocket_messages_sent_total") == 1
        assert value(samples, "bocadillo_websocket_received_bytes_total") > 0
        assert (
            value(samples, "bocadillo_websocket_rejected_connections_total", reason="origin") == 1
        )
        # The route template, not the path: one series for every item.
        get = {"method": "GET"}
        assert (
            value(
                samples,
                "bocadillo_http_requests_total",
                **get,
                route="/items/{pk}",
                status="200",
            )
            == 3
        )
        assert (
            value(
                samples, "bocadillo_http_requests_total", **get, route="<unmatched>", status="404"
            )
            == 2
        )
        assert (
            value(samples, "bocadillo_http_requests_total", **get, route="/boom", status="500") == 1
        )
        assert (
            value(
                samples,
                "bocadillo_http_request_duration_seconds_count",
                **get,
                route="/items/{pk}",
            )
            == 3
        )
        assert (
            value(
                samples,
                "bocadillo_http_request_duration_seconds_sum",
                **get,
                route="/items/{pk}",
            )
            > 0
        )

    await eventually(lambda: app.hub.local_count == 0, timeout=TIMEOUT)
    samples = await scrape(server.url)
    assert value(samples, "bocadillo_websocket_connections") == 0
    assert value(samples, "bocadillo_websocket_connections_opened_total") == 1


def test_metrics_off_by_default():
    app = App()
    assert app.metrics is None
    assert "metrics" not in {getattr(route, "name", None) for route in app.router.routes}


async def test_two_workers_scrape_counts_every_worker(tmp_path: Path):
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    server = UvicornProcess(
        "tests.metrics.app:app",
        tmp_path / "uvicorn.log",
        env={"PROMETHEUS_MULTIPROC_DIR": str(metrics_dir)},
        args=("--workers", "2"),
    )
    server.start()
    try:
        await eventually(lambda: len(server.workers()) == 2, timeout=TIMEOUT)
        # HTTP: a new connection per request, until both workers have answered.
        pids: set[int] = set()
        requests = 0
        while len(pids) < 2 and requests < 200:
            async with httpx.AsyncClient(base_url=server.url, timeout=TIMEOUT) as client:
                pids.add((await client.get(f"/items/{requests}")).json()["pid"])
            requests += 1
        assert pids == set(server.workers())

        # WebSockets: connections held open, until both workers hold some.
        async with AsyncExitStack() as stack:
            ws_pids: set[int] = set()
            opened = 0
            while len(ws_pids) < 2 and opened < 200:
                ws = await stack.enter_async_context(connect(server.ws_url + "/ws", origin=GOOD))
                opened += 1
                ws_pids.add(await whoami(ws, opened))
            assert ws_pids == set(server.workers())

            async def counted() -> bool:
                samples = await scrape(server.url)
                return (
                    value(samples, "bocadillo_websocket_connections") == opened
                    and value(samples, "bocadillo_websocket_messages_received_total") == opened
                    and value(
                        samples,
                        "bocadillo_http_requests_total",
                        method="GET",
                        route="/items/{pk}",
                        status="200",
                    )
                    == requests
                )

            # Each worker writes its hub's figures every metrics_interval (1 s).
            await eventually(counted, timeout=TIMEOUT)

        # Closed connections leave the gauge, not the counter.
        async def closed() -> bool:
            samples = await scrape(server.url)
            return (
                value(samples, "bocadillo_websocket_connections") == 0
                and value(samples, "bocadillo_websocket_connections_opened_total") == opened
            )

        await eventually(closed, timeout=TIMEOUT)
    finally:
        server.stop()


def test_metrics_without_prometheus_client_say_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails
    app = App(metrics_endpoint="/metrics")
    with pytest.raises(MissingDependency, match=r"bocadillo\[metrics\]"):
        app.metrics  # noqa: B018


async def test_drops_are_counted_by_policy():
    app = App(metrics_endpoint="/metrics")
    metrics = app.metrics
    assert metrics is not None
    app.hub.counters.drop("drop_oldest")
    app.hub.counters.drop("drop_newest")
    app.hub.counters.drop("drop_oldest")
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }
    name = "bocadillo_websocket_dropped_messages_total"
    assert value(samples, name, policy="drop_oldest") == 2
    assert value(samples, name, policy="drop_newest") == 1
