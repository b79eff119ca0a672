"""Fixtures of the Bocadillo 0.18 compatibility tests.

The 0.18 API declares providers and plugins at module level and reads ``bocadillo.settings``:
each test gets a clean environment, and the declarations it made are forgotten afterwards.
"""

from __future__ import annotations

import os
import sys
import textwrap
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bocadillo.config import _PLUGINS, settings
from bocadillo.injection import _GLOBAL


@pytest.fixture(autouse=True)
def isolated(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("BOCADILLO_") or name == "SECRET_KEY":
            monkeypatch.delenv(name)
    providers, plugins, current = dict(_GLOBAL), list(_PLUGINS), settings._current
    yield
    _GLOBAL.clear()
    _GLOBAL.update(providers)
    _PLUGINS[:] = plugins
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
