"""User middleware: pure ASGI classes and ``Middleware`` subclasses, and their order."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from starlette.datastructures import MutableHeaders

from bocadillo import App, ExpectedAsync, HTTPError, Middleware, Redirect, create_client
from bocadillo.types import ASGIApp, Message, Receive, Scope, Send


class HeaderMiddleware:
    """A pure ASGI middleware adding one response header, configured by kwargs."""

    def __init__(self, app: ASGIApp, *, name: str, value: str) -> None:
        self.app = app
        self.name = name
        self.value = value

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_wrapper(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.append(self.name, self.value)
            await send(message)

        await self.app(scope, receive, send_wrapper)


def hello_app() -> App:
    app = App()

    @app.route("/")
    async def index(req, res):
        res.text = "hello"

    return app


def test_add_middleware_wraps_the_app_in_a_pure_asgi_class_with_kwargs():
    app = hello_app()
    app.add_middleware(HeaderMiddleware, name="x-powered-by", value="bocadillo")

    with create_client(app) as client:
        response = client.get("/")
        missing = client.get("/missing")

    assert response.text == "hello"
    assert response.headers["x-powered-by"] == "bocadillo"
    # The middleware wraps the whole app, error responses included.
    assert missing.status_code == 404
    assert missing.headers["x-powered-by"] == "bocadillo"


def test_middleware_subclass_runs_before_and_after_dispatch():
    app = hello_app()
    events: list[str] = []

    class Recorder(Middleware):
        async def before_dispatch(self, req, res):
            events.append(f"before {req.method} {req.url.path}")

        async def after_dispatch(self, req, res):
            events.append(f"after {res.status_code}")

    app.add_middleware(Recorder)

    with create_client(app) as client:
        response = client.get("/")

    assert response.text == "hello"
    assert events == ["before GET /", "after 200"]


def test_middleware_subclass_keeps_its_options():
    app = hello_app()
    events: list[Any] = []

    class Recorder(Middleware):
        async def before_dispatch(self, req, res):
            events.append(("before", self.options["label"]))

        async def after_dispatch(self, req, res):
            events.append(("after", self.options["label"]))
            res.headers["x-label"] = self.options["label"]

    app.add_middleware(Recorder, label="async")

    with create_client(app) as client:
        response = client.get("/")

    assert response.text == "hello"
    assert response.headers["x-label"] == "async"
    assert events == [("before", "async"), ("after", "async")]


def test_before_dispatch_returning_res_short_circuits_the_app():
    app = App()
    called: list[str] = []

    @app.route("/")
    async def index(req, res):
        called.append("view")
        res.text = "from the view"

    class Maintenance(Middleware):
        async def before_dispatch(self, req, res):
            if req.query_params.get("maintenance") == "on":
                res.status_code = 503
                res.text = "down for maintenance"
                return res
            return None

    app.add_middleware(Maintenance)

    with create_client(app) as client:
        down = client.get("/?maintenance=on")
        assert called == []
        up = client.get("/")

    assert down.status_code == 503
    assert down.text == "down for maintenance"
    assert up.status_code == 200
    assert up.text == "from the view"
    assert called == ["view"]


def test_after_dispatch_changes_status_and_headers():
    app = hello_app()

    class Rewrite(Middleware):
        async def after_dispatch(self, req, res):
            res.status_code = 203
            res.headers["x-rewritten"] = "true"
            del res.headers["content-type"]
            res.headers["content-type"] = "text/x-custom"

    app.add_middleware(Rewrite)

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 203
    assert response.headers["x-rewritten"] == "true"
    assert response.headers["content-type"] == "text/x-custom"
    assert response.text == "hello"  # the body passes through untouched


def test_last_added_middleware_is_outermost():
    app = App()
    events: list[str] = []

    @app.route("/")
    async def index(req, res):
        events.append("view")

    def recorder(label: str) -> type[Middleware]:
        class Recorder(Middleware):
            async def before_dispatch(self, req, res):
                events.append(f"{label} before")

            async def after_dispatch(self, req, res):
                events.append(f"{label} after")

        return Recorder

    app.add_middleware(recorder("first"))
    app.add_middleware(recorder("second"))

    with create_client(app) as client:
        assert client.get("/").status_code == 200

    assert events == [
        "second before",
        "first before",
        "view",
        "first after",
        "second after",
    ]


def test_middleware_subclass_lets_websockets_through():
    app = App()
    events: list[str] = []

    class Recorder(Middleware):
        async def before_dispatch(self, req, res):
            events.append("before")

    app.add_middleware(Recorder)

    @app.websocket_route("/ws")
    async def echo(ws):
        await ws.send(await ws.receive())

    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_text("ping")
        assert ws.receive_text() == "ping"

    assert events == []


def test_before_dispatch_raising_http_error_answers_that_error():
    app = hello_app()

    class RequireToken(Middleware):
        async def before_dispatch(self, req, res):
            if req.headers.get("x-token") != "secret":
                raise HTTPError(401, detail="token required")

    app.add_middleware(RequireToken)

    with create_client(app) as client:
        refused = client.get("/")
        allowed = client.get("/", headers={"x-token": "secret"})

    assert refused.status_code == 401
    assert refused.json() == {"error": "Unauthorized", "status": 401, "detail": "token required"}
    assert allowed.text == "hello"


def test_before_dispatch_raising_uses_the_app_error_handlers_and_redirects():
    app = hello_app()

    @app.error_handler(HTTPError)
    async def as_text(req, res, exc):
        res.status_code = exc.status_code
        res.text = f"custom {exc.status_code}"

    class Gate(Middleware):
        async def before_dispatch(self, req, res):
            if req.url.path == "/admin":
                raise Redirect("/login")
            if req.url.path == "/forbidden":
                raise HTTPError(403)

    app.add_middleware(Gate)

    with create_client(app) as client:
        redirected = client.get("/admin", follow_redirects=False)
        forbidden = client.get("/forbidden")

    assert redirected.status_code == 302
    assert redirected.headers["location"] == "/login"
    assert forbidden.status_code == 403
    assert forbidden.text == "custom 403"


def test_before_dispatch_raising_another_error_answers_500():
    app = hello_app()

    class Broken(Middleware):
        async def before_dispatch(self, req, res):
            raise RuntimeError("middleware bug")

    app.add_middleware(Broken)

    with create_client(app, raise_server_exceptions=False) as client:
        response = client.get("/")

    assert response.status_code == 500
    assert "middleware bug" not in response.text


def test_before_dispatch_may_read_the_body_and_the_view_reads_it_again():
    app = App()
    seen: list[Any] = []

    @app.route("/", methods=["POST"])
    async def index(req, res):
        res.json = {"view": await req.json()}

    class Audit(Middleware):
        async def before_dispatch(self, req, res):
            seen.append(await req.json())

    app.add_middleware(Audit)

    with create_client(app) as client:
        response = client.post("/", json={"order": 1})

    assert response.status_code == 200
    assert response.json() == {"view": {"order": 1}}
    assert seen == [{"order": 1}]


def test_before_dispatch_reading_a_streamed_body_replays_every_chunk():
    app = App()
    sizes: list[int] = []

    @app.route("/upload", methods=["POST"])
    async def upload(req, res):
        res.json = {"received": len(await req.body())}

    class Measure(Middleware):
        async def before_dispatch(self, req, res):
            total = 0
            async for chunk in req.stream():
                total += len(chunk)
            sizes.append(total)

    app.add_middleware(Measure)

    def chunks() -> Iterator[bytes]:
        yield b"a" * 1000
        yield b"b" * 2000

    with create_client(app) as client:
        response = client.post("/upload", content=chunks())

    assert sizes == [3000]
    assert response.json() == {"received": 3000}


# Registration: both callbacks must be coroutine functions ------------------------------


@pytest.mark.parametrize("name", ["before_dispatch", "after_dispatch"])
def test_a_plain_def_callback_is_refused_when_the_class_is_defined(name):
    def plain(self, req, res):
        pass

    with pytest.raises(ExpectedAsync, match=rf"Sync\.{name}.*'async def'"):
        type("Sync", (Middleware,), {name: plain})


def test_an_inherited_plain_def_callback_is_refused_too():
    class Mixin:
        def after_dispatch(self, req, res):
            pass

    with pytest.raises(ExpectedAsync, match="async def"):

        class Stamped(Mixin, Middleware):
            pass


def test_a_subclass_without_callbacks_is_accepted_and_passes_through():
    class Nothing(Middleware):
        pass

    app = hello_app()
    app.add_middleware(Nothing)

    with create_client(app) as client:
        assert client.get("/").text == "hello"


# after_dispatch and requests that end in an error --------------------------------------


class Recorded(Middleware):
    """Records its calls in ``self.options["events"]`` and stamps the responses it sees."""

    async def before_dispatch(self, req, res):
        self.options["events"].append(f"{self.options['name']} before")

    async def after_dispatch(self, req, res):
        self.options["events"].append(f"{self.options['name']} after {res.status_code}")
        res.headers[f"x-{self.options['name']}"] = "after"


class Teapot(Exception):
    pass


def erring_app() -> App:
    app = App()

    @app.route("/ok")
    async def ok(req, res):
        res.text = "ok"

    @app.route("/http-error")
    async def http_error(req, res):
        raise HTTPError(409)

    @app.route("/redirect")
    async def redirect(req, res):
        raise Redirect("/ok")

    @app.route("/handled")
    async def handled(req, res):
        raise Teapot

    @app.route("/crash")
    async def crash(req, res):
        raise RuntimeError("view bug")

    @app.route("/set-404")
    async def set_404(req, res):
        res.status_code = 404
        res.text = "no such thing, said the view"

    @app.error_handler(Teapot)
    async def teapot(req, res, exc):
        res.status_code = 418
        res.text = "handled"

    return app


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/missing", 404),  # the router's 404
        ("POST", "/ok", 405),  # the router's 405
        ("GET", "/http-error", 409),  # an HTTPError raised by the view
        ("GET", "/redirect", 302),  # a Redirect raised by the view
        ("GET", "/handled", 418),  # an exception answered by the app's own handler
        ("GET", "/crash", 500),  # an exception nothing handles
    ],
)
def test_after_dispatch_is_skipped_when_the_request_ends_in_an_error(method, path, status):
    app = erring_app()
    events: list[str] = []
    app.add_middleware(Recorded, name="inner", events=events)
    app.add_middleware(HeaderMiddleware, name="x-asgi", value="seen")
    app.add_middleware(Recorded, name="outer", events=events)

    with create_client(app, raise_server_exceptions=False) as client:
        response = client.request(method, path, follow_redirects=False)

    assert response.status_code == status
    # Neither Middleware saw the error answer, on either side of the pure ASGI one.
    assert events == ["outer before", "inner before"]
    assert "x-inner" not in response.headers
    assert "x-outer" not in response.headers
    if status != 500:
        # A pure ASGI middleware still sees every response, error answers included.
        assert response.headers["x-asgi"] == "seen"


def test_after_dispatch_runs_for_a_response_the_view_gave_an_error_status_itself():
    app = erring_app()
    events: list[str] = []
    app.add_middleware(Recorded, name="only", events=events)

    with create_client(app) as client:
        response = client.get("/set-404")

    assert response.status_code == 404
    assert response.text == "no such thing, said the view"
    assert response.headers["x-only"] == "after"
    assert events == ["only before", "only after 404"]


def test_after_dispatch_runs_again_on_the_next_request_after_an_error():
    app = erring_app()
    events: list[str] = []
    app.add_middleware(Recorded, name="only", events=events)

    with create_client(app) as client:
        assert client.get("/missing").status_code == 404
        assert client.get("/ok").headers["x-only"] == "after"

    assert events == ["only before", "only before", "only after 200"]


def test_an_error_in_an_inner_before_dispatch_skips_the_outer_after_dispatch():
    app = erring_app()
    events: list[str] = []

    class Refuse(Middleware):
        async def before_dispatch(self, req, res):
            raise HTTPError(401)

    app.add_middleware(Refuse)
    app.add_middleware(Recorded, name="outer", events=events)

    with create_client(app) as client:
        response = client.get("/ok")

    assert response.status_code == 401
    assert events == ["outer before"]


def test_a_before_dispatch_answer_is_not_an_error_for_the_outer_after_dispatch():
    app = erring_app()
    events: list[str] = []

    class Closed(Middleware):
        async def before_dispatch(self, req, res):
            res.status_code = 503
            return res

    app.add_middleware(Closed)
    app.add_middleware(Recorded, name="outer", events=events)

    with create_client(app) as client:
        response = client.get("/ok")

    assert response.status_code == 503
    assert response.headers["x-outer"] == "after"
    assert events == ["outer before", "outer after 503"]


def test_after_dispatch_raising_is_answered_by_the_error_handlers_once():
    app = erring_app()
    calls: list[int] = []

    class Broken(Middleware):
        async def after_dispatch(self, req, res):
            calls.append(res.status_code)
            raise Teapot

    app.add_middleware(Broken)

    with create_client(app) as client:
        response = client.get("/ok")

    assert response.status_code == 418
    assert response.text == "handled"
    assert calls == [200]


def test_an_error_answered_by_a_mounted_app_skips_after_dispatch():
    app = erring_app()
    events: list[str] = []
    sub = App()

    @sub.route("/here")
    async def here(req, res):
        res.text = "sub"

    app.mount("/sub", sub)
    app.add_middleware(Recorded, name="outer", events=events)

    with create_client(app) as client:
        found = client.get("/sub/here")
        missing = client.get("/sub/missing")

    assert found.text == "sub"
    assert found.headers["x-outer"] == "after"
    assert missing.status_code == 404
    assert "x-outer" not in missing.headers
    assert events == ["outer before", "outer after 200", "outer before"]
