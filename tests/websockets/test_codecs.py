"""Receiving and sending: codecs, typed helpers, raw ASGI events and iteration."""

from __future__ import annotations

import threading

import pytest
from starlette.websockets import WebSocketDisconnect

from bocadillo import App, create_client

from .recorder import SentEvents


def test_websocket_default_codec_is_text():
    app = App()

    @app.websocket_route("/echo")
    async def echo(ws):
        message = await ws.receive()
        await ws.send(f"You said: {message}")

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_text("hello")
            assert ws.receive() == {"type": "websocket.send", "text": "You said: hello"}


def test_websocket_text_codec_sends_bytes_as_binary_frame():
    app = App()

    @app.websocket_route("/raw")
    async def raw(ws):
        await ws.send(b"\x00\x01")

    with create_client(app) as client:
        with client.websocket_connect("/raw") as ws:
            assert ws.receive() == {"type": "websocket.send", "bytes": b"\x00\x01"}


def test_websocket_bytes_codec_round_trip():
    app = App()

    @app.websocket_route("/echo", value_type="bytes")
    async def echo(ws):
        data = await ws.receive()
        assert isinstance(data, bytes)
        await ws.send(data[::-1])

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_bytes(b"\x00\xffab")
            assert ws.receive() == {"type": "websocket.send", "bytes": b"ba\xff\x00"}


def test_websocket_bytes_codec_encodes_text_frame_as_utf8():
    app = App()
    received: list[bytes] = []

    @app.websocket_route("/echo", receive_type="bytes")
    async def echo(ws):
        received.append(await ws.receive())
        await ws.send("done")

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_text("héllo")
            assert ws.receive_text() == "done"
    assert received == ["héllo".encode()]


def test_websocket_bytes_send_codec_encodes_str_as_utf8():
    app = App()

    @app.websocket_route("/out", send_type="bytes")
    async def out(ws):
        await ws.send("héllo")

    with create_client(app) as client:
        with client.websocket_connect("/out") as ws:
            assert ws.receive() == {"type": "websocket.send", "bytes": "héllo".encode()}


def test_websocket_text_codec_decodes_binary_frame_as_utf8():
    app = App()

    @app.websocket_route("/echo")
    async def echo(ws):
        message = await ws.receive()
        await ws.send(f"{type(message).__name__}:{message}")

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_bytes("héllo".encode())
            assert ws.receive_text() == "str:héllo"


def test_websocket_text_codec_invalid_utf8_closes_with_1007():
    app = App()
    after_receive: list[str] = []

    @app.websocket_route("/echo")
    async def echo(ws):
        await ws.receive()
        after_receive.append("reached")

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_bytes(b"\xff\xfe")
            message = ws.receive()
    assert message["type"] == "websocket.close"
    assert message["code"] == 1007
    assert after_receive == []


def test_websocket_json_codec_round_trip():
    app = App()

    @app.websocket_route("/echo", value_type="json")
    async def echo(ws):
        message = await ws.receive()
        await ws.send({"echo": message})

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_json({"a": [1, 2.5, None, True], "b": "é"})
            assert ws.receive() == {
                "type": "websocket.send",
                "text": '{"echo":{"a":[1,2.5,null,true],"b":"é"}}',
            }


def test_websocket_json_codec_accepts_binary_frame():
    app = App()

    @app.websocket_route("/echo", receive_type="json", send_type="json")
    async def echo(ws):
        await ws.send(await ws.receive())

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_json({"x": 1}, mode="binary")
            assert ws.receive_json() == {"x": 1}


def test_websocket_json_codec_invalid_json_closes_with_1007_and_ends_quietly():
    app = App()
    reached: list[str] = []

    @app.websocket_route("/echo", value_type="json")
    async def echo(ws):
        await ws.receive()
        reached.append("after receive")

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_text("{not json")
            message = ws.receive()
        # Leaving the block joined the view: it raised nothing.
    assert message["type"] == "websocket.close"
    assert message["code"] == 1007
    assert reached == []


@pytest.mark.parametrize("frame", ["[" * 60_000, "9" * 5_000, "NaN", "[1e999]"])
def test_websocket_json_codec_closes_with_1007_for_what_json_cannot_hold(frame):
    app = App()

    @app.websocket_route("/echo", value_type="json")
    async def echo(ws):
        await ws.send(await ws.receive())

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_text(frame)
            assert ws.receive() == {
                "type": "websocket.close",
                "code": 1007,
                "reason": "invalid JSON",
            }


