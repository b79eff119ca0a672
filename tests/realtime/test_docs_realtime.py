"""Every Python example of docs/realtime.md runs and its assertions hold.

The guide starts from a two-file app (``app.py`` and ``index.html``, fences with a
``file=`` path). Each example runs in an empty working directory holding those files, with
that directory first on ``sys.path``, so an example may ``from app import app`` as a reader
would. The page itself runs in headless Chromium in ``tests/docs_site/test_two_file_apps.py``.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docs_examples import blocks, python_examples, run_example

GUIDE = "realtime.md"


@pytest.fixture(autouse=True)
def isolated(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for _, path, source, _ in blocks(GUIDE):
        if path is not None:
            (tmp_path / path).write_text(source, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    # The guide's module is called ``app``: each example imports its own copy.
    sys.modules.pop("app", None)
    yield
    sys.modules.pop("app", None)


def test_docs_realtime_starts_from_a_whole_app():
    files = [path for _, path, _, _ in blocks(GUIDE) if path is not None]
    assert files == ["app.py", "index.html"]
    text = blocks(GUIDE)
    first_python = next(line for lang, _, _, line in text if lang == "python")
    start = next(line for _, path, _, line in text if path == "app.py")
    assert start == first_python  # the page opens with the complete app
    assert len(python_examples(GUIDE)) >= 12


@pytest.mark.parametrize(("source", "line"), python_examples(GUIDE))
def test_docs_realtime_example_runs(source, line):
    run_example(GUIDE, source, line)
