"""The App as an ASGI application, and its lifespan handlers."""

from __future__ import annotations

from typing import Any

import pytest

from bocadillo import App, ConfigurationError, create_client


@pytest.mark.anyio
async def test_app_is_an_asgi_application():
    app = App()

    @app.route("/")
    async def index(req, res):
        res.text = "hello"

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/",
        "raw_path": b"/",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"example.org")],
        "client": ("127.0.0.1", 5000),
        "server": ("example.org", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await app(scope, receive, send)

    assert sent[0]["type"] == "http.response.start"
    assert sent[0]["status"] == 200
    assert (b"content-type", b"text/plain") in sent[0]["headers"]
    assert b"".join(m.get("body", b"") for m in sent[1:]) == b"hello"


def test_app_runs_sync_and_async_lifespan_handlers():
    app = App()
    events: list[str] = []

    @app.on("startup")
    def sync_startup():
        events.append("sync startup")

    @app.on("startup")
    async def async_startup():
        events.append("async startup")

    @app.on("shutdown")
    async def async_shutdown():
        events.append("async shutdown")

    def sync_shutdown():
        events.append("sync shutdown")

    app.on("shutdown", sync_shutdown)

    @app.route("/")
    async def index(req, res):
        res.json = list(events)

    with create_client(app) as client:
        assert events == ["sync startup", "async startup"]
        assert client.get("/").json() == ["sync startup", "async startup"]

    assert events == ["sync startup", "async startup", "async shutdown", "sync shutdown"]


def test_app_on_unknown_event_raises_configuration_error():
    app = App()

    with pytest.raises(ConfigurationError, match="unknown event"):

        @app.on("boot")  # type: ignore[call-overload]
        async def boot():
            pass


def test_app_on_decorator_returns_the_handler():
    app = App()

    async def startup():
        pass

    assert app.on("startup")(startup) is startup
