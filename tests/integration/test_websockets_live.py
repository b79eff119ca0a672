"""WebSocket routes served by a real uvicorn, driven by a real ``websockets`` client.

The server runs in another thread: views and hooks report through ``threading.Event``s,
and ``Outcomes`` records how each connection's ASGI call ended (returned, or raised to
uvicorn), so nothing here waits on a sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import queue
import re
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import Any

import httpx2 as httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.typing import Subprotocol

from bocadillo import App, InvalidState, WebSocket, WebSocketDisconnect
from bocadillo.types import ASGIApp, Message, Receive, Scope, Send

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

#: Upper bound for any wait; never an expectation about speed.
TIMEOUT = 5.0


class Outcomes:
    """Wrap an app; report, per WebSocket connection, the exception that reached the server."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._ended: queue.Queue[BaseException | None] = queue.Queue()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        except BaseException as exc:
            self._ended.put(exc)
            raise
        self._ended.put(None)

    async def next(self) -> BaseException | None:
        """Wait for the next connection to end; return what it raised (``None``: nothing)."""
        return await asyncio.to_thread(self._ended.get, True, TIMEOUT)


class ErrorLog(logging.Handler):
    """Collect the ERROR records of a logger, and signal the first one."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []
        self.logged = threading.Event()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        self.logged.set()


@contextmanager
def uvicorn_errors() -> Iterator[ErrorLog]:
    """Capture ``uvicorn.error`` records. Enter it after the server started: uvicorn's
    logging setup replaces the handlers of its loggers."""
    handler = ErrorLog()
    logger = logging.getLogger("uvicorn.error")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


async def wait(event: threading.Event) -> bool:
    return await asyncio.to_thread(event.wait, TIMEOUT)


async def recv(conn: ClientConnection) -> str | bytes:
    return await asyncio.wait_for(conn.recv(), TIMEOUT)


async def closed(conn: ClientConnection) -> tuple[int | None, str | None]:
    """Wait until the server closed ``conn``; return the close code and reason it sent."""
    await asyncio.wait_for(conn.wait_closed(), TIMEOUT)
    return conn.close_code, conn.close_reason


async def handshake_status(url: str) -> int:
    """Open a connection that must be refused; return the HTTP status of the refusal."""
    with pytest.raises(InvalidStatus) as excinfo:
        async with connect(url, open_timeout=TIMEOUT):
            pass
    return excinfo.value.response.status_code


# Serving ----------------------------------------------------------------------------------


async def test_live_echo_answers_real_client(live_server):
    app = App()

    @app.websocket_route("/echo")
    async def echo(ws):
        async for message in ws:
            await ws.send(f"You said: {message}")

    server = live_server(app)
    async with connect(server.ws_url + "/echo") as conn:
        await conn.send("hello")
        assert await recv(conn) == "You said: hello"
        await conn.send("again")
        assert await recv(conn) == "You said: again"


async def test_live_chat_route_types_route_and_query_parameters(live_server):
    app = App()

    @app.websocket_route("/chat/{channel}", value_type="json")
    async def chat(ws, channel: str, anonymous: bool = False):
        user = "Anonymous" if anonymous else ws.headers["user"]
        async for message in ws:
            await ws.send({"user": user, "channel": channel, "message": message})

    server = live_server(app)
    url = server.ws_url + "/chat/general"
    async with connect(url + "?anonymous=true") as conn:
        await conn.send(json.dumps({"text": "hi"}))
        assert json.loads(await recv(conn)) == {
            "user": "Anonymous",
            "channel": "general",
            "message": {"text": "hi"},
        }
    async with connect(url, additional_headers={"user": "ann"}) as conn:
        await conn.send("42")
        assert json.loads(await recv(conn)) == {
            "user": "ann",
            "channel": "general",
            "message": 42,
        }


# Refusals: an HTTP 403 answer to the handshake, never an accept then a close ---------------


@pytest.mark.parametrize("path", ["/chat/general?anonymous=maybe", "/rooms/abc", "/rooms"])
async def test_live_conversion_failure_answers_handshake_with_403(live_server, path):
    app = App()
    called: list[str] = []

    @app.websocket_route("/chat/{channel}")
    async def chat(ws, channel: str, anonymous: bool = False):
        called.append("chat")

    @app.websocket_route("/rooms/{pk}")
    async def room(ws, pk: int):
        called.append("room")

    @app.websocket_route("/rooms")
    async def rooms(ws, limit: int):
        called.append("rooms")

    server = live_server(app)
    assert await handshake_status(server.ws_url + path) == 403
    assert called == []


async def test_live_unknown_path_answers_handshake_with_403(live_server):
    app = App()
    http_calls: list[str] = []

    @app.websocket_route("/echo")
    async def echo(ws):
        await ws.send("never")

    @app.route("/page")
    async def page(req, res):
        http_calls.append(req.method)
        res.text = "page"

    server = live_server(app)
    assert await handshake_status(server.ws_url + "/nowhere") == 403
    assert await handshake_status(server.ws_url + "/page") == 403
    assert http_calls == []
    async with httpx.AsyncClient() as http:
        response = await http.get(server.url + "/page")
    assert response.text == "page"
    assert http_calls == ["GET"]


async def test_live_reject_answers_handshake_with_403(live_server):
    app = App()

    @app.websocket_route("/hello", auto_accept=False)
    async def hello(ws):
        if ws.headers.get("api-key") != "s3kr3t":
            await ws.reject()
            return
        async with ws:
            await ws.send("welcome")

    server = live_server(app)
    assert await handshake_status(server.ws_url + "/hello") == 403
    async with connect(server.ws_url + "/hello", additional_headers={"api-key": "s3kr3t"}) as conn:
        assert await recv(conn) == "welcome"
        assert await closed(conn) == (1000, "")


# Close codes -------------------------------------------------------------------------------


async def test_live_auto_accept_closes_1000_after_view_returns(live_server):
    app = App()

    @app.websocket_route("/hello")
    async def hello(ws):
        await ws.send("hi")

    outcomes = Outcomes(app)
    server = live_server(outcomes)
    async with connect(server.ws_url + "/hello") as conn:
        assert await recv(conn) == "hi"
        assert await closed(conn) == (1000, "")
    assert await outcomes.next() is None


async def test_live_view_close_code_reaches_client(live_server):
    app = App()

    @app.websocket_route("/dangerous")
    async def dangerous(ws):
        await ws.receive()
        await ws.close(4242, reason="boom")

    server = live_server(app)
    async with connect(server.ws_url + "/dangerous") as conn:
        await conn.send("go")
        assert await closed(conn) == (4242, "boom")


async def test_live_close_twice_raises_and_client_sees_first_code(live_server):
    app = App()
    errors: list[Exception] = []

    @app.websocket_route("/twice")
    async def twice(ws):
        await ws.close(4001)
        try:
            await ws.close(4002)
        except InvalidState as exc:
            errors.append(exc)
        await ws.ensure_closed(4003)

    outcomes = Outcomes(app)
    server = live_server(outcomes)
    async with connect(server.ws_url + "/twice") as conn:
        assert await closed(conn) == (4001, "")
    assert await outcomes.next() is None
    assert len(errors) == 1
    assert isinstance(errors[0], RuntimeError)


async def test_live_manual_accept_then_context_manager(live_server):
    app = App()

    @app.websocket_route("/manual", auto_accept=False)
    async def manual(ws):
        await ws.accept()
        async with ws:
            async with ws:
                await ws.send(await ws.receive())

    outcomes = Outcomes(app)
    server = live_server(outcomes)
    async with connect(server.ws_url + "/manual") as conn:
        await conn.send("ping")
        assert await recv(conn) == "ping"
        assert await closed(conn) == (1000, "")
    assert await outcomes.next() is None


async def test_live_view_error_closes_1011_and_reaches_server(live_server):
    app = App()

    @app.websocket_route("/boom")
    async def boom(ws):
        await ws.receive()
        raise ValueError("secret detail")

    outcomes = Outcomes(app)
    server = live_server(outcomes)
    with uvicorn_errors() as errors:
        async with connect(server.ws_url + "/boom") as conn:
            await conn.send("go")
            code, reason = await closed(conn)
            with pytest.raises(ConnectionClosed):
                await recv(conn)
        error = await outcomes.next()
        assert await wait(errors.logged)
    assert (code, reason) == (1011, "")
    assert isinstance(error, ValueError)
    assert any(
        record.exc_info is not None and record.exc_info[1] is error for record in errors.records
    )


async def test_live_send_of_non_str_on_text_route_closes_1011(live_server):
    app = App()

    @app.websocket_route("/out")
    async def out(ws):
        await ws.send({"not": "text"})

    outcomes = Outcomes(app)
    server = live_server(outcomes)
    async with connect(server.ws_url + "/out") as conn:
        assert await closed(conn) == (1011, "")
    assert isinstance(await outcomes.next(), TypeError)


async def test_live_invalid_json_closes_1007_and_view_ends_quietly(live_server):
    app = App()
    reached: list[str] = []

    @app.websocket_route("/json", value_type="json")
    async def json_view(ws):
        await ws.send(await ws.receive())
        await ws.receive()
        reached.append("after invalid JSON")

    outcomes = Outcomes(app)
    server = live_server(outcomes)
    async with connect(server.ws_url + "/json") as conn:
        await conn.send('{"ok": true}')
        assert json.loads(await recv(conn)) == {"ok": True}
        await conn.send("{not json")
        code, _ = await closed(conn)
    assert code == 1007
    assert await outcomes.next() is None
    assert reached == []


async def test_live_invalid_utf8_binary_frame_on_text_route_closes_1007(live_server):
    app = App()

    @app.websocket_route("/text")
    async def text(ws):
        async for message in ws:
            await ws.send(message.upper())

    outcomes = Outcomes(app)
    server = live_server(outcomes)
    async with connect(server.ws_url + "/text") as conn:
        await conn.send("héllo".encode())
        assert await recv(conn) == "HÉLLO"
        await conn.send(b"\xff\xfe")
        code, _ = await closed(conn)
    assert code == 1007
    assert await outcomes.next() is None


async def test_live_codecs_convert_frames(live_server):
    app = App()

    @app.websocket_route("/bytes", value_type="bytes")
    async def as_bytes(ws):
        async for data in ws:
            await ws.send(data + b"!")

    server = live_server(app)
    async with connect(server.ws_url + "/bytes") as conn:
        await conn.send("hé")
        assert await recv(conn) == "hé!".encode()
        await conn.send(b"\x00\xff")
        assert await recv(conn) == b"\x00\xff!"


# Client disconnects --------------------------------------------------------------------------


def disconnect_app(**options: Any) -> Outcomes:
    app = App()

    @app.websocket_route("/recv", **options)
    async def recv_view(ws):
        await ws.send("ready")
        await ws.receive()

    return Outcomes(app)


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({}, 1000),
        ({}, 1001),
        ({"caught_close_codes": all}, 4000),
        ({"caught_close_codes": all}, 4999),
        ({"caught_close_codes": (4100,)}, 4100),
    ],
)
async def test_live_caught_client_close_code_is_silenced(live_server, options, code):
    outcomes = disconnect_app(**options)
    server = live_server(outcomes)
    async with connect(server.ws_url + "/recv") as conn:
        assert await recv(conn) == "ready"
        await conn.close(code)
    assert await outcomes.next() is None


@pytest.mark.parametrize(
    ("options", "code"),
    [
        ({}, 4000),
        ({}, 1011),
        ({"caught_close_codes": ()}, 1000),
        ({"caught_close_codes": ()}, 1001),
    ],
)
async def test_live_uncaught_client_close_code_reaches_server(live_server, options, code):
    outcomes = disconnect_app(**options)
    server = live_server(outcomes)
    with uvicorn_errors() as errors:
        async with connect(server.ws_url + "/recv") as conn:
            assert await recv(conn) == "ready"
            await conn.close(code)
        error = await outcomes.next()
        assert await wait(errors.logged)
    assert isinstance(error, WebSocketDisconnect)
    assert error.code == code
    assert errors.records[0].exc_info is not None
    assert errors.records[0].exc_info[1] is error


async def test_live_abrupt_drop_raises_disconnect_in_view(live_server):
    app = App()
    codes: list[int] = []
    ended = threading.Event()

    @app.websocket_route("/drop", caught_close_codes=all)
    async def drop(ws):
        await ws.send("ready")
        try:
            await ws.receive()
        except WebSocketDisconnect as exc:
            codes.append(exc.code)
            raise
        finally:
            ended.set()

    outcomes = Outcomes(app)
    server = live_server(outcomes)
    conn = await connect(server.ws_url + "/drop")
    assert await recv(conn) == "ready"
    conn.transport.abort()
    assert await wait(ended)
    assert await outcomes.next() is None
    assert len(codes) == 1
    assert codes[0] not in (1000, 1001)


class DisconnectWatch:
    """Wrap an app; read uvicorn's events eagerly to learn when it saw the client go.

    The view still gets every event, in order, but only when it asks: so a test can make
    the view act on a connection whose transport is already gone.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.seen = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            await self.app(scope, receive, send)
            return
        pending: asyncio.Queue[Message] = asyncio.Queue()

        async def pump() -> None:
            while True:
                message = await receive()
                pending.put_nowait(message)
                if message["type"] == "websocket.disconnect":
                    self.seen.set()
                    return

        task = asyncio.ensure_future(pump())
        try:
            await self.app(scope, pending.get, send)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def test_live_ensure_closed_after_abrupt_drop_does_not_raise(live_server):
    app = App()
    steps: list[str] = []

    @app.websocket_route("/drop")
    async def drop(ws):
        await ws.send("ready")
        assert await asyncio.to_thread(watch.seen.wait, TIMEOUT)
        await ws.ensure_closed()  # uvicorn refuses to send on the lost transport
        steps.append(f"closed={ws.closed}")
        await ws.ensure_closed()
        steps.append("again")

    watch = DisconnectWatch(app)
    outcomes = Outcomes(watch)
    server = live_server(outcomes)
    conn = await connect(server.ws_url + "/drop")
    assert await recv(conn) == "ready"
    conn.transport.abort()
    assert await outcomes.next() is None
    assert steps == ["closed=True", "again"]


