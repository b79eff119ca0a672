"""Shared fixtures: an anyio backend, fresh apps, and live uvicorn servers."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from bocadillo import App, LiveServer


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
