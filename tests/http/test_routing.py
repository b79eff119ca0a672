"""Routes: function and class-based views, methods, 404/405, registration checks, wildcards."""

from __future__ import annotations

import pytest

from bocadillo import App, ConfigurationError, ExpectedAsync, create_client


def test_route_function_view_receives_route_parameters():
    app = App()

    @app.route("/greet/{name}")
    async def greet(req, res, name):
        res.text = f"Hello, {name}!"

    with create_client(app) as client:
        response = client.get("/greet/ada")

    assert response.status_code == 200
    assert response.text == "Hello, ada!"


def test_route_defaults_to_get_and_head():
    app = App()

    @app.route("/")
    async def index(req, res):
        res.text = "index"

    with create_client(app) as client:
        get = client.get("/")
        head = client.head("/")
        post = client.post("/")

    assert get.status_code == 200
    assert get.text == "index"
    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-length"] == "5"
    assert post.status_code == 405


def test_route_methods_restrict_the_allowed_verbs():
    app = App()

    @app.route("/items", methods=["post", "PUT"])
    async def items(req, res):
        res.text = req.method

    with create_client(app) as client:
        assert client.post("/items").text == "POST"
        assert client.put("/items").text == "PUT"
        response = client.get("/items")

    assert response.status_code == 405
    assert sorted(response.headers["allow"].split(", ")) == ["POST", "PUT"]


def test_route_unknown_path_answers_404_json():
    app = App()

    @app.route("/")
    async def index(req, res):
        res.text = "index"

    with create_client(app) as client:
        response = client.get("/nowhere")

    assert response.status_code == 404
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"error": "Not Found", "status": 404, "detail": "Not Found"}


def test_route_wrong_method_answers_405_with_allow_header():
    app = App()

    @app.route("/things", methods=["GET", "DELETE"])
    async def things(req, res):
        res.text = "ok"

    with create_client(app) as client:
        response = client.patch("/things")

    assert response.status_code == 405
    assert response.json() == {
        "error": "Method Not Allowed",
        "status": 405,
        "detail": "Method Not Allowed",
    }
    assert sorted(response.headers["allow"].split(", ")) == ["DELETE", "GET", "HEAD"]


def test_route_405_allow_header_lists_every_view_of_the_path():
    app = App()

    @app.get("/x")
    async def read(req, res):
        res.text = "read"

    @app.post("/x")
    async def write(req, res):
        res.text = "write"

    with create_client(app) as client:
        assert client.get("/x").text == "read"
        assert client.post("/x").text == "write"
        response = client.put("/x")

    assert response.status_code == 405
    assert sorted(response.headers["allow"].split(", ")) == ["GET", "HEAD", "POST"]


@pytest.mark.parametrize("verb", ["get", "post", "put", "patch", "delete", "options"])
def test_route_method_shortcut_registers_that_verb_only(verb):
    app = App()

    @getattr(app, verb)("/")
    async def view(req, res):
        res.text = req.method

    other = "post" if verb == "get" else "get"
    with create_client(app) as client:
        response = client.request(verb.upper(), "/")
        refused = client.request(other.upper(), "/")

    assert response.status_code == 200
    assert response.text == verb.upper()
    assert refused.status_code == 405


def test_route_head_shortcut_registers_head_only():
    app = App()
    calls: list[str] = []

    @app.head("/")
    async def view(req, res):
        calls.append(req.method)
        res.headers["x-seen"] = "yes"

    with create_client(app) as client:
        response = client.head("/")
        refused = client.get("/")

    assert response.status_code == 200
    assert response.headers["x-seen"] == "yes"
    assert refused.status_code == 405
    assert calls == ["HEAD"]


def test_route_sync_function_view_is_refused_at_registration():
    app = App()

    def view(req, res):
        res.text = "never"

    with pytest.raises(ExpectedAsync, match="async def") as info:
        app.route("/")(view)

    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, ConfigurationError)


def test_route_unknown_method_is_refused_at_registration():
    app = App()

    with pytest.raises(ConfigurationError, match="BREW"):

        @app.route("/", methods=["BREW"])
        async def view(req, res):
            pass


def test_route_pattern_without_leading_slash_gets_one():
    app = App()

    @app.route("items")
    async def view(req, res):
        res.text = "items"

    with create_client(app) as client:
        assert client.get("/items").text == "items"


def test_route_decorator_returns_the_view():
    app = App()

    async def view(req, res):
        res.text = "direct"

    assert app.route("/")(view) is view


# Class-based views -----------------------------------------------------------------------


def test_class_based_view_dispatches_one_method_per_verb():
    app = App()

    @app.route("/items/{pk}")
    class Item:
        async def get(self, req, res, pk: int):
            res.json = {"read": pk}

        async def put(self, req, res, pk: int):
            res.json = {"replaced": pk, "with": await req.json()}

        async def delete(self, req, res, pk: int):
            res.status_code = 204

    with create_client(app) as client:
        assert client.get("/items/1").json() == {"read": 1}
        assert client.put("/items/2", json={"a": 1}).json() == {"replaced": 2, "with": {"a": 1}}
        deleted = client.delete("/items/3")
        refused = client.post("/items/4")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert refused.status_code == 405
    assert sorted(refused.headers["allow"].split(", ")) == ["DELETE", "GET", "HEAD", "PUT"]


