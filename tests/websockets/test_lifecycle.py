"""Accepting, closing and rejecting connections."""

from __future__ import annotations

import pytest
from starlette.websockets import WebSocketDisconnect

from bocadillo import App, CloseCode, InvalidState, create_client

from .recorder import SentEvents


def test_websocket_auto_accept_accepts_before_view_and_closes_1000_after():
    app = App()
    seen: list[bool] = []

    @app.websocket_route("/hello")
    async def hello(ws):
        seen.append(ws.accepted)
        await ws.send("hi")

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/hello") as ws:
            assert ws.receive_text() == "hi"
            assert ws.receive() == {"type": "websocket.close", "code": 1000}
    assert seen == [True]
    assert [event["type"] for event in recorder.events] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]


def test_websocket_manual_accept_and_close():
    app = App()
    states: list[tuple[bool, bool]] = []

    @app.websocket_route("/hello", auto_accept=False)
    async def hello(ws):
        states.append((ws.accepted, ws.closed))
        await ws.accept()
        states.append((ws.accepted, ws.closed))
        await ws.send("hi")
        await ws.close(CloseCode.GOING_AWAY)
        states.append((ws.accepted, ws.closed))

    with create_client(app) as client:
        with client.websocket_connect("/hello") as ws:
            assert ws.receive_text() == "hi"
            assert ws.receive() == {"type": "websocket.close", "code": 1001}
    assert states == [(False, False), (True, False), (True, True)]


def test_websocket_manual_view_must_accept_before_sending_or_receiving():
    app = App()
    errors: list[Exception] = []

    @app.websocket_route("/early", auto_accept=False)
    async def early(ws):
        try:
            await ws.send("too early")
        except InvalidState as exc:
            errors.append(exc)
        try:
            await ws.receive()
        except InvalidState as exc:
            errors.append(exc)
        await ws.accept()
        await ws.send("ok")

    with create_client(app) as client:
        with client.websocket_connect("/early") as ws:
            assert ws.receive_text() == "ok"
    assert len(errors) == 2


def test_websocket_context_manager_accepts_and_closes_1000():
    app = App()

    after_block: list[tuple[bool, int | None]] = []

    @app.websocket_route("/hello", auto_accept=False)
    async def hello(ws):
        async with ws:
            await ws.send(await ws.receive())
        after_block.append((ws.closed, ws.close_code))

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/hello") as ws:
            ws.send_text("ping")
            assert ws.receive_text() == "ping"
            assert ws.receive() == {"type": "websocket.close", "code": 1000}
    assert after_block == [(True, 1000)]
    assert recorder.close_codes == [1000]


def test_websocket_context_manager_entered_twice_is_safe():
    app = App()
    done: list[str] = []

    @app.websocket_route("/twice", auto_accept=False)
    async def twice(ws):
        async with ws:
            async with ws:
                await ws.send("inner")
            done.append("inner exited")
        done.append("outer exited")
        async with ws:
            done.append("entered again after close")

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/twice") as ws:
            assert ws.receive_text() == "inner"
            assert ws.receive() == {"type": "websocket.close", "code": 1000}
    assert done == ["inner exited", "outer exited", "entered again after close"]
    assert recorder.close_codes == [1000]
    assert [e["type"] for e in recorder.events].count("websocket.accept") == 1


def test_websocket_context_manager_after_accept_is_safe():
    app = App()

    @app.websocket_route("/after", auto_accept=False)
    async def after(ws):
        await ws.accept()
        async with ws:
            await ws.send("inside")

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/after") as ws:
            assert ws.receive_text() == "inside"
    assert [e["type"] for e in recorder.events] == [
        "websocket.accept",
        "websocket.send",
        "websocket.close",
    ]


def test_websocket_context_manager_on_auto_accepted_route_is_safe():
    app = App()

    @app.websocket_route("/auto")
    async def auto(ws):
        async with ws:
            await ws.send("inside")

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/auto") as ws:
            assert ws.receive_text() == "inside"
    assert recorder.close_codes == [1000]


def test_websocket_close_inside_context_manager_is_safe():
    app = App()

    @app.websocket_route("/bye", auto_accept=False)
    async def bye(ws):
        async with ws:
            await ws.close(4001)

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/bye") as ws:
            assert ws.receive() == {"type": "websocket.close", "code": 4001}
    assert recorder.close_codes == [4001]


def test_websocket_context_manager_closes_1011_on_error():
    app = App()

    @app.websocket_route("/boom", auto_accept=False)
    async def boom(ws):
        async with ws:
            raise ValueError("boom")

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with pytest.raises(ValueError, match="boom"):
            with client.websocket_connect("/boom"):
                pass
    assert recorder.close_codes == [1011]


