"""Client disconnects, caught close codes, and errors raised by views."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from starlette.websockets import WebSocketDisconnect

from bocadillo import App, CloseCode, create_client

from .recorder import SentEvents


def disconnect_app(**options: Any) -> tuple[App, list[int], threading.Event]:
    """An app whose ``/recv`` view waits for a message and records how it ended."""
    app = App()
    outcome: list[int] = []
    raised = threading.Event()

    @app.websocket_route("/recv", **options)
    async def recv(ws):
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            outcome.append(exc.code)
            raise
        finally:
            raised.set()

    return app, outcome, raised


@pytest.mark.parametrize("code", [1000, 1001])
def test_websocket_default_caught_codes_are_silenced(code):
    app, outcome, raised = disconnect_app()
    with create_client(app) as client:
        with client.websocket_connect("/recv") as ws:
            ws.close(code)
            assert raised.wait(5)
    assert outcome == [code]


@pytest.mark.parametrize("code", [1006, 1011, 4000])
def test_websocket_uncaught_code_propagates(code):
    app, outcome, raised = disconnect_app()
    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/recv") as ws:
                ws.close(code)
                assert raised.wait(5)
    assert excinfo.value.code == code
    assert outcome == [code]


def test_websocket_caught_close_codes_extends_silenced_codes():
    app, outcome, raised = disconnect_app(caught_close_codes=(1000, 1001, 1006))
    with create_client(app) as client:
        with client.websocket_connect("/recv") as ws:
            ws.close(1006)
            assert raised.wait(5)
        with pytest.raises(WebSocketDisconnect) as excinfo:
            raised.clear()
            with client.websocket_connect("/recv") as ws:
                ws.close(4000)
                assert raised.wait(5)
    assert excinfo.value.code == 4000
    assert outcome == [1006, 4000]


@pytest.mark.parametrize("code", [1000, 1001, 1005, 1006, 1011, 3000, 4000, 4500, 4999])
def test_websocket_caught_close_codes_all_catches_every_code(code):
    app, outcome, raised = disconnect_app(caught_close_codes=all)
    with create_client(app) as client:
        with client.websocket_connect("/recv") as ws:
            ws.close(code)
            assert raised.wait(5)
    assert outcome == [code]


@pytest.mark.parametrize("code", [1000, 1001])
def test_websocket_caught_close_codes_empty_catches_nothing(code):
    app, outcome, raised = disconnect_app(caught_close_codes=())
    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/recv") as ws:
                ws.close(code)
                assert raised.wait(5)
    assert excinfo.value.code == code
    assert outcome == [code]


def test_websocket_caught_close_codes_accepts_close_code_members():
    app, outcome, raised = disconnect_app(caught_close_codes=[CloseCode.ABNORMAL_CLOSURE])
    with create_client(app) as client:
        with client.websocket_connect("/recv") as ws:
            ws.close(1006)
            assert raised.wait(5)
        raised.clear()
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/recv") as ws:
                ws.close(1000)
                assert raised.wait(5)
    assert outcome == [1006, 1000]


def test_websocket_context_manager_silences_caught_codes_only():
    app = App()
    after_block: list[int] = []
    done = threading.Event()

    @app.websocket_route("/ctx", auto_accept=False, caught_close_codes=(1000,))
    async def ctx(ws):
        try:
            async with ws:
                await ws.receive()
            after_block.append(ws.close_code)
        finally:
            done.set()

    with create_client(app) as client:
        with client.websocket_connect("/ctx") as ws:
            ws.close(1000)
            assert done.wait(5)
        done.clear()
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/ctx") as ws:
                ws.close(4000)
                assert done.wait(5)
    assert after_block == [1000]
    assert excinfo.value.code == 4000


def test_websocket_disconnect_is_caught_by_view():
    app = App()
    handled: list[int] = []
    done = threading.Event()

    @app.websocket_route("/chat", caught_close_codes=())
    async def chat(ws):
        try:
            async for _ in ws:
                pass
        except WebSocketDisconnect as exc:
            handled.append(exc.code)
        finally:
            done.set()

    with create_client(app) as client:
        with client.websocket_connect("/chat") as ws:
            ws.close(4010)
            assert done.wait(5)
    assert handled == [4010]


def test_websocket_view_error_closes_1011_and_is_reraised():
    app = App()

    @app.websocket_route("/boom")
    async def boom(ws):
        await ws.receive()
        raise ValueError("secret detail")

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with pytest.raises(ValueError, match="secret detail"):
            with client.websocket_connect("/boom") as ws:
                ws.send_text("go")
                ws.receive()  # the close event, or the app's error once it has finished
    assert recorder.close_codes == [1011]
    sent = [e for e in recorder.events if e["type"] in ("websocket.send", "websocket.close")]
    assert "secret" not in repr(sent)


def test_websocket_view_error_after_close_is_still_reraised():
    app = App()

    @app.websocket_route("/boom")
    async def boom(ws):
        await ws.close(4000)
        raise KeyError("late")

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with pytest.raises(KeyError):
            with client.websocket_connect("/boom"):
                pass
    assert recorder.close_codes == [4000]


def test_websocket_close_after_client_left_does_not_silence_uncaught_code():
    app = App()
    second_close: list[Exception] = []
    done = threading.Event()

    @app.websocket_route("/chat")
    async def chat(ws):
        try:
            await ws.receive()
        finally:
            await ws.close()  # nobody to send it to: a no-op, not a server-side close
            try:
                await ws.close()
            except RuntimeError as exc:
                second_close.append(exc)
            done.set()

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/chat") as ws:
                ws.close(4000)
                assert done.wait(5)
    assert excinfo.value.code == 4000
    assert recorder.close_codes == []
    assert len(second_close) == 1
