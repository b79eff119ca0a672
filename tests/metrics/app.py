"""The app the metrics tests serve, in-process or with ``uvicorn --workers 2``.

Each answer names the worker (its PID), so a test can tell that its requests and
connections reached more than one process.
"""

from __future__ import annotations

import os

from bocadillo import App, Request, Response

__all__ = ["app", "create_app"]


def create_app() -> App:
    """An app with metrics on ``/metrics``, a templated route and a ``whoami`` message."""
    app = App("metrics", metrics_endpoint="/metrics", allowed_origins=["http://good.example"])

    @app.route("/items/{pk:int}")
    async def item(req: Request, res: Response, pk: int) -> None:
        res.json = {"pk": pk, "pid": os.getpid()}

    @app.route("/boom")
    async def boom(req: Request, res: Response) -> None:
        raise RuntimeError("boom")

    @app.socket("whoami")
    async def whoami() -> int:
        return os.getpid()

    return app


app = create_app()
