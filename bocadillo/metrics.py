"""Prometheus metrics: the hub's counters and gauges, and HTTP requests by route.

Opt in with the ``metrics_endpoint`` setting (``App(metrics_endpoint="/metrics")``) and
the ``metrics`` extra (``pip install bocadillo[metrics]``, which brings
``prometheus-client``). The endpoint answers in Prometheus' text format.

One process: each scrape reads the hub's live figures. Several processes (``uvicorn
--workers N``): set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory shared by the
workers (prometheus-client's multiprocess mode). Each worker then writes its figures to
files there, at each scrape it answers and every ``metrics_interval`` seconds, and any
worker answers a scrape with the sum over every worker. A worker that stops takes its
gauges (open connections, rooms) with it; its counters stay counted.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .errors import MissingDependency
from .types import ASGIApp, Message, Receive, Scope, Send

if TYPE_CHECKING:
    from .applications import App

__all__ = ["HUB_COUNTERS", "HTTPMetricsMiddleware", "Metrics", "UNMATCHED_ROUTE"]

#: Label of the requests that no route matched (404s): one series, whatever the path.
UNMATCHED_ROUTE = "<unmatched>"

#: ``hub.stats()`` counters and the Prometheus counter each one feeds (``_total`` is
#: added by prometheus-client), with its help text.
HUB_COUNTERS: dict[str, tuple[str, str]] = {
    "connections_total": (
        "bocadillo_websocket_connections_opened",
        "WebSocket connections accepted",
    ),
    "messages_received": (
        "bocadillo_websocket_messages_received",
        "WebSocket messages received from clients",
    ),
    "messages_sent": (
        "bocadillo_websocket_messages_sent",
        "WebSocket messages sent to clients",
    ),
    "bytes_received": (
        "bocadillo_websocket_received_bytes",
        "Bytes of WebSocket messages received from clients",
    ),
    "bytes_sent": ("bocadillo_websocket_sent_bytes", "Bytes of WebSocket messages sent"),
    "errors": (
        "bocadillo_websocket_errors",
        "Failed sends and socket handlers that raised",
    ),
    "unknown_replies": (
        "bocadillo_websocket_unknown_replies",
        "Client replies that matched no pending server request",
    ),
    "published": (
        "bocadillo_hub_published_frames",
        "Frames published to the other processes through the backend",
    ),
    "remote_frames": (
        "bocadillo_hub_remote_frames",
        "Frames received from the other processes",
    ),
    "invalid_frames": (
        "bocadillo_hub_invalid_frames",
        "Frames from the backend that could not be decoded",
    ),
    "resumes": (
        "bocadillo_websocket_resumes",
        "Resume requests served (rooms re-joined, missed messages replayed)",
    ),
}
#: Labeled counters: ``hub.stats()`` key, metric, help, label name.
_LABELED: tuple[tuple[str, str, str, str], ...] = (
    (
        "dropped_by_policy",
        "bocadillo_websocket_dropped_messages",
        "Messages dropped by a slow client's outbox, by overflow policy",
        "policy",
    ),
    (
        "rejected_by_reason",
        "bocadillo_websocket_rejected_connections",
        "WebSocket connections refused, by reason",
        "reason",
    ),
)
#: Backend figures that are levels, not totals.
_BACKEND_GAUGES = frozenset({"connected", "queued", "rooms_subscribed"})


def _client() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MissingDependency(
            "metrics need prometheus-client: pip install 'bocadillo[metrics]'"
        ) from None
    return prometheus_client


def multiprocess_dir() -> str | None:
    """The directory of prometheus-client's multiprocess mode, if it is on."""
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.environ.get("prometheus_multiproc_dir")


