"""Fixtures of the Redis tests: a real ``redis-server`` per test, on a free port."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.redis_server import RedisServer


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BOCADILLO_* variable of the outer environment leaks into these tests."""
    for name in list(os.environ):
        if name.startswith("BOCADILLO_"):
            monkeypatch.delenv(name)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server``; missing, it fails the test (never skips it)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()
