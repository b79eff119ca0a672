"""The response object: bodies, headers, cookies, files, streams and background tasks."""

from __future__ import annotations

import pytest
from starlette.responses import PlainTextResponse

from bocadillo import App, Response, create_client


def test_response_text_sets_type_and_length():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.text = "héllo"

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 200
    assert response.text == "héllo"
    assert response.headers["content-type"] == "text/plain"
    assert response.headers["content-length"] == str(len("héllo".encode()))


def test_response_html_sets_type_and_length():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.html = "<h1>Hi</h1>"

    with create_client(app) as client:
        response = client.get("/")

    assert response.text == "<h1>Hi</h1>"
    assert response.headers["content-type"] == "text/html"
    assert response.headers["content-length"] == "11"


@pytest.mark.parametrize("attribute", ["json", "media"])
def test_response_json_and_media_encode_json(attribute):
    app = App()

    @app.route("/")
    async def view(req, res):
        setattr(res, attribute, {"name": "café", "items": [1, 2.5, None, True]})

    with create_client(app) as client:
        response = client.get("/")

    assert response.json() == {"name": "café", "items": [1, 2.5, None, True]}
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-length"] == str(len(response.content))


def test_response_content_sends_raw_bytes():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.content = b"\x89PNG\x00"

    with create_client(app) as client:
        response = client.get("/")

    assert response.content == b"\x89PNG\x00"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-length"] == "5"


def test_response_explicit_content_type_header_wins():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.headers["content-type"] = "image/png"
        res.content = b"\x89PNG"

    with create_client(app) as client:
        response = client.get("/")

    assert response.headers["content-type"] == "image/png"
    assert response.content == b"\x89PNG"


def test_response_last_body_set_wins():
    app = App()
    seen: dict[str, object] = {}

    @app.route("/")
    async def view(req, res):
        res.json = {"first": True}
        res.text = "second"
        res.content = b"third"
        seen.update(json=res.json, text=res.text, content=res.content)

    with create_client(app) as client:
        response = client.get("/")

    assert response.content == b"third"
    assert response.headers["content-type"] == "application/octet-stream"
    assert seen == {"json": None, "text": None, "content": b"third"}


@pytest.mark.parametrize("with_headers", [False, True])
def test_response_headers_are_exactly_what_the_body_implies_plus_those_set(with_headers):
    app = App()

    @app.route("/")
    async def view(req, res):
        if with_headers:
            res.headers = {"x-one": "1", "content-type": "application/vnd.x+json"}
        res.json = {"ok": True}

    with create_client(app) as client:
        response = client.get("/")

    expected = {"content-length": "11"}
    expected["content-type"] = "application/vnd.x+json" if with_headers else "application/json"
    if with_headers:
        expected["x-one"] = "1"
    assert dict(response.headers) == expected
    assert response.json() == {"ok": True}


def test_response_status_code_and_headers_reach_the_client():
    app = App()

    @app.route("/", methods=["POST"])
    async def view(req, res):
        res.status_code = 201
        res.headers["location"] = "/items/1"
        res.headers["x-request-id"] = "abc"
        res.json = {"id": 1}

    with create_client(app) as client:
        response = client.post("/")

    assert response.status_code == 201
    assert response.headers["location"] == "/items/1"
    assert response.headers["x-request-id"] == "abc"
    assert response.json() == {"id": 1}


def test_response_without_body_is_empty():
    app = App()

    @app.route("/")
    async def view(req, res):
        pass

    @app.route("/none", methods=["DELETE"])
    async def no_content(req, res):
        res.status_code = 204

    with create_client(app) as client:
        empty = client.get("/")
        deleted = client.delete("/none")

    assert empty.status_code == 200
    assert empty.content == b""
    assert empty.headers["content-length"] == "0"
    assert deleted.status_code == 204
    assert deleted.content == b""
    assert "content-length" not in deleted.headers


def test_response_set_cookie_and_delete_cookie():
    app = App()

    @app.route("/login")
    async def login(req, res):
        res.set_cookie("session", "abc", max_age=60, httponly=True)
        res.text = "in"

    @app.route("/logout")
    async def logout(req, res):
        res.delete_cookie("session")
        res.text = "out"

    with create_client(app) as client:
        login_response = client.get("/login")
        assert client.cookies["session"] == "abc"
        logout_response = client.get("/logout")

    set_cookie = login_response.headers["set-cookie"]
    assert set_cookie.startswith("session=abc;")
    assert "Max-Age=60" in set_cookie
    assert "HttpOnly" in set_cookie
    assert login_response.text == "in"
    assert login_response.headers["content-type"] == "text/plain; charset=utf-8"
    deleted = logout_response.headers["set-cookie"]
    assert deleted.startswith("session=")
    assert "Max-Age=0" in deleted
    assert "session" not in client.cookies


def test_response_attachment_from_path(tmp_path):
    report = tmp_path / "report.csv"
    report.write_text("a,b\n1,2\n")
    app = App()

    @app.route("/")
    async def view(req, res):
        res.attachment(report)

    with create_client(app) as client:
        response = client.get("/")

    assert response.text == "a,b\n1,2\n"
    assert response.headers["content-disposition"] == 'attachment; filename="report.csv"'
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-length"] == "8"


def test_response_attachment_from_content():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.attachment(content="hello, file", filename="hello.txt")

    with create_client(app) as client:
        response = client.get("/")

    assert response.text == "hello, file"
    assert response.headers["content-disposition"] == 'attachment; filename="hello.txt"'
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["content-length"] == "11"


