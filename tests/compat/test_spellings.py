"""Bocadillo 0.18 spellings: each is a thin layer over today's API and the app's own state."""

from __future__ import annotations

import importlib
import os
import types
from collections.abc import Callable
from pathlib import Path

import pytest
from starlette.responses import PlainTextResponse

from bocadillo import (
    App,
    ArgumentTypeError,
    ConfigurationError,
    ExpectedAsync,
    HTTPError,
    InvalidArgument,
    Middleware,
    Router,
    SettingsError,
    Templates,
    before,
    configure,
    create_client,
    discover_providers,
    hooks,
    server_event,
    settings,
)
from bocadillo.constants import ALL_HTTP_METHODS, WEBSOCKET_CLOSE_CODES
from bocadillo.error_handlers import error_to_html, error_to_json, error_to_text
from bocadillo.utils import override_env

# Settings ---------------------------------------------------------------------------------


def test_settings_object_given_by_keyword_and_upper_case_names():
    class Options:
        ONE = "one"
        _PRIVATE = "left out"
        lower = "left out"

    app = configure(App(), settings=Options(), two="two", GZIP=True)

    assert settings.ONE == "one" and settings.TWO == "two" and settings.GZIP is True
    assert settings.two == "two"  # today's lower-case reads work too
    assert app.settings.gzip is True
    assert "ONE" in settings and "TWO" in settings
    for name in ("one", "two", "_PRIVATE", "_private", "lower", "LOWER"):
        assert name not in settings
    assert settings.get("MISSING", 42) == 42
    assert sorted(name for name in settings if name in ("ONE", "TWO")) == ["ONE", "TWO"]


def test_plugins_read_the_settings_of_the_app_being_configured():
    seen: list[object] = []

    def use_message(app):
        seen.append(settings.get("STARTUP_MESSAGE"))

    configure(App(), plugins=[use_message], startup_message="ready")

    assert seen == ["ready"]


@pytest.mark.parametrize("enabled", [True, False])
def test_plugins_given_as_conditions(enabled):
    ran: list[str] = []

    def use_auth(app):
        ran.append("auth")

    def use_logs(app):
        ran.append("logs")

    configure(App(), plugins=[{use_auth: enabled, use_logs: True}])

    assert ran == (["auth", "logs"] if enabled else ["logs"])


def test_configuring_twice_is_a_settings_error_and_a_runtime_error():
    app = configure(App())

    with pytest.raises(SettingsError) as caught:
        configure(app)

    assert isinstance(caught.value, RuntimeError)
    assert isinstance(caught.value, ConfigurationError)


@pytest.mark.parametrize("sessions", [True, {"secret_key": ""}])
def test_sessions_without_a_secret_key_is_a_settings_error(sessions):
    with override_env("SECRET_KEY", ""):
        with pytest.raises(SettingsError, match="secret key"):
            configure(App(), sessions=sessions)


def test_sessions_secret_key_inside_the_sessions_dict():
    app = configure(App(), sessions={"secret_key": "not-so-secret"})

    @app.route("/set", methods=["post"])
    async def set_session(req, res):
        req.session["data"] = "something"

    @app.route("/")
    async def index(req, res):
        res.text = req.session.get("data", "")

    with create_client(app) as client:
        client.post("/set")
        response = client.get("/")

    assert response.text == "something"


def test_session_cookie_is_sent_again_while_the_session_is_not_empty():
    app = configure(App(), sessions=True, secret_key="not-so-secret")

    @app.route("/login", methods=["post"])
    async def login(req, res):
        req.session["user"] = "ada"

    @app.route("/whoami")
    async def whoami(req, res):
        res.text = req.session.get("user", "")

    @app.route("/logout", methods=["post"])
    async def logout(req, res):
        req.session.clear()

    with create_client(app) as client:
        anonymous = client.get("/whoami")
        client.post("/login")
        read_only = client.get("/whoami")
        client.post("/logout")
        after_logout = client.get("/whoami")

    assert "session" not in anonymous.cookies
    assert read_only.text == "ada"
    assert "session" in read_only.cookies  # refreshed although the view only read it
    assert "set-cookie" not in after_logout.headers


@pytest.mark.parametrize("modules", [["compat_providers"], "compat_providers"])
def test_provider_modules_are_imported_at_configure(project: Callable[..., Path], modules):
    project(
        {
            "compat_providers.py": """
                from bocadillo import provider

                @provider
                async def compat_answer():
                    return 42
            """
        }
    )
    app = configure(App(), PROVIDER_MODULES=modules)

    @app.route("/")
    async def index(req, res, compat_answer):
        res.json = compat_answer

    with create_client(app) as client:
        assert client.get("/").json() == 42


