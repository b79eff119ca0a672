"""Shared fixtures: an anyio backend, fresh apps, live uvicorn servers, and the isolation
every test gets (``clean_environment``, ``restore_global_providers``).

The helpers that are not fixtures (``eventually``, ``listening_socket``...) are in
``tests/live.py``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bocadillo import App, LiveServer
from bocadillo.config import _PLUGINS
from bocadillo.injection import _GLOBAL
from tests.nats_server import NatsServer
from tests.redis_cluster import LocalRedisCluster
from tests.redis_server import Flavor, RedisServer

#: Kept in the environment: it selects the size of the reliability scenarios (``make soak``).
_KEPT = frozenset({"BOCADILLO_SOAK"})


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No setting of the outer environment leaks into a test: every ``BOCADILLO_*``
    variable (but ``BOCADILLO_SOAK``) and ``SECRET_KEY`` are removed for its length."""
    for name in list(os.environ):
        if (name.startswith("BOCADILLO_") and name not in _KEPT) or name == "SECRET_KEY":
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def restore_global_providers() -> Iterator[None]:
    """``@provider`` and ``configure(plugins=...)`` register globally: whatever a test
    registers is gone after it."""
    providers, plugins = dict(_GLOBAL), list(_PLUGINS)
    yield
    _GLOBAL.clear()
    _GLOBAL.update(providers)
    _PLUGINS[:] = plugins


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def app() -> App:
    return App()


@pytest.fixture
def live_server() -> Iterator[Callable[..., LiveServer]]:
    """Start ``LiveServer(app, **options)``; every server started is stopped at teardown."""
    servers: list[LiveServer] = []

    def start(app: Any, **options: Any) -> LiveServer:
        server = LiveServer(app, **options)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in reversed(servers):
        server.stop()


@pytest.fixture
def start_redis(tmp_path: Path) -> Iterator[Callable[[Flavor], RedisServer]]:
    """``start_redis(flavor)``: a running ``redis-server`` or ``valkey-server``; each one
    started is stopped at teardown. Missing, it fails the test (never skips it)."""
    servers: list[RedisServer] = []

    def start(flavor: Flavor) -> RedisServer:
        server = RedisServer(tmp_path / f"{flavor}-{len(servers)}", flavor=flavor)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in reversed(servers):
        server.close()


@pytest.fixture
def redis_flavor() -> Flavor:
    """Which server ``redis_server`` runs: ``redis``. A test runs on Valkey too when it
    parametrizes this name with ``"valkey"`` among the values (marked ``valkey``)."""
    return "redis"


@pytest.fixture
def redis_server(start_redis: Callable[[Flavor], RedisServer], redis_flavor: Flavor) -> RedisServer:
    """A running ``redis-server`` (``valkey-server`` if ``redis_flavor`` says so)."""
    return start_redis(redis_flavor)


@pytest.fixture(scope="session")
def redis_clusters(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Callable[[Flavor], LocalRedisCluster]]:
    """``redis_clusters(flavor)``: the session's cluster of ``redis-server`` or
    ``valkey-server`` (3 masters, 3 replicas), started at its first use and stopped at the
    end of the session. Missing programs fail the tests (never skip them). A test that
    kills a master or moves a slot leaves it healthy again (``restore``), or the next
    test's ``wait_healthy`` says why not."""
    clusters: dict[Flavor, LocalRedisCluster] = {}

    def get(flavor: Flavor) -> LocalRedisCluster:
        if flavor not in clusters:
            cluster = LocalRedisCluster(tmp_path_factory.mktemp(f"{flavor}-cluster"), flavor=flavor)
            try:
                cluster.start()
            except BaseException:
                cluster.close()
                raise
            clusters[flavor] = cluster
        return clusters[flavor]

    try:
        yield get
    finally:
        for cluster in clusters.values():
            cluster.close()


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    """A running ``nats-server`` with JetStream; missing, it fails the test (never skips it)."""
    server = NatsServer(tmp_path / "nats")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
def broker(request: pytest.FixtureRequest) -> RedisServer | NatsServer:
    """A running server of each backend that crosses processes and keeps history (Redis,
    then NATS): a test using it runs on each. A module adds Valkey by parametrizing it
    (``indirect=True``) with ``"valkey"`` among the values."""
    if request.param == "nats":
        server: NatsServer = request.getfixturevalue("nats_server")
        return server
    start: Callable[[Flavor], RedisServer] = request.getfixturevalue("start_redis")
    return start(request.param)
