"""Static files: a thin helper over Starlette's ``StaticFiles``."""

from __future__ import annotations

import os

import anyio.to_thread
from starlette.responses import Response
from starlette.staticfiles import PathLike, StaticFiles

from .types import Scope

__all__ = ["StaticFilesApp", "static"]


class StaticFilesApp(StaticFiles):
    """Starlette's ``StaticFiles``, with an optional ``Cache-Control: max-age``.

    Args:
        directory: The folder to serve.
        check_dir: Raise at creation if the folder does not exist.
        max_age: Seconds browsers may cache a file (``None``: no ``Cache-Control``).
    """

    def __init__(
        self,
        directory: str | os.PathLike[str],
        *,
        check_dir: bool = True,
        max_age: int | None = None,
    ) -> None:
        super().__init__(directory=directory, check_dir=check_dir)
        self.max_age = max_age

    async def check_config(self) -> None:
        """A folder that does not exist (yet) serves nothing: every path answers 404."""
        if self.directory is not None and not await anyio.to_thread.run_sync(
            os.path.isdir, self.directory
        ):
            return
        await super().check_config()

    def file_response(
        self,
        full_path: PathLike,
        stat_result: os.stat_result,
        scope: Scope,
        status_code: int = 200,
    ) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        if self.max_age is not None:
            response.headers.setdefault("cache-control", f"max-age={int(self.max_age)}")
        return response


def static(
    directory: str | os.PathLike[str], *, check_dir: bool = True, max_age: int | None = None
) -> StaticFilesApp:
    """An ASGI app serving the files of ``directory`` (mount it with ``app.mount``).

    Content types are guessed from file names; a missing file answers 404.

    Args:
        directory: The folder to serve.
        check_dir: Raise at once if the folder does not exist.
        max_age: Seconds browsers may cache a file, sent as ``Cache-Control: max-age``.

    Raises:
        RuntimeError: (from Starlette) if ``check_dir`` and the directory does not exist.
    """
    return StaticFilesApp(directory, check_dir=check_dir, max_age=max_age)
