"""The HTTP foundation over real sockets: uvicorn (LiveServer) and a real HTTP client."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2 as httpx
import pytest

from bocadillo import App, HTTPError, LiveServer

pytestmark = pytest.mark.integration


def _routing_app() -> App:
    app = App()

    @app.route("/items/{pk}", methods=["GET", "DELETE"])
    async def item(req, res, pk: int):
        res.json = {"pk": pk, "method": req.method}

    @app.route("/")
    class Index:
        async def get(self, req, res):
            res.text = "index"

    return app


def test_live_routing_answers_200_404_and_405_with_allow(live_server):
    server = live_server(_routing_app())

    with httpx.Client(base_url=server.url) as client:
        found = client.get("/items/5")
        deleted = client.delete("/items/6")
        index = client.get("/")
        head = client.head("/")
        missing = client.get("/nowhere")
        not_allowed = client.post("/items/5")

    assert found.status_code == 200
    assert found.json() == {"pk": 5, "method": "GET"}
    assert deleted.json() == {"pk": 6, "method": "DELETE"}
    assert index.text == "index"
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "5"
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found", "status": 404, "detail": "Not Found"}
    assert not_allowed.status_code == 405
    assert sorted(not_allowed.headers["allow"].split(", ")) == ["DELETE", "GET", "HEAD"]


def test_live_parameters_answer_200_and_400(live_server):
    app = App()

    @app.route("/search/{kind}")
    async def search(req, res, kind: str, q: str, page: int = 1, exact: bool = False):
        res.json = {"kind": kind, "q": q, "page": page, "exact": exact}

    server = live_server(app)

    with httpx.Client(base_url=server.url) as client:
        ok = client.get("/search/books", params={"q": "dune", "page": "2", "exact": "true"})
        default = client.get("/search/books", params={"q": "dune"})
        bad = client.get("/search/books", params={"page": "two"})

    assert ok.status_code == 200
    assert ok.json() == {"kind": "books", "q": "dune", "page": 2, "exact": True}
    assert default.json() == {"kind": "books", "q": "dune", "page": 1, "exact": False}
    assert bad.status_code == 400
    assert bad.headers["content-type"] == "application/json"
    assert bad.json() == {
        "error": "Bad Request",
        "status": 400,
        "detail": {"q": "missing required query parameter", "page": "expected an integer"},
    }


def test_live_errors_http_error_500_then_still_serving(live_server):
    app = App()

    @app.route("/forbidden")
    async def forbidden(req, res):
        raise HTTPError(403, detail="members only", headers={"X-Reason": "membership"})

    @app.route("/boom")
    async def boom(req, res):
        raise RuntimeError("secret database password")

    @app.route("/ok")
    async def ok(req, res):
        res.text = "still serving"

    server = live_server(app)

    with httpx.Client(base_url=server.url) as client:
        forbidden_response = client.get("/forbidden")
        boom_response = client.get("/boom")
        after = client.get("/ok")

    assert forbidden_response.status_code == 403
    assert forbidden_response.headers["x-reason"] == "membership"
    assert forbidden_response.json() == {
        "error": "Forbidden",
        "status": 403,
        "detail": "members only",
    }
    assert boom_response.status_code == 500
    assert boom_response.json() == {
        "error": "Internal Server Error",
        "status": 500,
        "detail": "Internal Server Error",
    }
    # The server closes this connection after the error; the client must not reuse it.
    assert boom_response.headers["connection"] == "close"
    assert "secret" not in boom_response.text
    assert "Traceback" not in boom_response.text
    assert after.status_code == 200
    assert after.text == "still serving"


def test_live_request_body_and_json(live_server):
    app = App()

    @app.route("/echo", methods=["POST"])
    async def echo(req, res):
        chunks = [chunk async for chunk in req]
        res.content = b"".join(chunks)

    @app.route("/json", methods=["POST"])
    async def parse(req, res):
        res.json = {"got": await req.json()}

    server = live_server(app)

    def body() -> Iterator[bytes]:
        yield b"first,"
        yield b"second"

    with httpx.Client(base_url=server.url) as client:
        echoed = client.post("/echo", content=body())
        parsed = client.post("/json", json={"a": 1})
        invalid = client.post("/json", content=b"{oops")

    assert echoed.content == b"first,second"
    assert parsed.json() == {"got": {"a": 1}}
    assert invalid.status_code == 400
    assert invalid.json()["detail"].startswith("Invalid JSON body")


def test_live_streamed_response_uses_chunked_encoding(live_server):
    app = App()

    @app.route("/stream")
    async def stream(req, res):
        @res.stream
        async def numbers():
            for n in range(3):
                yield f"{n}\n"

    @app.route("/chunked")
    async def chunked(req, res):
        res.chunked = True
        res.text = "whole body"

    server = live_server(app)

    with httpx.Client(base_url=server.url) as client:
        streamed = client.get("/stream")
        chunked_response = client.get("/chunked")

    assert streamed.text == "0\n1\n2\n"
    assert streamed.headers["transfer-encoding"] == "chunked"
    assert "content-length" not in streamed.headers
    assert chunked_response.text == "whole body"
    assert chunked_response.headers["transfer-encoding"] == "chunked"


def test_live_server_runs_lifespan_handlers():
    app = App()
    events: list[str] = []

    @app.on("startup")
    async def startup():
        events.append("startup")

    @app.on("shutdown")
    def shutdown():
        events.append("shutdown")

    @app.route("/")
    async def index(req, res):
        res.json = events

    with LiveServer(app) as server:
        assert httpx.get(server.url + "/").json() == ["startup"]

    assert events == ["startup", "shutdown"]