def test_response_attachment_needs_path_or_content_and_filename():
    res = Response()

    with pytest.raises(ValueError, match="either a path or content"):
        res.attachment()
    with pytest.raises(ValueError, match="either a path or content"):
        res.attachment("x.txt", content=b"x")
    with pytest.raises(ValueError, match="needs a filename"):
        res.attachment(content=b"x")


def test_response_file_is_served_inline(tmp_path):
    page = tmp_path / "page.html"
    page.write_text("<p>file</p>")
    app = App()

    @app.route("/")
    async def view(req, res):
        res.file(page)

    @app.route("/download")
    async def download(req, res):
        res.file(page, attach=True)

    with create_client(app) as client:
        inline = client.get("/")
        attached = client.get("/download")

    assert inline.text == "<p>file</p>"
    assert inline.headers["content-type"].startswith("text/html")
    assert inline.headers["content-length"] == "11"
    assert "content-disposition" not in inline.headers
    assert attached.text == "<p>file</p>"
    assert attached.headers["content-disposition"] == 'attachment; filename="page.html"'


def test_response_stream_decorator_on_async_generator():
    app = App()

    @app.route("/")
    async def view(req, res):
        @res.stream
        async def numbers():
            for n in range(5):
                yield str(n)

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 200
    assert response.text == "01234"
    assert "content-length" not in response.headers


def test_response_stream_accepts_a_sync_iterable():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.headers["content-type"] = "text/csv"
        res.stream(iter([b"a,b\n", "1,2\n", b"3,4\n"]))

    with create_client(app) as client:
        response = client.get("/")

    assert response.text == "a,b\n1,2\n3,4\n"
    assert response.headers["content-type"].startswith("text/csv")
    assert "content-length" not in response.headers


def test_response_chunked_drops_content_length():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.chunked = True
        res.text = "sent in chunks"

    with create_client(app) as client:
        response = client.get("/")

    assert response.text == "sent in chunks"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    assert "content-length" not in response.headers


def test_response_background_tasks_run_after_the_response():
    app = App()
    done: list[str] = []

    def sync_task(name: str, *, suffix: str) -> None:
        done.append(f"sync {name}{suffix}")

    async def async_task(name: str) -> None:
        done.append(f"async {name}")

    @app.route("/")
    async def view(req, res):
        res.background(sync_task, "a", suffix="!")
        res.background(async_task, "b")
        res.json = {"done_when_view_returned": list(done)}

    with create_client(app) as client:
        response = client.get("/")

    assert response.json() == {"done_when_view_returned": []}
    assert done == ["sync a!", "async b"]


def test_response_background_task_runs_with_a_streamed_body():
    app = App()
    done: list[str] = []

    @app.route("/")
    async def view(req, res):
        res.stream([b"x"])

        @res.background
        async def after():
            done.append("after")

    with create_client(app) as client:
        assert client.get("/").text == "x"

    assert done == ["after"]


# View return values ----------------------------------------------------------------------


def test_view_return_dict_or_list_is_json():
    app = App()

    @app.route("/dict")
    async def as_dict(req, res):
        return {"a": 1}

    @app.route("/list")
    async def as_list(req, res):
        return [1, 2]

    with create_client(app) as client:
        as_dict_response = client.get("/dict")
        as_list_response = client.get("/list")

    assert as_dict_response.json() == {"a": 1}
    assert as_dict_response.headers["content-type"] == "application/json"
    assert as_list_response.json() == [1, 2]


def test_view_return_str_is_text_and_bytes_is_content():
    app = App()

    @app.route("/str")
    async def as_str(req, res):
        return "text"

    @app.route("/bytes")
    async def as_bytes(req, res):
        return b"\x00raw"

    with create_client(app) as client:
        text = client.get("/str")
        raw = client.get("/bytes")

    assert text.text == "text"
    assert text.headers["content-type"] == "text/plain"
    assert raw.content == b"\x00raw"
    assert raw.headers["content-type"] == "application/octet-stream"


def test_view_return_value_keeps_status_and_headers_set_on_res():
    app = App()

    @app.route("/", methods=["POST"])
    async def view(req, res):
        res.status_code = 201
        res.headers["x-extra"] = "1"
        return {"created": True}

    with create_client(app) as client:
        response = client.post("/")

    assert response.status_code == 201
    assert response.headers["x-extra"] == "1"
    assert response.json() == {"created": True}


def test_view_return_starlette_response_is_sent_as_is():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.text = "ignored"
        return PlainTextResponse("from starlette", status_code=202, headers={"x-from": "s"})

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 202
    assert response.text == "from starlette"
    assert response.headers["x-from"] == "s"


def test_view_return_unsupported_type_answers_500():
    app = App()

    @app.route("/")
    async def view(req, res):
        return 42

    with create_client(app, raise_server_exceptions=False) as client:
        response = client.get("/")

    assert response.status_code == 500
    assert response.json()["status"] == 500


def test_view_return_unsupported_type_raises_type_error_in_tests():
    app = App()

    @app.route("/")
    async def view(req, res):
        return object()

    with create_client(app) as client, pytest.raises(TypeError, match="returned object"):
        client.get("/")


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"score": float("-inf")}])
def test_response_json_of_what_json_cannot_carry_fails_the_view_with_a_500(value):
    app = App()
    failures: list[BaseException] = []

    @app.route("/")
    async def view(req, res):
        try:
            res.json = value
        except ValueError as exc:
            failures.append(exc)
            raise

    with create_client(app, raise_server_exceptions=False) as client:
        response = client.get("/")

    assert [type(exc) for exc in failures] == [ValueError]
    assert response.status_code == 500
    assert response.json() == {
        "error": "Internal Server Error",
        "status": 500,
        "detail": "Internal Server Error",
    }
    assert "Traceback" not in response.text
    assert "NaN" not in response.text and "Infinity" not in response.text