def test_provider_modules_that_cannot_be_imported_fail_configure():
    with pytest.raises(ImportError):
        configure(App(), provider_modules=["no_such_module_here"])


def test_discover_providers_imports_modules(project: Callable[..., Path]):
    project({"compat_more.py": "from bocadillo import provider\n\n@provider\nasync def x(): ..."})

    discover_providers("compat_more")

    assert "compat_more" in importlib.sys.modules  # type: ignore[attr-defined]


# Modules at their 0.18 paths ---------------------------------------------------------------


def test_constants():
    assert set(ALL_HTTP_METHODS) == {"get", "head", "post", "put", "patch", "delete", "options"}
    assert 1000 in WEBSOCKET_CLOSE_CODES and 1011 in WEBSOCKET_CLOSE_CODES
    assert 1004 not in WEBSOCKET_CLOSE_CODES  # reserved by RFC 6455


def test_override_env_restores_a_missing_variable():
    name = "BOCADILLO_COMPAT_TEST_VARIABLE"
    assert name not in os.environ
    with override_env(name, "outer"):
        with override_env(name, "inner"):
            assert os.environ[name] == "inner"
        assert os.environ[name] == "outer"
    assert name not in os.environ


@pytest.mark.parametrize("detail", ["", "Nope!"])
def test_error_handlers(detail):
    app = App()
    app.add_error_handler(HTTPError, error_to_json)

    @app.route("/{kind}")
    async def index(req, res, kind: str):
        raise HTTPError(403, detail=detail)

    html_app, text_app = App(), App()
    html_app.add_error_handler(HTTPError, error_to_html)
    text_app.add_error_handler(HTTPError, error_to_text)
    for other in (html_app, text_app):
        other.route("/{kind}")(index)

    with create_client(app) as client:
        as_json = client.get("/x")
    with create_client(html_app) as client:
        as_html = client.get("/x")
    with create_client(text_app) as client:
        as_text = client.get("/x")

    expected_json = {"error": "403 Forbidden", "status": 403}
    if detail:
        expected_json["detail"] = detail
    assert as_json.status_code == as_html.status_code == as_text.status_code == 403
    assert as_json.json() == expected_json
    assert as_html.text == "<h1>403 Forbidden</h1>" + (f"\n<p>{detail}</p>" if detail else "")
    assert as_text.text == "403 Forbidden" + (f"\n{detail}" if detail else "")


def test_add_error_handler_takes_coroutine_functions_only():
    app = App()

    def sync_handler(req, res, exc):
        pass

    with pytest.raises(ExpectedAsync):
        app.add_error_handler(KeyError, sync_handler)


def test_http_error_status_line_and_status_type():
    assert str(HTTPError(404, detail="foo")) == "404 Not Found"
    with pytest.raises(ArgumentTypeError, match="int or HTTPStatus") as caught:
        HTTPError("404")  # type: ignore[arg-type]
    assert isinstance(caught.value, AssertionError)  # what 0.18 raised


def test_non_callable_hook_is_refused():
    class NotAHook:
        pass

    with pytest.raises(ArgumentTypeError, match="__call__"):
        before(NotAHook())  # type: ignore[arg-type]


# Routing -----------------------------------------------------------------------------------


def test_router_included_under_a_prefix():
    app = App()
    router = Router()
    other = App()

    @router.route("/{pk}")
    async def taco(req, res, pk: int):
        res.json = pk

    @other.route("/foo")
    async def foo(req, res):
        res.text = "foo"

    router.mount("other", other)
    app.include_router(router, prefix="tacos")

    with create_client(app) as client:
        assert client.get("/tacos/3").json() == 3
        assert client.get("/tacos/other/foo").text == "foo"
        assert client.get("/other/foo").status_code == 404
    assert app.url_for("taco", pk=1) == "/tacos/1"


def test_methods_all_allows_every_verb():
    app = App()

    @app.route("/everything", methods=all)  # type: ignore[arg-type]
    async def everything(req, res):
        res.text = req.method

    with create_client(app) as client:
        for method in ALL_HTTP_METHODS:
            assert client.request(method.upper(), "/everything").status_code == 200


def test_typed_route_parameters_convert_as_in_0_18():
    app = App()

    @app.route("/count/{value}")
    async def count(req, res, value: int):
        res.json = {"value": value}

    @app.route("/flag/{value}")
    async def flag(req, res, value: bool):
        res.json = {"value": value}

    with create_client(app) as client:
        assert client.get("/count/4.2").json() == {"value": 4}
        assert client.get("/count/1e3").status_code == 400
        for raw, expected in [("TRUE", True), ("false", False), ("1", True), ("0", False)]:
            assert client.get(f"/flag/{raw}").json() == {"value": expected}
        for raw in ("yes", "no", "12"):
            refused = client.get(f"/flag/{raw}")
            assert refused.status_code == 400
            assert "value" in refused.json()["detail"]


