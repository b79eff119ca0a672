"""Every Python example of docs/http.md runs and its assertions hold.

Each example runs in an empty working directory holding the files the guide shows with a
``file=`` path (the clean environment and the restored global providers and plugins come
from the fixtures of ``tests/conftest.py``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs_examples import blocks, python_examples, run_example

GUIDE = "http.md"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for _, path, source, _ in blocks(GUIDE):
        if path is not None:
            target = tmp_path / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)


def test_docs_http_has_examples():
    assert len(python_examples(GUIDE)) >= 15
    assert any(path is not None for _, path, _, _ in blocks(GUIDE))


@pytest.mark.parametrize(("source", "line"), python_examples(GUIDE))
def test_docs_http_example_runs(source, line):
    run_example(GUIDE, source, line)
