"""Every Python example of docs/http.md runs and its assertions hold.

Each example runs in an empty working directory holding the files the guide shows with a
``file=`` path, with a clean environment and the global providers and plugins restored.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bocadillo.config import _PLUGINS
from bocadillo.injection import _GLOBAL

_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "http.md"
_BLOCK = re.compile(r"^```(\w+)( file=(\S+))?\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _blocks() -> list[tuple[str, str | None, str, int]]:
    text = _GUIDE.read_text(encoding="utf-8")
    return [
        (m.group(1), m.group(3), m.group(4), text.count("\n", 0, m.start()) + 1)
        for m in _BLOCK.finditer(text)
    ]


def _examples() -> list[Any]:
    return [
        pytest.param(source, line, id=f"line-{line}")
        for lang, path, source, line in _blocks()
        if lang == "python" and path is None
    ]


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("BOCADILLO_") or name == "SECRET_KEY":
            monkeypatch.delenv(name)
    for _, path, source, _ in _blocks():
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
    assert len(_examples()) >= 15
    assert any(path is not None for _, path, _, _ in _blocks())


@pytest.mark.parametrize(("source", "line"), _examples())
def test_docs_http_example_runs(source, line):
    # Leading newlines keep the line numbers of tracebacks equal to the guide's.
    code = compile("\n" * line + source, str(_GUIDE), "exec")
    exec(code, {"__name__": f"docs_http_line_{line}"})