def test_handle_bypasses_the_other_methods_of_a_class_based_view():
    app = App()

    @app.route("/")
    class Index:
        async def handle(self, req, res):
            res.text = f"handle {req.method}"

        async def get(self, req, res):
            res.text = "get"

    with create_client(app) as client:
        assert client.get("/").text == "handle GET"
        assert client.put("/").text == "handle PUT"


# Middleware --------------------------------------------------------------------------------


def test_middleware_callbacks_must_be_coroutine_functions():
    with pytest.raises(ExpectedAsync):

        class Before(Middleware):
            def before_dispatch(self):  # type: ignore[override]  # 0.18: refused when defined
                pass

    with pytest.raises(ExpectedAsync, match="After.after_dispatch must be asynchronous"):

        class After(Middleware):
            def after_dispatch(self, req, res):
                pass


def test_after_dispatch_is_not_called_when_the_method_is_not_allowed():
    app = App()
    called: list[str] = []

    class Flags(Middleware):
        def __init__(self, inner, **options):
            super().__init__(inner)  # 0.18's spelling of the constructor

        async def before_dispatch(self, req, res):
            called.append("before")

        async def after_dispatch(self, req, res):
            called.append("after")

    app.add_middleware(Flags)

    @app.route("/")
    async def index(req, res):
        pass

    with create_client(app) as client:
        assert client.put("/").status_code == 405
        assert called == ["before"]
        assert client.get("/").status_code == 200
    assert called == ["before", "before", "after"]


def test_asgi2_middleware_is_refused_with_how_to_upgrade():
    class Legacy:
        def __init__(self, app):
            self.app = app

        def __call__(self, scope):
            return self.app

    with pytest.raises(ConfigurationError) as caught:
        App().add_middleware(Legacy)  # type: ignore[arg-type]

    message = str(caught.value).lower()
    for phrase in ("asgi2", "please upgrade", "asgi3", "scope, receive, send"):
        assert phrase in message


def test_middleware_is_built_once_when_added():
    built: list[dict[str, str]] = []
    app = App()

    class Count:
        def __init__(self, inner, **options):
            self.inner = inner
            built.append(options)

        async def __call__(self, scope, receive, send):
            await self.inner(scope, receive, send)

    app.add_middleware(Count, hello="world")
    assert built == [{"hello": "world"}]

    @app.route("/")
    async def index(req, res):
        res.text = "ok"

    with create_client(app) as client:
        assert client.get("/").text == "ok"

        @app.route("/later")  # rebuilds the stack: the middleware is linked again, not rebuilt
        async def later(req, res):
            res.text = "later"

        assert client.get("/later").text == "later"
    assert built == [{"hello": "world"}]


def test_http_error_raised_by_an_asgi_middleware_is_answered():
    app = App()

    class Unavailable:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and scope["path"] == "/down":
                raise HTTPError(503)
            await self.inner(scope, receive, send)

    class Answer:
        def __init__(self, inner):
            self.inner = inner

        async def __call__(self, scope, receive, send):
            if scope["type"] == "http" and scope["path"] == "/answer":
                await PlainTextResponse("from middleware")(scope, receive, send)
                return
            await self.inner(scope, receive, send)

    app.add_middleware(Unavailable)
    app.add_middleware(Answer)

    with create_client(app) as client:
        down = client.get("/down")
        answer = client.get("/answer")

    assert down.status_code == 503
    assert "Service Unavailable" in down.text
    assert answer.text == "from middleware"


# Responses ---------------------------------------------------------------------------------


def test_response_spellings():
    app = App()

    @app.route("/content")
    async def content(req, res):
        res.content = "text given as content"
        res.headers["x-gone"] = "soon"
        assert res.headers.pop("x-gone") == "soon"
        assert res.headers.pop("x-never", "default") == "default"

    @app.route("/download")
    async def download(req, res):
        res.text = "hello"
        res.attachment = "report.txt"

    @app.route("/chunked")
    async def chunked(req, res):
        res.text = "in chunks"
        res.chunked = True

    with create_client(app) as client:
        content_response = client.get("/content")
        download_response = client.get("/download")
        chunked_response = client.get("/chunked")

    assert content_response.headers["content-type"].startswith("text/plain")
    assert "x-gone" not in content_response.headers
    assert download_response.text == "hello"
    assert download_response.headers["content-disposition"] == 'attachment; filename="report.txt"'
    assert chunked_response.headers["transfer-encoding"] == "chunked"
    assert chunked_response.text == "in chunks"


