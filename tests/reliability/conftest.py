"""Fixtures of the reliability scenarios: servers started as uvicorn subprocesses."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import ServerProcess, raise_file_limit

# Thousands of client sockets live in the test process.
raise_file_limit()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., ServerProcess]]:
    """``serve(*uvicorn_args, sndbuf=None, **env)`` starts ``soak_app`` under uvicorn;
    every server started is killed (by its PID) at teardown."""
    started: list[ServerProcess] = []

    def start(*args: str, sndbuf: int | None = None, **env: Any) -> ServerProcess:
        log = tmp_path / f"uvicorn-{len(started)}.log"
        server = ServerProcess(log, {k: str(v) for k, v in env.items()}, list(args), sndbuf=sndbuf)
        started.append(server)
        return server

    yield start
    for server in started:
        server.kill()
