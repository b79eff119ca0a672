"""What the multi-process tests share: ``broker``, the server the hubs of every process
share, a real ``redis-server`` or ``nats-server`` (a test using it runs on each)."""

from __future__ import annotations

import pytest

from tests.nats_server import NatsServer
from tests.redis_server import RedisServer


@pytest.fixture(
    params=[
        pytest.param("redis", marks=pytest.mark.redis),
        pytest.param("nats", marks=pytest.mark.nats),
    ]
)
def broker(request: pytest.FixtureRequest) -> RedisServer | NatsServer:
    """A running server of each backend that crosses processes (Redis, then NATS)."""
    server: RedisServer | NatsServer = request.getfixturevalue(f"{request.param}_server")
    return server
