"""Fixtures of the reliability scenarios: servers started as uvicorn subprocesses."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from .harness import ServerProcess, raise_file_limit

# Thousands of client sockets live in the test process.
raise_file_limit()


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BOCADILLO_* setting of the outer environment leaks into a scenario's app."""
    for name in list(os.environ):
        if name.startswith("BOCADILLO_") and name != "BOCADILLO_SOAK":
            monkeypatch.delenv(name)


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
