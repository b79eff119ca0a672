"""``python -m bocadillo run module:app``: the ``bocadillo`` command (see ``bocadillo.cli``)."""

from __future__ import annotations

import sys

from .cli import main

__all__: list[str] = []

if __name__ == "__main__":
    sys.exit(main())