class Metrics:
    """The metrics of one app: its hub's figures and its HTTP requests.

    Args:
        stats: Returns the hub's figures (``hub.stats``); called on the event loop.
    """

    def __init__(self, stats: Callable[[], dict[str, Any]]) -> None:
        client = _client()
        self._client = client
        self._stats = stats
        self.multiprocess = multiprocess_dir() is not None
        # One process: the app's own registry. Several: every value goes to the
        # multiprocess files, and a scrape reads those (registry=None registers nothing).
        self.registry: Any = None if self.multiprocess else client.CollectorRegistry()
        registry = self.registry
        live = {"multiprocess_mode": "livesum"}
        self._gauges = {
            "connections": client.Gauge(
                "bocadillo_websocket_connections",
                "Open WebSocket connections",
                registry=registry,
                **live,
            ),
            "rooms": client.Gauge(
                "bocadillo_websocket_rooms",
                "Rooms with at least one member",
                registry=registry,
                **live,
            ),
        }
        self._counters = {
            key: client.Counter(name, text, registry=registry)
            for key, (name, text) in HUB_COUNTERS.items()
        }
        self._labeled = {
            key: client.Counter(name, text, [label], registry=registry)
            for key, name, text, label in _LABELED
        }
        self._backend_events = client.Counter(
            "bocadillo_hub_backend_events",
            "Events of the shared backend (publish failures, reconnects...), by event",
            ["event"],
            registry=registry,
        )
        self._backend_levels = client.Gauge(
            "bocadillo_hub_backend",
            "Levels of the shared backend (connected, queued frames), by figure",
            ["figure"],
            registry=registry,
            **live,
        )
        #: HTTP requests by method, route template and status.
        self.requests = client.Counter(
            "bocadillo_http_requests",
            "HTTP requests answered, by method, route template and status",
            ["method", "route", "status"],
            registry=registry,
        )
        #: HTTP request durations by method and route template.
        self.latency = client.Histogram(
            "bocadillo_http_request_duration_seconds",
            "Time to answer an HTTP request, by method and route template",
            ["method", "route"],
            registry=registry,
        )
        # What was last written, to add only the difference: in multiprocess mode,
        # several apps of one process add up.
        self._seen: dict[tuple[str, str], float] = {}

    def _add(self, key: tuple[str, str], value: float, metric: Any) -> None:
        delta = value - self._seen.get(key, 0)
        if delta:
            metric.inc(delta)
            self._seen[key] = value

    def sync(self) -> None:
        """Write the hub's current figures to the metrics (call on the event loop)."""
        stats = self._stats()
        for key, gauge in self._gauges.items():
            self._add(("gauge", key), stats.get(key, 0), gauge)
        for key, counter in self._counters.items():
            self._add(("counter", key), stats.get(key, 0), counter)
        for key, labeled in self._labeled.items():
            for label, value in stats.get(key, {}).items():
                self._add((key, label), value, labeled.labels(label))
        for name, value in stats.get("backend", {}).items():
            if name in _BACKEND_GAUGES:
                self._add(("backend_level", name), value, self._backend_levels.labels(name))
            else:
                self._add(("backend_event", name), value, self._backend_events.labels(name))

    def exposition(self) -> tuple[bytes, str]:
        """Sync, then the text a scrape gets, and its content type."""
        client = self._client
        self.sync()
        registry = self.registry
        if registry is None:
            from prometheus_client import multiprocess

            registry = client.CollectorRegistry()
            multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return client.generate_latest(registry), client.CONTENT_TYPE_LATEST

    async def sync_job(self) -> None:
        """The periodic job of multiprocess mode (on the loop: ``hub.stats`` is not
        thread-safe)."""
        self.sync()

    def process_ended(self) -> None:
        """At shutdown: in multiprocess mode, this worker's last counts are written and
        its gauges stop counting."""
        if self.multiprocess:
            self.sync()
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())  # type: ignore[no-untyped-call]


def route_template(scope: Scope) -> str:
    """The template of the route that served ``scope`` (``/items/{pk}``), or
    ``UNMATCHED_ROUTE``."""
    route = scope.get("route")
    if route is None:
        return UNMATCHED_ROUTE
    template = getattr(route, "path_format", None) or getattr(route, "path", None)
    return str(template) if template is not None else UNMATCHED_ROUTE


class HTTPMetricsMiddleware:
    """Counts HTTP requests and times them, by method, route template and status.

    Pure ASGI, outermost: it sees the status of every answer, 500s included. Other
    scopes (WebSocket, lifespan) pass through.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            method = str(scope.get("method", ""))
            route = route_template(scope)
            metrics = self.metrics
            metrics.requests.labels(method, route, str(status)).inc()
            metrics.latency.labels(method, route).observe(time.perf_counter() - start)


def install(app: App) -> Metrics:
    """Set up ``app``'s metrics: the sync job (multiprocess mode) and the shutdown mark."""
    hub = app.hub
    metrics = Metrics(hub.stats)
    if metrics.multiprocess:
        from .realtime.jobs import Job

        app.jobs.add(Job(metrics.sync_job, float(app.settings["metrics_interval"])))
        app.on("shutdown", metrics.process_ended)
    return metrics
