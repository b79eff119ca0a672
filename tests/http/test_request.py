"""The request object: metadata, query, cookies and the different ways to read the body."""

from __future__ import annotations

from collections.abc import Iterator

from bocadillo import App, create_client


def test_request_exposes_method_url_headers_and_client():
    app = App()

    @app.route("/inspect/{pk}", methods=["GET", "POST"])
    async def inspect(req, res, pk):
        res.json = {
            "method": req.method,
            "url": str(req.url),
            "path": req.url.path,
            "header": req.headers["x-custom"],
            "client": req.client.host,
            "path_params": dict(req.path_params),
        }

    with create_client(app) as client:
        response = client.post("/inspect/3?a=1", headers={"X-Custom": "value"})

    assert response.json() == {
        "method": "POST",
        "url": "http://testserver/inspect/3?a=1",
        "path": "/inspect/3",
        "header": "value",
        "client": "testclient",
        "path_params": {"pk": "3"},
    }


def test_request_query_params_keep_repeated_values():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.json = {
            "last": req.query_params["tag"],
            "all": req.query_params.getlist("tag"),
            "missing": req.query_params.get("nope"),
        }

    with create_client(app) as client:
        response = client.get("/?tag=a&tag=b")

    assert response.json() == {"last": "b", "all": ["a", "b"], "missing": None}


def test_request_cookies_are_parsed():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.json = dict(req.cookies)

    with create_client(app) as client:
        response = client.get("/", headers={"cookie": "session=abc; theme=dark"})

    assert response.json() == {"session": "abc", "theme": "dark"}


def test_request_json_parses_the_body():
    app = App()

    @app.route("/", methods=["POST"])
    async def view(req, res):
        data = await req.json()
        res.json = {"received": data, "again": await req.json()}

    with create_client(app) as client:
        response = client.post("/", json={"a": [1, 2], "b": None})

    assert response.json() == {
        "received": {"a": [1, 2], "b": None},
        "again": {"a": [1, 2], "b": None},
    }


def test_request_invalid_json_answers_400_json_error():
    app = App()
    reached: list[str] = []

    @app.route("/", methods=["POST"])
    async def view(req, res):
        await req.json()
        reached.append("after json")

    with create_client(app) as client:
        response = client.post(
            "/", content=b"{not json", headers={"content-type": "application/json"}
        )
        non_utf8 = client.post("/", content=b"\xff\xfe")

    assert response.status_code == 400
    body = response.json()
    assert body["error"] == "Bad Request"
    assert body["status"] == 400
    assert body["detail"].startswith("Invalid JSON body")
    assert non_utf8.status_code == 400
    assert reached == []


def test_request_json_answers_400_for_what_json_cannot_hold():
    app = App()

    @app.route("/", methods=["POST"])
    async def view(req, res):
        res.json = await req.json()

    bodies = [
        b"[" * 100_000,  # nested too deeply: RecursionError
        b"9" * 5_000,  # more digits than int() accepts: ValueError
        b"NaN",
        b'{"a": Infinity}',
        b"1e999",  # beyond a double: Python would make it inf
    ]
    with create_client(app) as client:
        for body in bodies:
            response = client.post("/", content=body)
            assert response.status_code == 400, body[:20]
            assert response.json()["detail"].startswith("Invalid JSON body")
        assert client.post("/", content=b"[1e308, -0.0, 5e-324]").json() == [1e308, 0.0, 5e-324]


def test_request_form_reads_urlencoded_fields():
    app = App()

    @app.route("/", methods=["POST"])
    async def view(req, res):
        form = await req.form()
        res.json = {"name": form["name"], "tags": form.getlist("tag")}

    with create_client(app) as client:
        response = client.post("/", data={"name": "Ada", "tag": ["x", "y"]})

    assert response.json() == {"name": "Ada", "tags": ["x", "y"]}


def test_request_form_reads_multipart_files():
    app = App()

    @app.route("/upload", methods=["POST"])
    async def upload(req, res):
        form = await req.form()
        upload = form["file"]
        res.json = {
            "title": form["title"],
            "filename": upload.filename,
            "content_type": upload.content_type,
            "content": (await upload.read()).decode(),
        }

    with create_client(app) as client:
        response = client.post(
            "/upload",
            data={"title": "notes"},
            files={"file": ("notes.txt", b"line one\nline two", "text/plain")},
        )

    assert response.json() == {
        "title": "notes",
        "filename": "notes.txt",
        "content_type": "text/plain",
        "content": "line one\nline two",
    }


def test_request_form_as_context_manager_reads_multipart_files():
    app = App()

    @app.route("/upload", methods=["POST"])
    async def upload(req, res):
        async with req.form() as form:
            res.content = await form["file"].read()

    with create_client(app) as client:
        response = client.post("/upload", files={"file": ("a.bin", b"\x00\x01\x02")})

    assert response.content == b"\x00\x01\x02"


def test_request_body_returns_the_raw_bytes():
    app = App()

    @app.route("/", methods=["PUT"])
    async def view(req, res):
        body = await req.body()
        res.json = {"length": len(body), "head": body[:4].hex(), "same": body == await req.body()}

    with create_client(app) as client:
        response = client.put("/", content=b"\x00\x01\x02\x03" * 100)

    assert response.json() == {"length": 400, "head": "00010203", "same": True}


def test_request_async_iteration_streams_the_body():
    app = App()

    @app.route("/", methods=["POST"])
    async def view(req, res):
        chunks = [chunk async for chunk in req]
        res.json = {
            "body": b"".join(chunks).decode(),
            "types": sorted({type(chunk).__name__ for chunk in chunks}),
        }

    def body() -> Iterator[bytes]:
        yield b"first,"
        yield b"second,"
        yield b"third"

    with create_client(app) as client:
        response = client.post("/", content=body())

    assert response.json() == {"body": "first,second,third", "types": ["bytes"]}


def test_request_json_answers_400_for_what_the_json_codec_refuses():
    app = App()

    @app.route("/", methods=["POST"])
    async def view(req, res):
        res.json = await req.json()

    bodies = [
        b'"\\ud800"',  # a lone surrogate: UTF-8 cannot carry it back
        "[1]".encode("utf-16"),  # JSON in UTF-8 only
        b"\xef\xbb\xbf[1]",  # no byte-order mark
        b"[-Infinity]",
    ]
    with create_client(app) as client:
        for body in bodies:
            response = client.post("/", content=body)
            assert response.status_code == 400, body[:20]
            assert response.json()["detail"].startswith("Invalid JSON body")
        assert client.post("/", content='{"é": "ü"}'.encode()).json() == {"é": "ü"}
