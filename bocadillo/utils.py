"""Helpers of Bocadillo 0.18, kept at their 0.18 path (``bocadillo.utils``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["override_env"]


@contextmanager
def override_env(name: str, value: str) -> Iterator[None]:
    """Set the environment variable ``name`` to ``value`` inside the block.

    The previous value (or its absence) is restored on exit, even after an error, so
    blocks can be nested.
    """
    missing = object()
    previous = os.environ.get(name, missing)
    os.environ[name] = value
    try:
        yield
    finally:
        if isinstance(previous, str):
            os.environ[name] = previous
        else:
            os.environ.pop(name, None)
