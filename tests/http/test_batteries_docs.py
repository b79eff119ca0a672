"""Every Python example of docs/http.md runs and its assertions hold.

Each example runs in an empty working directory holding the files the guide shows with a
``file=`` path, with a clean environment and the global providers and plugins restored.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from bocadillo.config import _PLUGINS
from bocadillo.injection import _GLOBAL
from tests.docs_examples import blocks, python_examples, run_example

GUIDE = "http.md"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("BOCADILLO_") or name == "SECRET_KEY":
            monkeypatch.delenv(name)
    for _, path, source, _ in blocks(GUIDE):
        if path is not None:
            target = tmp_path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    providers, plugins = dict(_GLOBAL), list(_PLUGINS)
    yield
    _GLOBAL.clear()
    _GLOBAL.update(providers)
    _PLUGINS[:] = plugins


def test_docs_http_has_examples():
    assert len(python_examples(GUIDE)) >= 15
    assert any(path is not None for _, path, _, _ in blocks(GUIDE))


@pytest.mark.parametrize(("source", "line"), python_examples(GUIDE))
def test_docs_http_example_runs(source, line):
    run_example(GUIDE, source, line)
