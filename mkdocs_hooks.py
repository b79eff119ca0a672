"""MkDocs hooks for the documentation site (``mkdocs.yml`` loads this file).

The guides mark files that their examples read with fences such as
```` ```html file=templates/post.html ```` (``tests/docs_examples.py`` writes them to disk
before running the examples). Python-Markdown does not recognise that info string, so
this hook turns it into a caption naming the file, followed by a plain fence.
"""

from __future__ import annotations

import re
from typing import Any

_FILE_FENCE = re.compile(r"^```(\w+) file=(\S+)[ \t]*$", re.MULTILINE)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Rewrite ```` ```lang file=path ```` into a ``path`` caption and a ```` ```lang ```` fence."""
    return _FILE_FENCE.sub(r"`\2`:\n\n```\1", markdown)
