"""``BodyLimitMiddleware`` in process: route overrides, refusals after the response started,
and bodies read by a middleware rather than a view."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.requests import Request as StarletteRequest
from starlette.responses import JSONResponse
from starlette.routing import Route, Router

from bocadillo import App, ConfigurationError, create_client
from bocadillo.middleware.bodylimit import BodyLimitMiddleware, route_body_limit


async def size(request: StarletteRequest) -> JSONResponse:
    return JSONResponse({"size": len(await request.body())})


def asgi3(middleware: BodyLimitMiddleware) -> Any:
    """The middleware as an ``async def`` app (the test client guesses the ASGI version
    from ``__call__``, which is a plain function here)."""

    async def app(scope, receive, send):
        await middleware(scope, receive, send)

    return app


def limited_router(default: int | None) -> Any:
    small = Route("/small", size, methods=["POST"])
    large = Route("/large", size, methods=["POST"])
    unlimited = Route("/unlimited", size, methods=["POST"])
    # What a per-route ``max_body_size`` looks like to the middleware: an attribute on the
    # matched route object.
    small.max_body_size = 10  # type: ignore[attr-defined]
    large.max_body_size = 100  # type: ignore[attr-defined]
    unlimited.max_body_size = None  # type: ignore[attr-defined]
    plain = Route("/default", size, methods=["POST"])
    return asgi3(BodyLimitMiddleware(Router([small, large, unlimited, plain]), default))


@pytest.mark.parametrize(
    ("path", "length", "status"),
    [
        ("/small", 10, 200),
        ("/small", 11, 413),
        ("/large", 100, 200),
        ("/large", 101, 413),
        ("/default", 50, 200),
        ("/default", 51, 413),
        ("/unlimited", 5000, 200),
    ],
)
def test_a_route_limit_overrides_the_default(path, length, status):
    with create_client(limited_router(50)) as client:
        response = client.post(path, content=b"x" * length)
    assert response.status_code == status
    if status == 413:
        assert response.json()["status"] == 413
        assert response.headers["connection"] == "close"


def test_route_body_limit_reads_the_matched_route():
    route: Any = type("R", (), {"max_body_size": 7})()
    assert route_body_limit({"route": route}, 50) == 7
    assert route_body_limit({"route": object()}, 50) == 50
    assert route_body_limit({}, None) is None


def test_bad_limits_are_refused():
    with pytest.raises(ConfigurationError, match="an int or None"):
        BodyLimitMiddleware(Router([]), "1MB")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match=">= 0"):
        BodyLimitMiddleware(Router([]), -1)


def test_a_body_read_by_a_middleware_is_limited_too():
    app = App(max_body_size=10)

    class ReadsTheBody:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http":
                await StarletteRequest(scope, receive).body()
            await self.inner(scope, receive, send)

    app.add_middleware(ReadsTheBody)

    @app.route("/", methods=["POST"])
    async def index(req, res):
        res.text = "ok"

    with create_client(app) as client:
        small = client.post("/", content=b"x" * 10)
        large = client.post("/", content=b"x" * 11)
    assert small.text == "ok"
    assert large.status_code == 413
    assert large.json() == {
        "error": "Request Entity Too Large",
        "status": 413,
        "detail": "the request body is larger than 10 bytes",
    }


def test_over_the_limit_after_the_response_started_reads_as_a_disconnect():
    seen: list[Any] = []

    async def echo(scope, receive, send):
        if scope["type"] == "lifespan":
            for phase in ("startup", "shutdown"):
                await receive()
                await send({"type": f"lifespan.{phase}.complete"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:
            message = await receive()
            seen.append(message)
            if message["type"] == "http.disconnect" or not message.get("more_body"):
                break
            await send({"type": "http.response.body", "body": message["body"], "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    app = asgi3(BodyLimitMiddleware(echo, 4))
    with create_client(app) as client:
        response = client.post("/", content=b"abcdefgh")
    assert response.status_code == 200
    assert response.content == b""
    assert seen == [{"type": "http.disconnect"}]


def test_a_route_sets_its_own_body_limit():
    app = App(max_body_size=10)

    @app.route("/small", methods=["POST"])
    async def small(req, res):
        res.json = {"size": len(await req.body())}

    @app.route("/upload", methods=["POST"], max_body_size=100)
    async def upload(req, res):
        res.json = {"size": len(await req.body())}

    @app.route("/anything", methods=["POST"], max_body_size=None)
    async def anything(req, res):
        res.json = {"size": len(await req.body())}

    with create_client(app) as client:
        assert client.post("/small", content=b"x" * 11).status_code == 413
        assert client.post("/upload", content=b"x" * 50).json() == {"size": 50}
        assert client.post("/upload", content=b"x" * 101).status_code == 413
        assert client.post("/anything", content=b"x" * 10_000).json() == {"size": 10_000}
    with pytest.raises(ConfigurationError, match="max_body_size"):
        app.route("/bad", max_body_size=-1)(small)
