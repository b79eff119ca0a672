"""The backend contract suite runs every test against each backend.

``backend_url`` is parametrized: ``memory://`` (the in-process default), ``redis://`` (a
real ``redis-server``, then a real ``valkey-server``: the ``start_redis`` fixture),
``redis+cluster://`` (a real cluster of six ``redis-server``, then of six
``valkey-server``: the session's ``redis_clusters``) and ``nats://`` (a real
``nats-server`` with JetStream, the ``nats_server`` fixture); a prefix per test.
``make_node`` and ``make_hub`` start backends and hubs on it; every one is stopped at
teardown. With Redis or NATS, the backends and hubs made in one test share the server and
the prefix, as the processes of one app do. ``test_redis.py`` and ``test_nats.py``
override ``backend_url``: what crosses processes, and what only that broker has, runs on
it alone; ``test_history_contract.py`` overrides it with Redis and NATS, the backends that
keep room history.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bocadillo.realtime.backends import backend_from_url
from bocadillo.realtime.history import RoomRules
from bocadillo.realtime.hub import Hub, HubLimits
from tests.backends.support import Node
from tests.nats_server import NatsServer
from tests.redis_cluster import LocalRedisCluster
from tests.redis_server import Flavor, RedisServer

BACKENDS = [
    "memory",
    pytest.param("redis", marks=pytest.mark.redis),
    pytest.param("valkey", marks=pytest.mark.valkey),
    pytest.param("redis_cluster", marks=[pytest.mark.redis, pytest.mark.redis_cluster]),
    pytest.param("valkey_cluster", marks=[pytest.mark.valkey, pytest.mark.redis_cluster]),
    pytest.param("nats", marks=pytest.mark.nats),
]


@pytest.fixture(params=BACKENDS)
def backend_url(request: pytest.FixtureRequest) -> str:
    """The URL of the backend under test: of a server of ``start_redis`` or of the
    ``nats_server`` fixture; for a cluster, of the session's (healthy at the start of the
    test)."""
    if request.param == "memory":
        return "memory://"
    if request.param == "nats":
        nats: NatsServer = request.getfixturevalue("nats_server")
        return nats.url
    flavor: Flavor = "valkey" if request.param.startswith("valkey") else "redis"
    if request.param.endswith("_cluster"):
        clusters: Callable[[Flavor], LocalRedisCluster] = request.getfixturevalue("redis_clusters")
        cluster = clusters(flavor)
        cluster.wait_healthy()
        return cluster.url
    start: Callable[[Flavor], RedisServer] = request.getfixturevalue("start_redis")
    return start(flavor).url


@pytest.fixture
def backend_options() -> dict[str, Any]:
    """Options of every backend a test makes: a prefix of its own (ignored by memory)."""
    return {"prefix": f"contract-{uuid.uuid4().hex[:8]}", "heartbeat_ttl": 2.0}


@pytest.fixture
async def make_node(
    backend_url: str, backend_options: dict[str, Any]
) -> AsyncIterator[Callable[[], Awaitable[Node]]]:
    nodes: list[Node] = []

    async def make() -> Node:
        node = Node(backend_from_url(backend_url, **backend_options))
        await node.start()
        nodes.append(node)
        return node

    yield make
    for node in reversed(nodes):
        await node.stop()


@pytest.fixture
async def make_hub(
    backend_url: str, backend_options: dict[str, Any]
) -> AsyncIterator[Callable[..., Awaitable[Hub]]]:
    """``make_hub(url=None, *, limits=None, rooms=None, **options)``: a started hub on
    ``url`` (by default the backend under test), ``options`` added to the backend
    options."""
    hubs: list[Hub] = []

    async def make(
        url: str | None = None,
        *,
        limits: HubLimits | None = None,
        rooms: RoomRules | None = None,
        **options: Any,
    ) -> Hub:
        hub = Hub(
            url or backend_url,
            backend_options={**backend_options, **options},
            limits=limits,
            rooms=rooms,
        )
        await hub.startup()
        hubs.append(hub)
        return hub

    yield make
    for hub in reversed(hubs):
        await hub.shutdown(timeout=1.0)
