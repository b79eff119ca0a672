"""Every Python example of docs/websockets.md runs and its assertions hold."""

from __future__ import annotations

import pytest

from tests.docs_examples import python_examples, run_example

GUIDE = "websockets.md"


def test_docs_websockets_has_examples():
    assert len(python_examples(GUIDE)) >= 15


@pytest.mark.parametrize(("source", "line"), python_examples(GUIDE))
def test_docs_websockets_example_runs(source, line):
    run_example(GUIDE, source, line)
