"""``@before`` and ``@after`` hooks on function views, class-based views and methods."""

from __future__ import annotations

from typing import Any

from bocadillo import App, HTTPError, after, before, create_client, provider


def test_hooks_run_around_a_function_view():
    app = App()
    events: list[str] = []

    def before_hook(req, res, params):
        events.append(f"before {req.method} {params}")

    def after_hook(req, res, params):
        events.append(f"after {res.text}")

    @app.route("/items/{pk}")
    @before(before_hook)
    @after(after_hook)
    async def item(req, res, pk: int):
        events.append("view")
        res.text = f"item {pk}"

    with create_client(app) as client:
        response = client.get("/items/7")

    assert response.text == "item 7"
    assert events == ["before GET {'pk': 7}", "view", "after item 7"]


def test_hooks_receive_their_args_and_kwargs():
    app = App()
    seen: list[Any] = []

    def tag(req, res, params, label, *, level):
        seen.append((label, level))
        res.headers[f"x-{label}"] = str(level)

    @app.route("/")
    @before(tag, "first", level=1)
    @after(tag, "second", level=2)
    async def index(req, res):
        res.text = "ok"

    with create_client(app) as client:
        response = client.get("/")

    assert seen == [("first", 1), ("second", 2)]
    assert response.headers["x-first"] == "1"
    assert response.headers["x-second"] == "2"


def test_before_hook_raising_http_error_stops_the_view():
    app = App()
    called: list[str] = []

    async def require_token(req, res, params):
        if req.headers.get("x-token") != "secret":
            raise HTTPError(401, detail="token required")

    @app.route("/private")
    @before(require_token)
    async def private(req, res):
        called.append("view")
        res.text = "private data"

    with create_client(app) as client:
        refused = client.get("/private")
        assert called == []
        allowed = client.get("/private", headers={"x-token": "secret"})

    assert refused.status_code == 401
    assert refused.json()["detail"] == "token required"
    assert "private data" not in refused.text
    assert allowed.status_code == 200
    assert allowed.text == "private data"
    assert called == ["view"]


def test_after_hook_can_modify_the_response():
    app = App()

    async def shout(req, res, params):
        res.text = res.text.upper()
        res.status_code = 202
        res.headers["x-shouted"] = "yes"

    @app.route("/")
    @after(shout)
    async def index(req, res):
        res.text = "quiet"

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 202
    assert response.text == "QUIET"
    assert response.headers["x-shouted"] == "yes"


def test_after_hook_does_not_run_when_the_view_raises():
    app = App()
    events: list[str] = []

    def record(req, res, params):
        events.append("after")

    @app.route("/")
    @after(record)
    async def index(req, res):
        raise HTTPError(418)

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 418
    assert events == []


def test_sync_and_async_hooks_both_run_in_stacking_order():
    app = App()
    events: list[str] = []

    def sync_hook(req, res, params, name):
        events.append(f"sync {name}")

    async def async_hook(req, res, params, name):
        events.append(f"async {name}")

    @app.route("/")
    @before(async_hook, "outer")
    @before(sync_hook, "inner")
    @after(sync_hook, "after-inner")
    @after(async_hook, "after-outer")
    async def index(req, res):
        events.append("view")

    with create_client(app) as client:
        assert client.get("/").status_code == 200

    assert events == [
        "async outer",
        "sync inner",
        "view",
        "async after-outer",
        "sync after-inner",
    ]


def test_hooks_on_a_class_based_view_wrap_every_handler():
    app = App()
    events: list[str] = []

    def log_before(req, res, params):
        events.append(f"before {req.method}")

    async def log_after(req, res, params):
        events.append(f"after {req.method}")
        res.headers["x-hooked"] = "1"

    @app.route("/things/{pk}")
    @before(log_before)
    @after(log_after)
    class Things:
        async def get(self, req, res, pk: int):
            events.append(f"get {pk}")
            res.json = {"pk": pk}

        async def post(self, req, res, pk: int):
            events.append(f"post {pk}")
            res.status_code = 201

    with create_client(app) as client:
        got = client.get("/things/1")
        posted = client.post("/things/2")

    assert got.json() == {"pk": 1}
    assert got.headers["x-hooked"] == "1"
    assert posted.status_code == 201
    assert posted.headers["x-hooked"] == "1"
    assert events == [
        "before GET",
        "get 1",
        "after GET",
        "before POST",
        "post 2",
        "after POST",
    ]


def test_hooks_on_a_class_based_view_wrap_the_handle_catch_all():
    app = App()

    def stamp(req, res, params):
        res.headers["x-method"] = req.method

    @app.route("/any")
    @after(stamp)
    class Anything:
        async def handle(self, req, res):
            res.text = "handled"

    with create_client(app) as client:
        response = client.delete("/any")

    assert response.text == "handled"
    assert response.headers["x-method"] == "DELETE"


def test_hook_on_a_single_method_leaves_the_others_alone():
    app = App()

    async def deny(req, res, params):
        raise HTTPError(403)

    @app.route("/doc")
    class Document:
        async def get(self, req, res):
            res.text = "read"

        @before(deny)
        async def delete(self, req, res):
            res.text = "deleted"

    with create_client(app) as client:
        read = client.get("/doc")
        deleted = client.delete("/doc")

    assert read.status_code == 200
    assert read.text == "read"
    assert deleted.status_code == 403
    assert "deleted" not in deleted.text


def test_hook_parameter_named_after_a_provider_is_injected():
    app = App()
    made: list[object] = []

    @provider(name="hooks_current_user")
    async def _current_user():
        user = {"name": "alice"}
        made.append(user)
        return user

    seen: dict[str, Any] = {}

    def greet(req, res, params, hooks_current_user):
        seen["hook"] = hooks_current_user

    @app.route("/")
    @before(greet)
    async def index(req, res, hooks_current_user):
        seen["view"] = hooks_current_user
        res.text = f"hello {hooks_current_user['name']}"

    with create_client(app) as client:
        response = client.get("/")

    assert response.text == "hello alice"
    assert seen["hook"] is seen["view"]
    assert len(made) == 1


def test_hook_with_args_and_a_provider_parameter_gets_both():
    app = App()

    @app.provider(name="hooks_quota")
    def _quota():
        return 3

    def check_quota(req, res, params, limit, hooks_quota):
        res.headers["x-quota"] = f"{hooks_quota}/{limit}"

    @app.route("/")
    @before(check_quota, 10)
    async def index(req, res):
        res.text = "ok"

    with create_client(app) as client:
        response = client.get("/")

    assert response.headers["x-quota"] == "3/10"


def test_hooks_on_a_class_based_view_wrap_inherited_handlers():
    app = App()

    class Base:
        async def get(self, req, res):
            res.text = "secret"

    async def deny(req, res, params):
        raise HTTPError(403)

    @app.route("/")
    @before(deny)
    class Protected(Base):
        pass

    @app.route("/open")
    class Open(Base):
        pass

    with create_client(app) as client:
        protected = client.get("/")
        still_open = client.get("/open")

    assert protected.status_code == 403
    assert "secret" not in protected.text
    # Hooking the subclass leaves the base class alone.
    assert still_open.text == "secret"
