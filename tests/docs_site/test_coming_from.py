"""The "coming from" pages: every Bocadillo example runs; the other frameworks' code is
in blocks titled with their names (never run: those frameworks are not installed)."""

from __future__ import annotations

import re

import pytest

from tests.docs_examples import DOCS, python_examples, run_example

PAGES = {
    "coming-from-starlette.md": {"Starlette", "FastAPI"},
    "coming-from-channels.md": {"Django Channels"},
    "coming-from-socketio.md": {"python-socketio", "Socket.IO client"},
}
_FENCE = re.compile(r"^```(\w+)(.*)$", re.MULTILINE)


@pytest.mark.parametrize("page", sorted(PAGES))
def test_coming_from_page_shows_both_sides(page):
    titles = set()
    for match in _FENCE.finditer((DOCS / page).read_text(encoding="utf-8")):
        info = match.group(2).strip()
        if info:
            title = re.fullmatch(r'title="([^"]+)"', info)
            assert title, f"{page}: a fence with an unexpected info string: {match.group(0)}"
            titles.add(title.group(1))
    assert titles == PAGES[page]  # their side
    assert len(python_examples(page)) >= 3  # ours


@pytest.mark.parametrize(
    ("page", "source", "line"),
    [
        pytest.param(page, *p.values, id=f"{page}-{p.id}")
        for page in sorted(PAGES)
        for p in python_examples(page)
    ],
)
def test_coming_from_example_runs(page, source, line):
    run_example(page, source, line)