async def test_live_send_after_abrupt_drop_raises_disconnect_1006(live_server):
    app = App()
    codes: list[int] = []

    @app.websocket_route("/drop", caught_close_codes=(1006,))
    async def drop(ws):
        await ws.send("ready")
        assert await asyncio.to_thread(watch.seen.wait, TIMEOUT)
        try:
            await ws.send("too late")
        except WebSocketDisconnect as exc:
            codes.append(exc.code)
            raise

    watch = DisconnectWatch(app)
    outcomes = Outcomes(watch)
    server = live_server(outcomes)
    conn = await connect(server.ws_url + "/drop")
    assert await recv(conn) == "ready"
    conn.transport.abort()
    assert await outcomes.next() is None
    assert codes == [1006]


# Connection data -------------------------------------------------------------------------------


async def test_live_connection_data(live_server):
    app = App()

    @app.websocket_route("/inspect/{room}")
    async def inspect(ws, room: str):
        await ws.send_json(
            {
                "room": room,
                "url": str(ws.url),
                "user": ws.headers["x-user"],
                "query": ws.query_parameters["q"],
                "client_host": ws.client.host if ws.client else None,
                "id": ws.id,
            }
        )

    server = live_server(app)
    url = server.ws_url + "/inspect/lobby?q=search"
    ids = []
    for _ in range(2):
        async with connect(url, additional_headers={"X-User": "ann"}) as conn:
            data = json.loads(await recv(conn))
        ids.append(data.pop("id"))
        assert data == {
            "room": "lobby",
            "url": url,
            "user": "ann",
            "query": "search",
            "client_host": "127.0.0.1",
        }
    assert ids[0] != ids[1]
    assert all(re.fullmatch(r"[A-Za-z0-9_-]+", value) for value in ids)


