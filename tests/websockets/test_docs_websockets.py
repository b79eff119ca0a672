"""Every Python example of docs/websockets.md runs and its assertions hold."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

_GUIDE = Path(__file__).resolve().parents[2] / "docs" / "websockets.md"
_BLOCK = re.compile(r"^```python\n(.*?)^```$", re.DOTALL | re.MULTILINE)


def _examples() -> list[Any]:
    text = _GUIDE.read_text(encoding="utf-8")
    examples = []
    for match in _BLOCK.finditer(text):
        line = text.count("\n", 0, match.start()) + 1
        examples.append(pytest.param(match.group(1), line, id=f"line-{line}"))
    return examples


def test_docs_websockets_has_examples():
    assert len(_examples()) >= 15


@pytest.mark.parametrize(("source", "line"), _examples())
def test_docs_websockets_example_runs(source, line):
    # Leading newlines keep the line numbers of tracebacks equal to the guide's.
    code = compile("\n" * line + source, str(_GUIDE), "exec")
    exec(code, {"__name__": f"docs_websockets_line_{line}"})
