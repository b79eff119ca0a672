"""The quickstart, testing and chat tutorial pages: their examples run, their excerpts match.

The tutorial quotes ``example_chat`` in fences such as ```` ```python file=example_chat/app.py ````;
each quote must be a contiguous piece of that file (indentation aside), so the page
cannot drift from the code.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from tests.docs_examples import blocks, python_examples, run_example

ROOT = Path(__file__).resolve().parents[2]
PAGES = ("index.md", "testing.md", "chat.md")


@pytest.mark.parametrize("guide", PAGES)
def test_docs_page_has_examples(guide):
    assert len(python_examples(guide)) >= 1


@pytest.mark.parametrize(
    ("guide", "source", "line"),
    [
        pytest.param(guide, *p.values, id=f"{guide}-{p.id}")
        for guide in PAGES
        for p in python_examples(guide)
    ],
)
def test_docs_page_example(guide, source, line):
    run_example(guide, source, line)


def excerpts() -> list[object]:
    return [
        pytest.param(path, source, id=f"chat.md-line-{line}")
        for _lang, path, source, line in blocks("chat.md")
        if path is not None
    ]


def test_docs_chat_quotes_the_source():
    assert len(excerpts()) >= 6


@pytest.mark.parametrize(("path", "source"), excerpts())
def test_docs_chat_excerpt_matches_the_source(path, source):
    quoted = source.rstrip("\n").split("\n")
    lines = (ROOT / path).read_text(encoding="utf-8").split("\n")
    size = len(quoted)
    for start in range(len(lines) - size + 1):
        window = textwrap.dedent("\n".join(lines[start : start + size]))
        if window.split("\n") == quoted:
            return
    pytest.fail(f"this excerpt is not (or no longer) in {path}:\n{source}")
