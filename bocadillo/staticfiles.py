"""Static files: a thin helper over Starlette's ``StaticFiles``."""

from __future__ import annotations

import os

from starlette.staticfiles import StaticFiles

__all__ = ["static"]


def static(directory: str | os.PathLike[str], *, check_dir: bool = True) -> StaticFiles:
    """An ASGI app serving the files of ``directory`` (mount it with ``app.mount``).

    Content types are guessed from file names; a missing file answers 404.

    Raises:
        RuntimeError: (from Starlette) if ``check_dir`` and the directory does not exist.
    """
    return StaticFiles(directory=directory, check_dir=check_dir)