def test_class_based_view_head_is_answered_from_get_without_body():
    app = App()
    calls: list[str] = []

    @app.route("/")
    class Index:
        async def get(self, req, res):
            calls.append(req.method)
            res.headers["x-view"] = "index"
            res.text = "hello"

    with create_client(app) as client:
        response = client.head("/")

    assert response.status_code == 200
    assert response.content == b""
    assert response.headers["x-view"] == "index"
    assert response.headers["content-length"] == "5"
    assert calls == ["HEAD"]


def test_class_based_view_handle_serves_every_verb_even_those_with_a_method():
    app = App()
    calls: list[str] = []

    @app.route("/")
    class Anything:
        async def get(self, req, res):
            calls.append("get")
            res.text = "specific get"

        async def post(self, req, res):
            calls.append("post")

        async def handle(self, req, res):
            res.text = f"handled {req.method}"

    with create_client(app) as client:
        # As in Bocadillo 0.18: handle wins, the verb methods beside it are never called.
        assert client.get("/").text == "handled GET"
        assert client.post("/").text == "handled POST"
        assert client.delete("/").text == "handled DELETE"
        assert client.request("PURGE", "/").text == "handled PURGE"
        head = client.head("/")

    assert head.status_code == 200
    assert head.content == b""
    assert calls == []


def test_class_based_view_sync_method_beside_handle_is_still_refused():
    app = App()

    class Index:
        def get(self, req, res):
            res.text = "never"

        async def handle(self, req, res):
            res.text = "handled"

    with pytest.raises(ExpectedAsync, match="async def"):
        app.route("/")(Index)


def test_class_based_view_instance_is_accepted():
    app = App()

    class Counter:
        def __init__(self, start: int) -> None:
            self.value = start

        async def post(self, req, res):
            self.value += 1
            res.json = {"value": self.value}

    app.add_route("/count", Counter(10))

    with create_client(app) as client:
        assert client.post("/count").json() == {"value": 11}
        assert client.post("/count").json() == {"value": 12}


def test_class_based_view_sync_method_is_refused_at_registration():
    app = App()

    class Index:
        def get(self, req, res):
            res.text = "never"

    with pytest.raises(ExpectedAsync, match="async def"):
        app.route("/")(Index)


def test_class_based_view_sync_handle_is_refused_at_registration():
    app = App()

    class Index:
        def handle(self, req, res):
            res.text = "never"

    with pytest.raises(ExpectedAsync):
        app.route("/")(Index)


def test_class_based_view_without_handlers_answers_405_to_every_verb():
    app = App()

    @app.route("/")
    class Empty:
        pass

    with create_client(app) as client:
        for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
            assert client.request(method, "/").status_code == 405


def test_class_based_view_with_methods_argument_is_refused():
    app = App()

    class Index:
        async def get(self, req, res):
            pass

    with pytest.raises(ConfigurationError, match="methods="):
        app.route("/", methods=["GET"])(Index)


# Wildcards -------------------------------------------------------------------------------


def test_wildcard_route_matches_the_rest_of_the_path():
    app = App()

    @app.route("/files/*")
    async def files(req, res):
        res.text = f"file {req.url.path}"

    with create_client(app) as client:
        nested = client.get("/files/css/site/main.css")
        single = client.get("/files/a.txt")
        outside = client.get("/other/a.txt")

    assert nested.status_code == 200
    assert nested.text == "file /files/css/site/main.css"
    assert single.text == "file /files/a.txt"
    assert outside.status_code == 404


def test_wildcard_alone_is_a_catch_all():
    app = App()

    @app.route("*")
    async def fallback(req, res):
        res.text = f"fallback {req.url.path}"

    with create_client(app) as client:
        assert client.get("/").text == "fallback /"
        assert client.get("/a").text == "fallback /a"
        assert client.get("/a/b/c").text == "fallback /a/b/c"


def test_wildcard_does_not_shadow_a_specific_route_registered_later():
    app = App()

    @app.route("/files/*")
    async def files(req, res):
        res.text = "files"

    @app.route("/files/special")
    async def special(req, res):
        res.text = "special"

    with create_client(app) as client:
        assert client.get("/files/special").text == "special"
        assert client.get("/files/other").text == "files"


def test_wildcard_catch_all_does_not_shadow_a_narrower_wildcard_registered_later():
    app = App()

    @app.route("*")
    async def fallback(req, res):
        res.text = "fallback"

    @app.route("/files/*")
    async def files(req, res):
        res.text = "files"

    with create_client(app) as client:
        assert client.get("/files/other").text == "files"
        assert client.get("/elsewhere").text == "fallback"


def test_wildcard_in_the_middle_of_a_pattern_is_refused():
    app = App()

    with pytest.raises(ConfigurationError, match=r"\*"):

        @app.route("/a/*/b")
        async def view(req, res):
            pass


def test_route_path_parameter_matches_slashes():
    app = App()

    @app.route("/docs/{page:path}")
    async def docs(req, res, page: str):
        res.json = {"page": page}

    with create_client(app) as client:
        assert client.get("/docs/guide/routing.md").json() == {"page": "guide/routing.md"}