async def test_live_subprotocol_negotiation(live_server):
    app = App()

    @app.websocket_route("/proto", auto_accept=False)
    async def proto(ws):
        chosen = "chat.v2" if "chat.v2" in ws.subprotocols else None
        await ws.accept(subprotocol=chosen)
        async with ws:
            await ws.send(str(ws.subprotocol))

    server = live_server(app)
    async with connect(
        server.ws_url + "/proto", subprotocols=[Subprotocol("chat.v1"), Subprotocol("chat.v2")]
    ) as conn:
        assert conn.subprotocol == "chat.v2"
        assert await recv(conn) == "chat.v2"
    async with connect(server.ws_url + "/proto", subprotocols=[Subprotocol("chat.v1")]) as conn:
        assert conn.subprotocol is None
        assert await recv(conn) == "None"


# Hooks -----------------------------------------------------------------------------------------


async def test_live_on_connect_sends_and_returned_value_uses_send_codec(live_server):
    app = App()

    @app.websocket_route("/chat", value_type="json")
    async def chat(ws):
        await ws.send({"from": "view"})

    @chat.on_connect
    async def hello(ws):
        await ws.send({"from": "hook"})
        return {"type": "welcome"}

    server = live_server(app)
    async with connect(server.ws_url + "/chat") as conn:
        assert await recv(conn) == '{"from":"hook"}'
        assert await recv(conn) == '{"type":"welcome"}'
        assert await recv(conn) == '{"from":"view"}'
        assert await closed(conn) == (1000, "")


