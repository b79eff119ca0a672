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
from tests.redis_server import RedisServer

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
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server``; missing, it fails the test (never skips it)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRedisCluster]:
    """A Redis Cluster (3 masters, 3 replicas) started once for the session's cluster
    tests; missing ``redis-server``, it fails them (never skips them). A test that kills a
    master or moves a slot leaves it healthy again (``restore``), or the next test's
    ``wait_healthy`` says why not."""
    cluster = LocalRedisCluster(tmp_path_factory.mktemp("redis-cluster"))
    try:
        cluster.start()
        yield cluster
    finally:
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
    then NATS): a test using it runs on each."""
    server: RedisServer | NatsServer = request.getfixturevalue(f"{request.param}_server")
    return server
