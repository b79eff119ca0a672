"""A user's mistake is caught where it is made, with a message that names the fix."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from bocadillo import App, ConfigurationError, InvalidState, LiveServer, configure, create_client


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


def test_a_startup_that_cannot_build_the_app_stops_uvicorn(caplog):
    # Before: uvicorn said "lifespan unsupported", then answered 500 to every request.
    app = App()

    @app.socket("broken")
    def broken(clientid):  # a typo of client_id: nothing provides it
        return clientid

    server = LiveServer(app, lifespan="auto")
    with caplog.at_level(logging.ERROR), pytest.raises(InvalidState, match="did not start"):
        server.start()
    assert "cannot fill parameter 'clientid'" in caplog.text


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
