"""Run the Python examples of a guide in docs/ as tests."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
_BLOCK = re.compile(r"^```(\w+)( file=(\S+))?\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def blocks(guide: str, *, base: Path = DOCS) -> list[tuple[str, str | None, str, int]]:
    """``(language, file path or None, source, line)`` of every fenced block of a guide
    (a page of ``docs/``, or with ``base=ROOT`` a file of the repository, ``README.md``)."""
    text = (base / guide).read_text(encoding="utf-8")
    return [
        (m.group(1), m.group(3), m.group(4), text.count("\n", 0, m.start()) + 1)
        for m in _BLOCK.finditer(text)
    ]


def python_examples(guide: str) -> list[Any]:
    """The runnable Python blocks (not ``file=`` blocks) as pytest params ``(source, line)``."""
    return [
        pytest.param(source, line, id=f"line-{line}")
        for lang, path, source, line in blocks(guide)
        if lang == "python" and path is None
    ]


def run_example(guide: str, source: str, line: int) -> None:
    """Execute one example; leading newlines keep traceback line numbers equal to the guide's."""
    # dont_inherit: run as a reader would, without this module's `from __future__` imports.
    code = compile("\n" * line + source, str(DOCS / guide), "exec", dont_inherit=True)
    stem = guide.removesuffix(".md")
    exec(code, {"__name__": f"docs_{stem}_line_{line}"})
