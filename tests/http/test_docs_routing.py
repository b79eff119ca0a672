"""Every Python example of docs/routing.md runs and its assertions hold."""

from __future__ import annotations

import pytest

from tests.docs_examples import python_examples, run_example

GUIDE = "routing.md"


def test_docs_routing_has_examples():
    assert len(python_examples(GUIDE)) >= 15


@pytest.mark.parametrize(("source", "line"), python_examples(GUIDE))
def test_docs_routing_example_runs(source, line):
    run_example(GUIDE, source, line)