def test_stream_refuses_functions_that_are_not_async_generators():
    app = App()
    refused: list[str] = []

    @app.route("/")
    async def index(req, res):
        def plain():
            pass

        async def coroutine():
            pass

        def generator():
            yield "nope"

        for func in (plain, coroutine, generator):
            with pytest.raises(ArgumentTypeError):
                res.stream(func)
            refused.append(func.__name__)
        res.text = "done"

    with create_client(app) as client:
        assert client.get("/").text == "done"
    assert refused == ["plain", "coroutine", "generator"]


def test_templates_directory_and_context_can_be_reassigned(tmp_path: Path):
    first, second = tmp_path / "first", tmp_path / "second"
    for folder, word in ((first, "first"), (second, "second")):
        folder.mkdir()
        (folder / "page.html").write_text(word + ": {{ name }}{{ extra }}")
    templates = Templates(directory=first, context={"extra": "!"})

    assert templates.render_sync("page.html", name="Ada") == "first: Ada!"
    templates.directory = str(second)
    templates.context = {"name": "Grace"}
    templates.context["extra"] = "?"

    assert templates.directory == str(second)
    assert templates.render_sync("page.html") == "second: Grace?"
    assert templates.render_string("{{ extra }}") == "?"


def test_static_config_max_age_and_a_folder_made_after_configure(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    app = configure(App(), static_config={"max_age": 30})

    with create_client(app) as client:
        assert client.get("/static/site.css").status_code == 404
        (tmp_path / "static").mkdir()
        (tmp_path / "static" / "site.css").write_text("body {}")
        response = client.get("/static/site.css")

    assert response.text == "body {}"
    assert response.headers["cache-control"] == "max-age=30"


def test_string_annotation_naming_nothing_is_read_as_str(project: Callable[..., Path]):
    # A module that does not postpone annotations: the string is the author's own.
    project(
        {
            "compat_views.py": """
                async def show(req, res, number: "unknown_annotation"):
                    res.json = {"number": number}
            """
        }
    )
    app = App()
    app.route("/{number}")(importlib.import_module("compat_views").show)

    with create_client(app) as client:
        assert client.get("/12").json() == {"number": "12"}


def test_settings_module_object(project: Callable[..., Path]):
    project({"compat_settings.py": "GZIP = True\nGZIP_MIN_SIZE = 10\n_HIDDEN = 1\n"})
    module = importlib.import_module("compat_settings")

    app = configure(App(), module)

    assert app.settings.gzip is True and app.settings.gzip_min_size == 10
    assert "_hidden" not in app.settings
    assert isinstance(module, types.ModuleType)


def test_hooks_module_keeps_the_async_rule_of_0_18():
    def sync_hook(req, res, params):
        pass

    class SyncCallable:
        def __call__(self, req, res, params):
            pass

    for register in (hooks.before, hooks.after):
        with pytest.raises(ExpectedAsync):
            register(sync_hook)
        with pytest.raises(ExpectedAsync):
            register(SyncCallable())
    # Today's spelling takes plain functions.
    assert callable(before(sync_hook))

    app = App()
    seen: list[str] = []

    class Tag:
        def __init__(self, value: str) -> None:
            self.value = value

        async def __call__(self, req, res, params):
            seen.append(self.value)

    @app.route("/")
    @hooks.before(Tag("before"))
    @hooks.after(Tag("after"))
    async def index(req, res):
        seen.append("view")

    with create_client(app) as client:
        client.get("/")
    assert seen == ["before", "view", "after"]


def test_server_event_0_18_spellings():
    assert server_event("greeting", data="Hello, SSE!") == "event: greeting\ndata: Hello, SSE!\n\n"
    assert server_event("foo", id=1, json={"message": "hello"}) == (
        'id: 1\nevent: foo\ndata: {"message":"hello"}\n\n'
    )
    assert server_event(data=["Hello, SSE!", "Nice to meet you."]) == (
        "data: Hello, SSE!\ndata: Nice to meet you.\n\n"
    )
    assert server_event(json={"temperature": 10.5}) == 'data: {"temperature":10.5}\n\n'
    assert server_event(name="foo") == "event: foo\n\n"
    # Today's spelling: the first argument is the payload.
    assert server_event("hello") == "data: hello\n\n"
    assert server_event(["a", 1], event="list") == 'event: list\ndata: ["a",1]\n\n'
    with pytest.raises(InvalidArgument):
        server_event(data="a", json="b")
