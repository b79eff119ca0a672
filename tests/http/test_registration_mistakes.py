"""A user's mistake is caught where it is made, with a message that names the fix."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bocadillo import (
    App,
    ConfigurationError,
    InvalidState,
    LiveServer,
    Recipe,
    configure,
    create_client,
    provider,
)


def test_a_route_parameter_the_view_does_not_take_fails_at_registration():
    app = App()
    with pytest.raises(ConfigurationError, match=r"route parameter\(s\) pk.*signature"):

        @app.route("/items/{pk}")
        async def item(req, res, id: int):
            pass

    with pytest.raises(ConfigurationError, match=r"route parameter\(s\) room"):

        @app.websocket_route("/rooms/{room}")
        async def room(ws):
            pass

    @app.route("/any/{pk}")  # **kwargs takes whatever the pattern has
    async def anything(req, res, **params):
        res.json = params

    with create_client(app) as client:
        assert client.get("/any/7").json() == {"pk": "7"}


def test_the_same_method_and_path_twice_fails_at_registration():
    app = App()

    @app.route("/items", methods=["GET", "POST"])
    async def items(req, res):
        res.text = "first"

    with pytest.raises(ConfigurationError, match=r"/items: POST is already served by view"):

        @app.post("/items")
        async def create(req, res):
            pass

    @app.put("/items")  # another method of the same path is fine
    async def replace(req, res):
        res.text = "put"

    class Everything:
        async def handle(self, req, res):
            pass

    with pytest.raises(ConfigurationError, match="every method"):
        app.add_route("/items", Everything())

    with create_client(app) as client:
        assert client.post("/items").text == "first"
        assert client.put("/items").text == "put"


def test_an_explicit_head_view_beats_the_implicit_head_of_get():
    app = App()

    @app.get("/page")
    async def page(req, res):
        res.headers["x-view"] = "get"

    @app.head("/page")
    async def page_head(req, res):
        res.headers["x-view"] = "head"

    with create_client(app) as client:
        assert client.head("/page").headers["x-view"] == "head"
        assert client.get("/page").headers["x-view"] == "get"


def test_a_websocket_route_on_the_message_type_endpoint_is_refused():
    app = App()

    @app.socket("ping", endpoint="/game")
    def ping():
        return "pong"

    with pytest.raises(ConfigurationError, match="message-type endpoint"):

        @app.websocket_route("/game")
        async def game(ws):
            pass

    @app.websocket_route("/chat")
    async def chat(ws):
        pass

    with pytest.raises(ConfigurationError, match="already served by WebSocket view 'chat'"):

        @app.socket("hello", endpoint="/chat")
        def hello():
            return "hi"

    with pytest.raises(ConfigurationError, match="already served by WebSocket view 'chat'"):

        @app.websocket_route("/chat")
        async def chat_again(ws):
            pass


def test_a_websocket_route_on_the_default_socket_path_fails_the_startup():
    app = App()

    @app.socket("ping")
    def ping():
        return "pong"

    @app.websocket_route("/ws")
    async def shadow(ws):
        pass

    with pytest.raises(ConfigurationError, match="socket_path"):
        with create_client(app):
            pass


def _register(app: App, kind: str, handler: Any) -> None:
    if kind == "socket":
        app.socket("hello")(handler)
    elif kind == "socket_connect":
        app.socket_connect()(handler)
    else:
        app.socket_disconnect()(handler)


HANDLER_KINDS = ["socket", "socket_connect", "socket_disconnect"]


@pytest.mark.parametrize("kind", HANDLER_KINDS)
@pytest.mark.parametrize(
    ("handler", "typo", "builtin"),
    [
        (lambda clientid: None, "clientid", "client_id"),
        (lambda ws, dat: None, "dat", "data"),
        (lambda Data: None, "Data", "data"),
        (lambda messages: None, "messages", "message"),
    ],
)
def test_a_handler_parameter_close_to_a_builtin_fails_at_decoration(kind, handler, typo, builtin):
    app = App()
    with pytest.raises(ConfigurationError) as refused:
        _register(app, kind, handler)
    message = str(refused.value)
    assert f"no built-in parameter is named {typo!r}: did you mean {builtin!r}?" in message
    assert "declare it before this handler (@provider or @app.provider above it" in message


@pytest.mark.parametrize("kind", HANDLER_KINDS)
def test_a_provider_declared_before_the_handler_may_have_a_close_name(kind):
    app = App()
    seen: list[Any] = []

    @provider
    def messages():
        return ["declared with @provider"]

    @app.provider(name="dat")
    def dat_provider():
        return "declared with @app.provider"

    def handler(messages, dat, clientid=None):  # a parameter with a default is taken as meant
        seen.append((messages, dat, clientid))
        return "ran"

    _register(app, kind, handler)
    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            if kind == "socket":
                ws.send_json({"type": "hello", "id": 1})
                assert ws.receive_json() == {"type": "response", "data": "ran", "id": 1}
            elif kind == "socket_connect":
                assert ws.receive_json() == {"type": "welcome", "data": "ran"}
    assert seen == [(["declared with @provider"], "declared with @app.provider", None)]


def test_a_recipe_handler_is_checked_at_decoration_too():
    recipe = Recipe("chat")
    with pytest.raises(ConfigurationError, match="did you mean 'client_id'"):

        @recipe.socket("hello")
        def hello(clientid):
            pass


def test_a_job_parameter_nothing_fills_fails_at_decoration():
    app = App()
    with pytest.raises(ConfigurationError, match="cannot fill parameter 'hbu'; did you mean 'hub'"):

        @app.every(1)
        def status(hbu):
            pass

    @app.every(1)
    def counted(hub, app, runs=0):  # app, hub and defaulted parameters are fine
        pass


def test_a_startup_that_cannot_build_the_app_stops_uvicorn(caplog):
    # Before: uvicorn said "lifespan unsupported", then answered 500 to every request.
    # A name close to no built-in one may still be a provider declared before startup
    # (configure() imports provider_modules after the views are decorated), so only the
    # startup can tell that nothing provides it.
    app = App()

    @app.socket("broken")
    def broken(user):  # no provider named user is ever declared
        return user

    server = LiveServer(app, lifespan="auto")
    with caplog.at_level(logging.ERROR), pytest.raises(InvalidState, match="did not start"):
        server.start()
    assert "cannot fill parameter 'user'" in caplog.text


def test_a_provider_declared_after_the_handler_fills_a_far_name():
    app = App()

    @app.socket("whoami")
    def whoami(user):
        return user

    @provider
    def user():
        return "ada"

    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "whoami", "id": 1})
        assert ws.receive_json() == {"type": "response", "data": "ada", "id": 1}


def test_iterating_a_websocket_without_async_names_the_fix():
    app = App()
    errors: list[str] = []

    @app.websocket_route("/ws-iter")
    async def view(ws):
        try:
            for _ in ws:
                pass
        except TypeError as exc:
            errors.append(str(exc))
        await ws.send("done")

    with create_client(app) as client, client.websocket_connect("/ws-iter") as ws:
        assert ws.receive_text() == "done"
    assert errors == ["iterate over a WebSocket with `async for message in ws`, not `for`"]


def test_handler_error_carries_the_exception_only_in_debug():
    for debug, expected in ((True, "ZeroDivisionError: division by zero"), (False, None)):
        app = App(debug=debug)

        @app.socket("divide")
        def divide(data):
            return 1 / data

        with create_client(app) as client, client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "divide", "data": 0, "id": 1})
            error = ws.receive_json()
        assert error["data"]["code"] == "handler_error"
        assert error["data"]["message"] == (expected or "the handler failed")


@pytest.mark.anyio
async def test_a_websocket_to_an_unknown_path_is_refused_and_logged(live_server, caplog):
    app = App()
    server = live_server(app)
    with caplog.at_level(logging.WARNING, logger="bocadillo.app"):
        with pytest.raises(InvalidStatus) as refused:
            async with connect(server.ws_url + "/nowhere"):
                pass
    assert refused.value.response.status_code == 403
    assert "no WebSocket route matches /nowhere" in caplog.text


@pytest.mark.parametrize(
    ("name", "suggestion"),
    [("rate_limt", "rate_limit"), ("max_conections", "max_connections"), ("sesions", "sessions")],
)
def test_a_setting_name_close_to_a_known_one_is_a_typo(name, suggestion):
    typo: dict[str, Any] = {name: 1}
    with pytest.raises(ConfigurationError, match=f"did you mean '{suggestion}'"):
        App(**typo)
    with pytest.raises(ConfigurationError, match=f"did you mean '{suggestion}'"):
        configure(App(), **typo)


def test_custom_settings_stay_allowed():
    app = App(api_key="k", my_feature=True)
    assert app.settings["api_key"] == "k" and app.settings["my_feature"] is True
