"""Errors: HTTPError rendering, custom error handlers and unhandled exceptions."""

from __future__ import annotations

from http import HTTPStatus

import pytest

from bocadillo import App, HTTPError, create_client


def test_http_error_answers_its_status_as_json():
    app = App()

    @app.route("/items/{pk}")
    async def item(req, res, pk: int):
        raise HTTPError(404, detail=f"item {pk} does not exist")

    with create_client(app) as client:
        response = client.get("/items/3")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {
        "error": "Not Found",
        "status": 404,
        "detail": "item 3 does not exist",
    }


def test_http_error_detail_defaults_to_the_phrase_and_accepts_structures():
    app = App()

    @app.route("/teapot")
    async def teapot(req, res):
        raise HTTPError(HTTPStatus.IM_A_TEAPOT)

    @app.route("/conflict")
    async def conflict(req, res):
        raise HTTPError(409, detail={"field": "name", "reason": "taken"})

    with create_client(app) as client:
        teapot_response = client.get("/teapot")
        conflict_response = client.get("/conflict")

    assert teapot_response.status_code == 418
    assert teapot_response.json() == {
        "error": "I'm a Teapot",
        "status": 418,
        "detail": "I'm a Teapot",
    }
    assert conflict_response.json() == {
        "error": "Conflict",
        "status": 409,
        "detail": {"field": "name", "reason": "taken"},
    }


def test_http_error_renders_plain_text_for_text_clients():
    app = App()

    @app.route("/")
    async def view(req, res):
        raise HTTPError(403, detail="members only")

    with create_client(app) as client:
        text = client.get("/", headers={"accept": "text/plain"})
        html = client.get("/", headers={"accept": "text/html"})
        anything = client.get("/", headers={"accept": "*/*"})

    assert text.status_code == 403
    assert text.headers["content-type"] == "text/plain"
    assert text.text == "members only"
    assert html.text == "members only"
    assert anything.json()["detail"] == "members only"


def test_http_error_headers_reach_the_client():
    app = App()

    @app.route("/")
    async def view(req, res):
        raise HTTPError(401, detail="login first", headers={"WWW-Authenticate": "Bearer"})

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] == "login first"


def test_http_error_replaces_whatever_the_view_had_set():
    app = App()

    @app.route("/")
    async def view(req, res):
        res.status_code = 201
        res.headers["x-partial"] = "yes"
        res.text = "half done"
        raise HTTPError(400, detail="changed my mind")

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 400
    assert "x-partial" not in response.headers
    assert response.json()["detail"] == "changed my mind"


def test_error_handler_handles_an_exception_type():
    app = App()

    @app.error_handler(KeyError)
    async def on_key_error(req, res, exc):
        res.status_code = 404
        res.json = {"missing": exc.args[0], "path": req.url.path}

    @app.route("/")
    async def view(req, res):
        raise KeyError("user")

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 404
    assert response.json() == {"missing": "user", "path": "/"}


def test_error_handler_may_be_sync():
    app = App()

    @app.error_handler(ValueError)
    def on_value_error(req, res, exc):
        res.status_code = 422
        res.text = f"bad value: {exc}"

    @app.route("/")
    async def view(req, res):
        raise ValueError("nope")

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 422
    assert response.text == "bad value: nope"


def test_error_handler_most_specific_by_mro_wins():
    app = App()

    @app.error_handler(Exception)
    async def on_exception(req, res, exc):
        res.status_code = 500
        res.text = "generic"

    @app.error_handler(LookupError)
    async def on_lookup(req, res, exc):
        res.status_code = 404
        res.text = "lookup"

    @app.error_handler(KeyError)
    async def on_key(req, res, exc):
        res.status_code = 410
        res.text = "key"

    @app.route("/{kind}")
    async def view(req, res, kind: str):
        raise {"key": KeyError, "index": IndexError, "runtime": RuntimeError}[kind]()

    with create_client(app) as client:
        key = client.get("/key")
        index = client.get("/index")
        runtime = client.get("/runtime")

    assert (key.status_code, key.text) == (410, "key")
    assert (index.status_code, index.text) == (404, "lookup")
    assert (runtime.status_code, runtime.text) == (500, "generic")


def test_error_handler_for_http_error_changes_404_405_and_400_rendering():
    app = App()

    @app.error_handler(HTTPError)
    async def on_http_error(req, res, exc):
        res.status_code = exc.status_code
        res.html = f"<h1>{exc.status_code} {exc.title}</h1>"

    @app.route("/items/{pk}")
    async def item(req, res, pk: int):
        res.text = "item"

    with create_client(app) as client:
        not_found = client.get("/nowhere")
        not_allowed = client.post("/items/1")
        bad = client.get("/items/x")

    assert not_found.status_code == 404
    assert not_found.text == "<h1>404 Not Found</h1>"
    assert not_found.headers["content-type"] == "text/html"
    assert not_allowed.status_code == 405
    assert not_allowed.text == "<h1>405 Method Not Allowed</h1>"
    assert bad.status_code == 400
    assert bad.text == "<h1>400 Bad Request</h1>"


def test_unhandled_exception_answers_500_without_leaking_details():
    app = App()

    @app.route("/boom")
    async def boom(req, res):
        raise RuntimeError("secret database password")

    with create_client(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
        text = client.get("/boom", headers={"accept": "text/plain"})

    assert response.status_code == 500
    assert response.json() == {
        "error": "Internal Server Error",
        "status": 500,
        "detail": "Internal Server Error",
    }
    assert response.headers["connection"] == "close"
    assert text.status_code == 500
    assert text.text == "Internal Server Error"
    for body in (response.text, text.text):
        assert "secret" not in body
        assert "Traceback" not in body
        assert "RuntimeError" not in body


def test_unhandled_exception_is_raised_to_the_test_client_by_default():
    app = App()

    @app.route("/boom")
    async def boom(req, res):
        raise RuntimeError("visible in tests")

    with create_client(app) as client, pytest.raises(RuntimeError, match="visible in tests"):
        client.get("/boom")


def test_unhandled_exception_in_debug_shows_the_traceback():
    app = App(debug=True)

    @app.route("/boom")
    async def boom(req, res):
        raise RuntimeError("debug details")

    with create_client(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")

    assert response.status_code == 500
    assert "Traceback" in response.text
    assert "RuntimeError: debug details" in response.text


def test_unhandled_exception_does_not_stop_the_app():
    app = App()

    @app.route("/boom")
    async def boom(req, res):
        raise RuntimeError("boom")

    @app.route("/ok")
    async def ok(req, res):
        res.text = "still serving"

    with create_client(app, raise_server_exceptions=False) as client:
        assert client.get("/boom").status_code == 500
        response = client.get("/ok")
        assert client.get("/boom").status_code == 500

    assert response.status_code == 200
    assert response.text == "still serving"


def test_exception_in_error_handler_answers_500():
    app = App()

    @app.error_handler(ValueError)
    async def broken(req, res, exc):
        raise RuntimeError("handler failed")

    @app.route("/")
    async def view(req, res):
        raise ValueError("original")

    with create_client(app, raise_server_exceptions=False) as client:
        response = client.get("/")

    assert response.status_code == 500
    assert "handler failed" not in response.text