def test_websocket_reject_before_accept_gives_403():
    app = App()
    after: list[bool] = []

    @app.websocket_route("/hello", auto_accept=False)
    async def hello(ws):
        if ws.headers.get("api-key") != "s3kr3t":
            await ws.reject()
            after.append(ws.closed)
            return
        async with ws:
            await ws.send("welcome")

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/hello"):
                pass
        assert excinfo.value.code == 403
        with client.websocket_connect("/hello", headers={"api-key": "s3kr3t"}) as ws:
            assert ws.receive_text() == "welcome"
    assert after == [True]


def test_websocket_reject_after_accept_closes_with_1008():
    app = App()

    @app.websocket_route("/late")
    async def late(ws):
        await ws.reject()

    with create_client(app) as client:
        with client.websocket_connect("/late") as ws:
            assert ws.receive() == {"type": "websocket.close", "code": 1008}


def test_websocket_accept_after_reject_raises_invalid_state():
    app = App()
    errors: list[Exception] = []

    @app.websocket_route("/nope", auto_accept=False)
    async def nope(ws):
        await ws.reject()
        try:
            await ws.accept()
        except InvalidState as exc:
            errors.append(exc)

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect):
            with client.websocket_connect("/nope"):
                pass
    assert len(errors) == 1


def test_websocket_close_twice_raises_invalid_state():
    app = App()
    errors: list[Exception] = []

    @app.websocket_route("/twice")
    async def twice(ws):
        await ws.close()
        try:
            await ws.close()
        except InvalidState as exc:
            errors.append(exc)

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/twice") as ws:
            assert ws.receive()["code"] == 1000
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)
    assert recorder.close_codes == [1000]


def test_websocket_ensure_closed_never_raises():
    app = App()

    @app.websocket_route("/safe")
    async def safe(ws):
        await ws.ensure_closed(4002)
        await ws.ensure_closed()
        await ws.ensure_closed(1011)

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/safe") as ws:
            assert ws.receive()["code"] == 4002
    assert recorder.close_codes == [4002]


def test_websocket_ensure_closed_after_close_does_not_raise():
    app = App()
    finished: list[bool] = []

    @app.websocket_route("/safe")
    async def safe(ws):
        await ws.close(4003)
        await ws.ensure_closed()
        finished.append(True)

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/safe") as ws:
            assert ws.receive()["code"] == 4003
    assert finished == [True]
    assert recorder.close_codes == [4003]


@pytest.mark.parametrize("code", [1003, 4000, 4242, 4999])
def test_websocket_view_close_code_reaches_client(code):
    app = App()

    @app.websocket_route("/close")
    async def close(ws):
        await ws.close(code)

    with create_client(app) as client:
        with client.websocket_connect("/close") as ws:
            assert ws.receive() == {"type": "websocket.close", "code": code}


def test_websocket_close_reason_reaches_client():
    app = App()

    @app.websocket_route("/close")
    async def close(ws):
        await ws.close(4003, reason="go away")

    with create_client(app) as client:
        with client.websocket_connect("/close") as ws:
            assert ws.receive() == {"type": "websocket.close", "code": 4003, "reason": "go away"}


def test_websocket_receive_after_server_close_ends_view_quietly():
    app = App()
    codes: list[int] = []

    @app.websocket_route("/closed", caught_close_codes=())
    async def closed(ws):
        await ws.close(4004)
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            codes.append(exc.code)
            raise

    with create_client(app) as client:
        with client.websocket_connect("/closed") as ws:
            assert ws.receive()["code"] == 4004
    assert codes == [4004]


def test_websocket_on_connect_hooks_stop_once_one_closes():
    app = App()
    calls: list[str] = []

    @app.websocket_route("/gate", auto_accept=False)
    async def gate(ws):
        await ws.accept()
        calls.append(f"accept returned closed={ws.closed}")

    @gate.on_connect
    async def first(ws):
        calls.append("first")
        await ws.close(4001)

    @gate.on_connect
    async def second(ws):
        calls.append("second")

    with create_client(app) as client:
        with client.websocket_connect("/gate") as ws:
            assert ws.receive()["code"] == 4001
    assert calls == ["first", "accept returned closed=True"]


def test_websocket_send_after_server_close_ends_view_quietly():
    app = App()
    codes: list[int] = []

    @app.websocket_route("/closed", caught_close_codes=())
    async def closed(ws):
        await ws.close(4005)
        try:
            await ws.send("too late")
        except WebSocketDisconnect as exc:
            codes.append(exc.code)
            raise

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with client.websocket_connect("/closed") as ws:
            assert ws.receive()["code"] == 4005
    assert codes == [4005]
    assert [e for e in recorder.events if e["type"] == "websocket.send"] == []
