"""The complete app at the top of docs/realtime.md runs, with its client, as printed.

The page's other blocks are excerpts of an app (``app``, ``ws`` from around them); this
one is whole on purpose, so it is run as it stands.
"""

from __future__ import annotations

from tests.docs_examples import DOCS, blocks, run_example

GUIDE = "realtime.md"


def test_the_start_here_example_runs_with_its_client():
    guide = (DOCS / GUIDE).read_text(encoding="utf-8")
    begin = guide.index("## Start here")
    start = guide.count("\n", 0, begin)
    end = guide.count("\n", 0, guide.index("\n## ", begin + 1))
    examples = [
        (source, line)
        for lang, path, source, line in blocks(GUIDE)
        if lang == "python" and path is None and start < line < end
    ]
    assert len(examples) == 1
    run_example(GUIDE, *examples[0])
