"""The API reference (docs/reference/) covers every name that ``bocadillo`` exports."""

from __future__ import annotations

import re
from pathlib import Path

import bocadillo
from bocadillo import errors

REFERENCE = Path(__file__).resolve().parents[2] / "docs" / "reference"
#: Starlette's own classes, re-exported: named in the errors page, documented by Starlette.
STARLETTE_REEXPORTS = {"ClientDisconnect", "WebSocketDisconnect"}


def documented() -> set[str]:
    """Names rendered by a ``::: bocadillo.NAME`` directive, or listed as members of a
    ``::: bocadillo.MODULE`` directive."""
    names = set()
    for page in REFERENCE.glob("*.md"):
        text = page.read_text(encoding="utf-8")
        names |= set(re.findall(r"^::: bocadillo\.(\w+)\s*$", text, re.MULTILINE))
        names |= set(re.findall(r"^ {8}- (\w+)$", text, re.MULTILINE))
    return names


def test_every_exported_name_has_a_reference_entry():
    missing = set(bocadillo.__all__) - STARLETTE_REEXPORTS - documented()
    assert not missing, f"add these to a page of docs/reference/: {sorted(missing)}"


def test_the_errors_page_lists_every_bocadillo_exception():
    own = {name for name in errors.__all__ if name not in STARLETTE_REEXPORTS}
    assert own <= documented()
    text = (REFERENCE / "errors.md").read_text(encoding="utf-8")
    for name in STARLETTE_REEXPORTS:
        assert f"`{name}`" in text
