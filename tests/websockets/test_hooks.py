"""``@route.on_connect`` and ``@route.on_disconnect`` hooks."""

from __future__ import annotations

import threading

import pytest
from starlette.websockets import WebSocketDisconnect

from bocadillo import App, create_client

from .recorder import SentEvents


def test_on_connect_runs_after_accept_and_before_view():
    app = App()
    order: list[str] = []

    @app.websocket_route("/chat")
    async def chat(ws):
        order.append("view")
        await ws.send("from view")

    @chat.on_connect
    async def greet(ws):
        order.append(f"on_connect accepted={ws.accepted}")
        await ws.send("from hook")

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            assert ws.receive_text() == "from hook"
            assert ws.receive_text() == "from view"
    assert order == ["on_connect accepted=True", "view"]


def test_on_connect_returned_value_goes_through_json_send_codec():
    app = App()

    @app.websocket_route("/chat", value_type="json")
    async def chat(ws):
        await ws.send({"from": "view"})

    @chat.on_connect
    async def welcome(ws):
        return {"type": "welcome", "id": ws.id}

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            welcome_message = ws.receive()
            assert ws.receive_json() == {"from": "view"}
    assert welcome_message["type"] == "websocket.send"
    assert welcome_message["text"].startswith('{"type":"welcome","id":"')


def test_on_connect_returned_value_goes_through_text_send_codec():
    app = App()

    @app.websocket_route("/chat")
    async def chat(ws):
        pass

    @chat.on_connect
    def welcome(ws):
        return "welcome"

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            assert ws.receive() == {"type": "websocket.send", "text": "welcome"}


def test_on_connect_close_refuses_client_and_skips_view():
    app = App()
    called: list[str] = []
    disconnected: list[int] = []

    @app.websocket_route("/private")
    async def private(ws):
        called.append("view")

    @private.on_connect
    async def check(ws):
        if ws.query_params.get("token") != "ok":
            await ws.close(4401)

    @private.on_disconnect
    def bye(ws):
        disconnected.append(ws.close_code)

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/private") as ws:
            assert ws.receive() == {"type": "websocket.close", "code": 4401}
        assert called == []
        with client.websocket_connect("/private?token=ok") as ws:
            assert ws.receive()["code"] == 1000
    assert called == ["view"]
    assert disconnected == [4401, 1000]
    assert recorder.close_codes == [4401, 1000]


def test_hooks_may_be_sync_or_async_and_take_ws_or_nothing():
    app = App()
    calls: list[str] = []
    done = threading.Event()

    @app.websocket_route("/chat")
    async def chat(ws):
        await ws.receive()

    @chat.on_connect
    def sync_connect(ws):
        calls.append("sync connect")

    @chat.on_connect
    async def async_connect():
        calls.append("async connect")

    @chat.on_disconnect
    async def async_disconnect(ws):
        calls.append(f"async disconnect {ws.close_code}")

    @chat.on_disconnect
    def sync_disconnect():
        calls.append("sync disconnect")
        done.set()

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            ws.close(1001)
            assert done.wait(5)
    assert calls == [
        "sync connect",
        "async connect",
        "async disconnect 1001",
        "sync disconnect",
    ]


def test_on_disconnect_runs_once_after_client_close():
    app = App()
    codes: list[int] = []
    done = threading.Event()

    @app.websocket_route("/chat")
    async def chat(ws):
        async for _ in ws:
            pass

    @chat.on_disconnect
    def gone(ws):
        codes.append(ws.close_code)
        done.set()

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            ws.send_text("hello")
            ws.close(1000)
            assert done.wait(5)
    assert codes == [1000]


def test_on_disconnect_runs_once_after_uncaught_client_close():
    app = App()
    codes: list[int] = []
    done = threading.Event()

    @app.websocket_route("/chat", caught_close_codes=())
    async def chat(ws):
        await ws.receive()

    @chat.on_disconnect
    def gone(ws):
        codes.append(ws.close_code)
        done.set()

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/chat") as ws:
                ws.close(4000)
                assert done.wait(5)
    assert codes == [4000]


def test_on_disconnect_runs_once_after_server_close():
    app = App()
    codes: list[tuple[int, bool]] = []

    @app.websocket_route("/chat")
    async def chat(ws):
        await ws.close(4242)

    @chat.on_disconnect
    async def gone(ws):
        codes.append((ws.close_code, ws.closed_by_server))

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            assert ws.receive()["code"] == 4242
    assert codes == [(4242, True)]


def test_on_disconnect_runs_once_after_view_returns():
    app = App()
    codes: list[int] = []

    @app.websocket_route("/chat")
    async def chat(ws):
        await ws.send("bye")

    @chat.on_disconnect
    def gone(ws):
        codes.append(ws.close_code)

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            assert ws.receive_text() == "bye"
            assert ws.receive()["code"] == 1000
    assert codes == [1000]


def test_on_disconnect_runs_once_after_view_error():
    app = App()
    codes: list[int] = []

    @app.websocket_route("/chat")
    async def chat(ws):
        raise RuntimeError("view failed")

    @chat.on_disconnect
    def gone(ws):
        codes.append(ws.close_code)

    with create_client(app) as client:
        with pytest.raises(RuntimeError, match="view failed"):
            with client.websocket_connect("/chat"):
                pass
    assert codes == [1011]


def test_on_disconnect_not_called_for_rejected_connection():
    app = App()
    calls: list[str] = []

    @app.websocket_route("/chat/{pk}")
    async def chat(ws, pk: int):
        calls.append("view")

    @chat.on_connect
    def hello(ws):
        calls.append("connect")

    @chat.on_disconnect
    def gone(ws):
        calls.append("disconnect")

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/chat/not-a-number"):
                pass
    assert excinfo.value.code == 403
    assert calls == []


def test_on_disconnect_error_is_logged_and_other_hooks_still_run(caplog):
    app = App()
    calls: list[str] = []

    @app.websocket_route("/chat")
    async def chat(ws):
        pass

    @chat.on_disconnect
    def broken(ws):
        raise ValueError("hook failed")

    @chat.on_disconnect
    def fine(ws):
        calls.append("fine")

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            assert ws.receive()["code"] == 1000
    assert calls == ["fine"]
    assert any(
        record.name == "bocadillo.routing" and record.exc_info is not None
        for record in caplog.records
    )


def test_on_connect_with_manual_accept_runs_inside_accept():
    app = App()
    order: list[str] = []

    @app.websocket_route("/chat", auto_accept=False)
    async def chat(ws):
        order.append("before accept")
        async with ws:
            order.append("after accept")

    @chat.on_connect
    def hello(ws):
        order.append("on_connect")

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            assert ws.receive()["code"] == 1000
    assert order == ["before accept", "on_connect", "after accept"]
