"""Composition: mounted ASGI apps, static files and recipes."""

from __future__ import annotations

import pytest
from starlette.applications import Starlette
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.staticfiles import StaticFiles

from bocadillo import App, ConfigurationError, Recipe, create_client


def _starlette_app() -> Starlette:
    async def hello(request: StarletteRequest) -> PlainTextResponse:
        return PlainTextResponse(f"starlette {request.url.path} root={request.scope['root_path']}")

    return Starlette(routes=[Route("/hello", hello)])


# Mounts ----------------------------------------------------------------------------------


def test_mount_serves_a_starlette_app_under_the_prefix():
    app = App()
    app.mount("/legacy", _starlette_app())

    @app.route("/hello")
    async def hello(req, res):
        res.text = "bocadillo"

    with create_client(app) as client:
        mounted = client.get("/legacy/hello")
        own = client.get("/hello")
        missing = client.get("/legacy/nothing")

    assert mounted.status_code == 200
    assert mounted.text == "starlette /legacy/hello root=/legacy"
    assert own.text == "bocadillo"
    assert missing.status_code == 404


def test_mount_serves_static_files(tmp_path):
    (tmp_path / "hello.txt").write_text("static hello")
    (tmp_path / "css").mkdir()
    (tmp_path / "css" / "site.css").write_text("body { color: red }")
    app = App()
    app.mount("/static", StaticFiles(directory=tmp_path), name="static")

    with create_client(app) as client:
        text = client.get("/static/hello.txt")
        css = client.get("/static/css/site.css")
        missing = client.get("/static/missing.txt")

    assert text.status_code == 200
    assert text.text == "static hello"
    assert text.headers["content-type"].startswith("text/plain")
    assert css.text == "body { color: red }"
    assert css.headers["content-type"].startswith("text/css")
    assert missing.status_code == 404
    assert missing.json() == {"error": "Not Found", "status": 404, "detail": "Not Found"}
    assert app.url_for("static", path="/hello.txt") == "/static/hello.txt"


def test_mount_prefix_without_leading_slash_gets_one():
    app = App()
    app.mount("static", _starlette_app())

    with create_client(app) as client:
        assert client.get("/static/hello").status_code == 200


def test_mount_is_not_shadowed_by_a_catch_all_route():
    app = App()
    app.mount("/legacy", _starlette_app())

    @app.route("*")
    async def fallback(req, res):
        res.text = "fallback"

    with create_client(app) as client:
        assert client.get("/legacy/hello").text == "starlette /legacy/hello root=/legacy"
        assert client.get("/other").text == "fallback"


# Recipes ---------------------------------------------------------------------------------


def test_recipe_routes_live_under_its_name():
    numbers = Recipe("numbers")

    @numbers.route("/{x}")
    async def double(req, res, x: int):
        res.json = {"result": 2 * x}

    @numbers.route("/")
    async def index(req, res):
        res.text = "numbers index"

    app = App()
    app.recipe(numbers)

    with create_client(app) as client:
        assert client.get("/numbers/21").json() == {"result": 42}
        assert client.get("/numbers").text == "numbers index"
        assert client.get("/21").status_code == 404


def test_recipe_custom_prefix():
    api = Recipe("api", prefix="/v1/")

    @api.get("/status")
    async def status(req, res):
        res.json = {"ok": True}

    app = App()
    app.include(api)

    with create_client(app) as client:
        assert client.get("/v1/status").json() == {"ok": True}
        assert client.get("/api/status").status_code == 404


def test_recipe_prefix_given_at_inclusion_overrides_its_own():
    api = Recipe("api")

    @api.get("/status")
    async def status(req, res):
        res.text = "up"

    app = App()
    app.recipe(api, prefix="/v2")

    with create_client(app) as client:
        assert client.get("/v2/status").text == "up"
        assert client.get("/api/status").status_code == 404


def test_recipe_prefix_without_leading_slash_is_refused():
    with pytest.raises(ConfigurationError, match="must start with '/'"):
        Recipe("api", prefix="v1")


def test_recipe_nested_in_a_recipe_combines_prefixes_and_names():
    users = Recipe("users")

    @users.route("/{pk}")
    async def detail(req, res, pk: int):
        res.json = {"user": pk}

    api = Recipe("api")
    api.recipe(users)
    app = App()
    app.recipe(api)

    with create_client(app) as client:
        assert client.get("/api/users/7").json() == {"user": 7}

    assert app.url_for("api:users:detail", pk=7) == "/api/users/7"


def test_recipe_route_names_are_qualified_by_the_recipe_name():
    blog = Recipe("blog")

    @blog.route("/posts/{slug}")
    async def post(req, res, slug: str):
        res.text = slug

    @blog.route("/", name="home")
    async def index(req, res):
        res.text = "blog"

    app = App()

    @app.route("/")
    async def index_page(req, res):
        res.text = "home"

    app.recipe(blog)

    assert app.url_for("blog:post", slug="hello") == "/blog/posts/hello"
    assert app.url_for("blog:home") == "/blog"
    assert app.url_for("index_page") == "/"


def test_recipe_websocket_route_is_served_under_its_prefix():
    chat = Recipe("chat")

    @chat.websocket_route("/{room}")
    async def room(ws, room: str):
        message = await ws.receive_text()
        await ws.send_text(f"{room}: {message}")

    app = App()
    app.recipe(chat)

    with create_client(app) as client, client.websocket_connect("/chat/lobby") as ws:
        ws.send_text("hi")
        assert ws.receive_text() == "lobby: hi"

    assert app.url_for("chat:room", room="lobby") == "/chat/lobby"


def test_recipe_including_itself_is_refused():
    loop = Recipe("loop")

    with pytest.raises(ConfigurationError, match="itself"):
        loop.recipe(loop)


def test_recipe_cycle_is_refused_when_the_app_compiles_its_routes():
    first = Recipe("first")
    second = Recipe("second")

    @second.route("/")
    async def index(req, res):
        pass

    first.recipe(second)
    second.recipe(first)
    app = App()
    app.recipe(first)

    with pytest.raises(ConfigurationError, match="cycle"):
        app.url_for("first:second:index")


def test_recipe_is_not_shadowed_by_a_catch_all_route():
    shop = Recipe("shop")

    @shop.route("/")
    async def index(req, res):
        res.text = "shop"

    app = App()

    @app.route("*")
    async def fallback(req, res):
        res.text = "fallback"

    app.recipe(shop)

    with create_client(app) as client:
        assert client.get("/shop").text == "shop"
        assert client.get("/other").text == "fallback"