async def test_live_on_connect_close_refuses_client(live_server):
    app = App()
    called: list[str] = []
    disconnected = threading.Event()

    @app.websocket_route("/private")
    async def private(ws):
        called.append("view")

    @private.on_connect
    async def check(ws):
        await ws.close(4401)

    @private.on_disconnect
    def gone(ws):
        disconnected.set()

    server = live_server(app)
    async with connect(server.ws_url + "/private") as conn:
        assert await closed(conn) == (4401, "")
    assert await wait(disconnected)
    assert called == []


def counting_route(
    app: App, path: str, view: Callable[..., Awaitable[None]], **options: Any
) -> tuple[list[int | None], threading.Event]:
    """Register ``view`` at ``path`` with an ``on_disconnect`` hook that counts its calls."""
    calls: list[int | None] = []
    called = threading.Event()
    route = app.websocket_route(path, **options)(view)

    @route.on_disconnect
    def gone(ws: WebSocket) -> None:
        calls.append(ws.close_code)
        called.set()

    return calls, called


async def test_live_on_disconnect_runs_once_however_connection_ends(live_server):
    app = App()

    async def echo(ws):
        async for message in ws:
            await ws.send(message)

    async def closer(ws):
        await ws.close(4242)

    async def failing(ws):
        await ws.receive()
        raise RuntimeError("view failed")

    by_client, client_done = counting_route(app, "/client", echo)
    by_drop, drop_done = counting_route(app, "/drop", echo, caught_close_codes=all)
    by_server, server_done = counting_route(app, "/server", closer)
    by_error, error_done = counting_route(app, "/error", failing)
    outcomes = Outcomes(app)
    server = live_server(outcomes)

    async with connect(server.ws_url + "/client") as conn:
        await conn.send("x")
        assert await recv(conn) == "x"
    assert await wait(client_done)
    assert await outcomes.next() is None

    conn = await connect(server.ws_url + "/drop")
    await conn.send("x")
    assert await recv(conn) == "x"
    conn.transport.abort()
    assert await wait(drop_done)
    assert await outcomes.next() is None

    async with connect(server.ws_url + "/server") as conn:
        assert await closed(conn) == (4242, "")
    assert await wait(server_done)
    assert await outcomes.next() is None

    async with connect(server.ws_url + "/error") as conn:
        await conn.send("go")
        assert await closed(conn) == (1011, "")
    assert await wait(error_done)
    assert isinstance(await outcomes.next(), RuntimeError)

    # Every connection has ended (``outcomes`` said so), so no late second call can come.
    assert by_client == [1000]
    assert len(by_drop) == 1
    assert by_server == [4242]
    assert by_error == [1011]


async def test_live_sync_and_async_hooks(live_server):
    app = App()
    calls: list[str] = []
    done = threading.Event()

    @app.websocket_route("/chat")
    async def chat(ws):
        await ws.receive()

    @chat.on_connect
    def sync_connect(ws):
        return "sync hello"

    @chat.on_connect
    async def async_connect(ws):
        return "async hello"

    @chat.on_disconnect
    async def async_gone(ws):
        calls.append("async")

    @chat.on_disconnect
    def sync_gone(ws):
        calls.append("sync")
        done.set()

    server = live_server(app)
    async with connect(server.ws_url + "/chat") as conn:
        assert await recv(conn) == "sync hello"
        assert await recv(conn) == "async hello"
    assert await wait(done)
    assert calls == ["async", "sync"]
