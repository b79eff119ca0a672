"""WebSocket routes: typed route and query parameters, unmatched paths, registration."""

from __future__ import annotations

from typing import Any

import pytest
from starlette.routing import WebSocketRoute as StarletteWebSocketRoute
from starlette.websockets import WebSocketDisconnect

from bocadillo import App, ConfigurationError, ExpectedAsync, WebSocketRoute, create_client


def test_websocket_route_converts_route_and_query_parameters():
    app = App()

    @app.websocket_route("/chat/{channel}", value_type="json")
    async def chat(ws, channel: str, anonymous: bool = False):
        async for message in ws:
            await ws.send({"channel": channel, "anonymous": anonymous, "message": message})

    with create_client(app) as client:
        with client.websocket_connect("/chat/general?anonymous=true") as ws:
            ws.send_json({"text": "hi"})
            assert ws.receive_json() == {
                "channel": "general",
                "anonymous": True,
                "message": {"text": "hi"},
            }
        with client.websocket_connect("/chat/random") as ws:
            ws.send_json("hello")
            assert ws.receive_json() == {
                "channel": "random",
                "anonymous": False,
                "message": "hello",
            }


def test_websocket_route_typed_route_parameter():
    app = App()

    @app.websocket_route("/rooms/{pk}")
    async def room(ws, pk: int):
        await ws.send_json({"pk": pk, "type": type(pk).__name__})

    with create_client(app) as client:
        with client.websocket_connect("/rooms/42") as ws:
            assert ws.receive_json() == {"pk": 42, "type": "int"}


@pytest.mark.parametrize(
    "path", ["/chat/general?anonymous=maybe", "/rooms/abc", "/numbers?count=lots"]
)
def test_websocket_route_conversion_failure_rejects_with_403(path):
    app = App()
    called: list[str] = []

    @app.websocket_route("/chat/{channel}")
    async def chat(ws, channel: str, anonymous: bool = False):
        called.append("chat")

    @app.websocket_route("/rooms/{pk}")
    async def room(ws, pk: int):
        called.append("room")

    @app.websocket_route("/numbers")
    async def numbers(ws, count: int):
        called.append("numbers")

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect(path):
                pass
    assert excinfo.value.code == 403
    assert called == []


def test_websocket_route_missing_required_query_parameter_rejects_with_403():
    app = App()

    @app.websocket_route("/numbers")
    async def numbers(ws, count: int):
        await ws.send(str(count))

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/numbers"):
                pass
        assert excinfo.value.code == 403
        with client.websocket_connect("/numbers?count=3") as ws:
            assert ws.receive_text() == "3"


def test_websocket_unknown_path_rejects_with_403():
    app = App()

    @app.websocket_route("/echo")
    async def echo(ws):
        await ws.send("never")

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/nowhere"):
                pass
    assert excinfo.value.code == 403


def test_websocket_on_http_only_path_rejects_and_never_calls_http_view():
    app = App()
    http_calls: list[str] = []

    @app.route("/same")
    async def same(req, res):
        http_calls.append(req.method)
        res.text = "http"

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/same"):
                pass
        assert excinfo.value.code == 403
        assert http_calls == []
        # The flag does flip for a real HTTP request, so the assertion above means something.
        assert client.get("/same").text == "http"
    assert http_calls == ["GET"]


def test_websocket_route_refuses_sync_view_at_registration():
    app = App()

    with pytest.raises(ExpectedAsync) as excinfo:

        @app.websocket_route("/sync")
        def sync_view(ws):
            pass

    assert isinstance(excinfo.value, TypeError)
    assert isinstance(excinfo.value, ConfigurationError)
    assert "async def" in str(excinfo.value)


def test_websocket_route_refuses_unknown_codec_at_registration():
    app = App()

    with pytest.raises(ConfigurationError):

        @app.websocket_route("/bad", receive_type="xml")  # type: ignore[arg-type]
        async def bad(ws):
            pass


@pytest.mark.parametrize("codes", [1006, "1000", [1000, "nope"]])
def test_websocket_route_refuses_bad_caught_close_codes_at_registration(codes):
    app = App()

    # A mistake in registration fails at import time, never on each connection.
    with pytest.raises(ConfigurationError):

        @app.websocket_route("/bad", caught_close_codes=codes)
        async def bad(ws):
            pass


def test_websocket_route_decorator_returns_the_route_object():
    app = App()

    @app.websocket_route("/echo", value_type="bytes")
    async def echo(ws):
        pass

    assert isinstance(echo, WebSocketRoute)
    assert echo.receive_type == "bytes"
    assert echo.send_type == "bytes"
    assert echo.pattern == "/echo"


# The router's WebSocket path (Starlette's router and routes) ----------------------------


def test_websocket_in_a_mounted_starlette_app_is_served_under_the_prefix():
    from starlette.applications import Starlette
    from starlette.routing import WebSocketRoute as StarletteWebSocketRoute

    async def legacy(ws):
        await ws.accept()
        await ws.send_text(f"{ws.url.path} root={ws.scope['root_path']}")
        await ws.close()

    app = App()
    app.mount("/legacy", Starlette(routes=[StarletteWebSocketRoute("/live", legacy)]))

    @app.websocket_route("/live")
    async def live(ws):
        await ws.send("bocadillo")

    with create_client(app) as client:
        with client.websocket_connect("/legacy/live") as ws:
            assert ws.receive_text() == "/legacy/live root=/legacy"
        with client.websocket_connect("/live") as ws:
            assert ws.receive_text() == "bocadillo"


def test_websocket_scope_carries_the_router_endpoint_and_path_params():
    app = App()
    seen: dict[str, Any] = {}

    @app.websocket_route("/rooms/{name}")
    async def room(ws, name: str):
        seen.update(
            router=ws.scope["router"],
            endpoint=ws.scope["endpoint"],
            path_params=dict(ws.scope["path_params"]),
        )
        await ws.send(name)

    with create_client(app) as client:
        with client.websocket_connect("/rooms/lobby") as ws:
            assert ws.receive_text() == "lobby"
    assert seen["router"] is app.router
    assert seen["endpoint"].route is room
    assert seen["path_params"] == {"name": "lobby"}


def test_websocket_scope_carries_its_starlette_route_as_starlette_does():
    app = App()
    seen: dict[str, Any] = {}

    @app.websocket_route("/lobby")
    async def lobby(ws):
        await ws.send("lobby")

    @app.websocket_route("/rooms/{name}")
    async def room(ws, name: str):
        seen.update(route=ws.scope["route"], endpoint=ws.scope["endpoint"])
        await ws.send(name)

    with create_client(app) as client:
        with client.websocket_connect("/rooms/kitchen") as ws:
            assert ws.receive_text() == "kitchen"
    route = seen["route"]
    # What Starlette's router puts there: the matched route object of the router.
    assert isinstance(route, StarletteWebSocketRoute)
    assert any(candidate is route for candidate in app.router.routes)
    assert route.path == "/rooms/{name}"
    assert route.endpoint is seen["endpoint"]
    assert route.endpoint.route is room


def test_websocket_goes_through_user_middleware_before_its_route():
    calls = []

    class Tag:
        def __init__(self, app):
            self.app = app

        async def __call__(self, scope, receive, send):
            calls.append(scope["type"])
            await self.app(scope, receive, send)

    app = App()
    app.add_middleware(Tag)

    @app.websocket_route("/ping")
    async def ping(ws):
        await ws.send("pong")

    with create_client(app) as client:
        with client.websocket_connect("/ping") as ws:
            assert ws.receive_text() == "pong"
    assert "websocket" in calls
