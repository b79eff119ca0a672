"""Response safety: no header splitting, RFC 6266 download names, one encoder for both forms."""

from __future__ import annotations

from urllib.parse import unquote

import pytest
from starlette.datastructures import MutableHeaders

from bocadillo import App, Redirect, Response, create_client
from bocadillo.response import check_header, content_disposition


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        ("report.csv", 'attachment; filename="report.csv"'),
        ("my report (v2).csv", 'attachment; filename="my report (v2).csv"'),
        (
            "a\"; filename*=UTF-8''evil.exe",
            "attachment; filename=\"a_; filename_=UTF-8''evil.exe\"; "
            "filename*=UTF-8''a%22%3B%20filename%2A%3DUTF-8%27%27evil.exe",
        ),
        (
            "résumé.pdf",
            "attachment; filename=\"resume.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf",
        ),
        ("日本.txt", "attachment; filename=\".txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
        ("日本", "attachment; filename=\"download\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC"),
        (
            "back\\slash\r\n.txt",
            "attachment; filename=\"back_slash__.txt\"; filename*=UTF-8''back%5Cslash%0D%0A.txt",
        ),
        ("100%.txt", "attachment; filename=\"100_.txt\"; filename*=UTF-8''100%25.txt"),
    ],
)
def test_content_disposition_encodes_names_per_rfc_6266(filename, expected):
    header = content_disposition("attachment", filename)
    assert header == expected
    check_header("content-disposition", header)  # always one safe line
    if "filename*=" in header:
        assert unquote(header.split("filename*=UTF-8''")[1]) == filename


def test_content_disposition_needs_a_name():
    with pytest.raises(ValueError, match="non-empty filename"):
        content_disposition("attachment", "")


def test_attachment_from_content_and_from_path_encode_alike(tmp_path):
    name = 'naïve "quote".txt'
    path = tmp_path / "file.txt"
    path.write_text("data")
    app = App()

    @app.route("/content")
    async def from_content(req, res):
        res.attachment(content="data", filename=name)

    @app.route("/path")
    async def from_path(req, res):
        res.attachment(path, filename=name)

    @app.route("/inline")
    async def inline(req, res):
        res.file(path, filename="Ünïcode.txt")

    with create_client(app) as client:
        content = client.get("/content")
        file = client.get("/path")
        shown = client.get("/inline")
    expected = content_disposition("attachment", name)
    assert content.headers["content-disposition"] == expected
    assert file.headers["content-disposition"] == expected
    assert shown.headers["content-disposition"] == content_disposition("inline", "Ünïcode.txt")
    assert (content.text, file.text) == ("data", "data")


@pytest.mark.parametrize("bad", ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\0b"])
def test_header_values_with_line_breaks_or_nul_are_refused_where_set(bad):
    res = Response()
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        res.headers["x-user"] = bad
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        res.headers.setdefault("x-user", bad)
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        res.headers.append("x-user", bad)
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        res.headers.update({"x-user": bad})
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        res.headers = {"x-user": bad}
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        res.headers[f"x-{bad}"] = "ok"
    with pytest.raises(ValueError, match="CR, LF or NUL"):
        Redirect(f"/next?{bad}")
    assert "x-user" not in res.headers


def test_header_names_must_be_names():
    with pytest.raises(ValueError, match="not a header name"):
        Response().headers["x-a: b"] = "c"


def test_headers_can_still_be_replaced_whole():
    res = Response()
    given = MutableHeaders(raw=[(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2")])
    res.headers = given
    res.headers["x-ok"] = "fine"
    assert res.headers.getlist("set-cookie") == ["a=1", "b=2"]
    res.headers = {"x-one": "1"}
    assert dict(res.headers) == {"x-one": "1"}


def test_a_bad_header_or_redirect_answers_a_500_json_error():
    app = App()

    @app.route("/header")
    async def header(req, res, value: str):
        res.headers["x-echo"] = value
        res.text = "unreachable"

    @app.route("/redirect")
    async def redirect(req, res, to: str):
        raise Redirect(to)

    with create_client(app, raise_server_exceptions=False) as client:
        for path in ("/header?value=a%0d%0aSet-Cookie:%20x=1", "/redirect?to=/a%0d%0aX:%20y"):
            response = client.get(path)
            assert response.status_code == 500
            assert response.json() == {
                "error": "Internal Server Error",
                "status": 500,
                "detail": "Internal Server Error",
            }
            assert "set-cookie" not in response.headers
            assert "x" not in response.headers