def test_websocket_text_codec_send_of_non_str_raises_type_error_and_closes_1011():
    app = App()

    @app.websocket_route("/out")
    async def out(ws):
        await ws.send({"not": "text"})

    recorder = SentEvents(app)
    with create_client(recorder) as client:
        with pytest.raises(TypeError, match="send_json"):
            with client.websocket_connect("/out"):
                pass
    assert recorder.close_codes == [1011]
    assert [e for e in recorder.events if e["type"] == "websocket.send"] == []


def test_websocket_typed_helpers_ignore_route_codec():
    app = App()

    @app.websocket_route("/mixed", value_type="bytes")
    async def mixed(ws):
        text = await ws.receive_text()
        data = await ws.receive_bytes()
        payload = await ws.receive_json()
        await ws.send_text(text.upper())
        await ws.send_bytes(data + b"!")
        await ws.send_json({"got": payload})

    with create_client(app) as client:
        with client.websocket_connect("/mixed") as ws:
            ws.send_text("abc")
            ws.send_bytes(b"xyz")
            ws.send_text('{"n": 1}')
            assert ws.receive_text() == "ABC"
            assert ws.receive_bytes() == b"xyz!"
            assert ws.receive() == {"type": "websocket.send", "text": '{"got":{"n":1}}'}


def test_websocket_raw_asgi_events_echo():
    app = App()

    @app.websocket_route("/echo")
    async def echo(ws):
        event = await ws.receive_event()
        message = event["text"]
        await ws.send_event({"type": "websocket.send", "text": f"You said: {message}"})

    with create_client(app) as client:
        with client.websocket_connect("/echo") as ws:
            ws.send_text("ping")
            assert ws.receive_text() == "You said: ping"


def test_websocket_raw_asgi_events_drive_the_handshake():
    app = App()
    events: list[str] = []

    @app.websocket_route("/manual", auto_accept=False)
    async def manual(ws):
        connect = await ws.receive_event()
        events.append(connect["type"])
        await ws.send_event({"type": "websocket.accept"})
        await ws.send("accepted by hand")
        disconnect = await ws.receive_event()
        events.append(disconnect["type"])
        events.append(str(ws.close_code))
        assert ws.closed

    with create_client(app) as client:
        with client.websocket_connect("/manual") as ws:
            assert ws.receive_text() == "accepted by hand"
            ws.close(1000)
    assert events == ["websocket.connect", "websocket.disconnect", "1000"]


def test_websocket_async_for_yields_messages_until_client_closes():
    app = App()
    seen: list[str] = []
    done = threading.Event()

    @app.websocket_route("/collect")
    async def collect(ws):
        try:
            async for message in ws:
                seen.append(message)
                await ws.send(str(len(seen)))
        finally:
            done.set()

    with create_client(app) as client:
        with client.websocket_connect("/collect") as ws:
            for word in ("a", "b", "c"):
                ws.send_text(word)
                ws.receive_text()
            ws.close(1000)
            assert done.wait(5)
    assert seen == ["a", "b", "c"]


def test_websocket_async_for_raises_disconnect_with_code():
    app = App()
    codes: list[int] = []
    done = threading.Event()

    @app.websocket_route("/collect", caught_close_codes=all)
    async def collect(ws):
        try:
            async for _ in ws:
                pass
        except WebSocketDisconnect as exc:
            codes.append(exc.code)
            raise
        finally:
            done.set()

    with create_client(app) as client:
        with client.websocket_connect("/collect") as ws:
            ws.close(4001)
            assert done.wait(5)
    assert codes == [4001]


@pytest.mark.parametrize("value", [float("nan"), float("inf"), {"x": float("-inf")}, "\ud800"])
@pytest.mark.parametrize("how", ["send_json", "send"])
def test_websocket_json_send_of_what_json_cannot_carry_raises_value_error(how, value):
    app = App()
    raised: list[type[BaseException]] = []

    @app.websocket_route("/out", send_type="json")
    async def out(ws):
        try:
            await (ws.send_json(value) if how == "send_json" else ws.send(value))
        except ValueError as exc:
            raised.append(type(exc))
        await ws.send_json("sentinel")

    with create_client(app) as client:
        with client.websocket_connect("/out") as ws:
            assert ws.receive_json() == "sentinel"  # nothing was sent before it
    assert raised == [ValueError]
