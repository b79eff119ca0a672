"""Fixtures of the Bocadillo 0.18 compatibility tests: projects written to disk (a
settings module, ``providerconf.py``...) and ``bocadillo.settings`` restored."""

from __future__ import annotations

import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bocadillo.config import settings


@pytest.fixture(autouse=True)
def forget_configured_app() -> Iterator[None]:
    """``bocadillo.settings`` points at the app a test configured: not after it.

    (The environment, ``@provider`` and ``@plugin`` are restored by ``tests/conftest.py``.)
    """
    current = settings._current
    yield
    settings._current = current


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Write a project's files (``{"chatbot/app.py": source}``) and make it importable.

    Its packages are removed from ``sys.modules`` afterwards, so each test imports its own.
    """
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.chdir(tmp_path)
    packages: set[str] = set()

    def write(files: dict[str, str]) -> Path:
        for relative, source in files.items():
            path = tmp_path / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(textwrap.dedent(source).lstrip(), encoding="utf-8")
            packages.add(relative.split("/")[0].removesuffix(".py"))
        return tmp_path

    yield write
    for name in list(sys.modules):
        if name.split(".")[0] in packages:
            del sys.modules[name]
