"""What a WebSocket view can learn about its connection."""

from __future__ import annotations

import re

from starlette.datastructures import QueryParams

from bocadillo import App, WebSocket, create_client


def test_websocket_exposes_request_data():
    app = App()

    @app.websocket_route("/inspect")
    async def inspect(ws):
        assert isinstance(ws, WebSocket)
        assert ws.client is not None
        await ws.send_json(
            {
                "url": str(ws.url),
                "path": ws.url.path,
                "user": ws.headers["user"],
                "user_case_insensitive": ws.headers["USER"],
                "query": dict(ws.query_params),
                "query_alias": dict(ws.query_parameters),
                "tags": ws.query_params.getlist("tag"),
                "client_host": ws.client.host,
            }
        )

    with create_client(app) as client:
        with client.websocket_connect("/inspect?tag=a&tag=b&x=1", headers={"user": "ann"}) as ws:
            data = ws.receive_json()
    assert data == {
        "url": "ws://testserver/inspect?tag=a&tag=b&x=1",
        "path": "/inspect",
        "user": "ann",
        "user_case_insensitive": "ann",
        "query": {"tag": "b", "x": "1"},
        "query_alias": {"tag": "b", "x": "1"},
        "tags": ["a", "b"],
        "client_host": "testclient",
    }


def test_websocket_query_parameters_is_an_alias_of_query_params():
    app = App()
    seen: list[QueryParams] = []

    @app.websocket_route("/q")
    async def q(ws):
        seen.extend([ws.query_params, ws.query_parameters])

    with create_client(app) as client:
        with client.websocket_connect("/q?a=1"):
            pass
    assert seen[0] == seen[1] == QueryParams("a=1")


def test_websocket_id_is_unique_url_safe_and_available_before_accept():
    app = App()
    ids_before_accept: list[str] = []

    @app.websocket_route("/id", auto_accept=False)
    async def connection_id(ws):
        ids_before_accept.append(ws.id)
        async with ws:
            await ws.send(ws.id)

    with create_client(app) as client:
        with client.websocket_connect("/id") as ws:
            first = ws.receive_text()
        with client.websocket_connect("/id") as ws:
            second = ws.receive_text()
    assert first != second
    assert ids_before_accept == [first, second]
    for connection_id_value in (first, second):
        assert re.fullmatch(r"[A-Za-z0-9_-]+", connection_id_value)


def test_websocket_state_is_per_connection():
    app = App()

    @app.websocket_route("/count")
    async def count(ws):
        ws.state.count = 0
        async for _ in ws:
            ws.state.count += 1
            await ws.send(str(ws.state.count))

    with create_client(app) as client:
        with client.websocket_connect("/count") as one, client.websocket_connect("/count") as two:
            one.send_text("x")
            assert one.receive_text() == "1"
            one.send_text("x")
            assert one.receive_text() == "2"
            two.send_text("x")
            assert two.receive_text() == "1"


def test_websocket_subprotocol_selected_by_accept():
    app = App()
    offered: list[list[str]] = []

    @app.websocket_route("/proto", auto_accept=False)
    async def proto(ws):
        offered.append(ws.subprotocols)
        await ws.accept(subprotocol="chat.v2")
        await ws.send(ws.subprotocol)

    with create_client(app) as client:
        with client.websocket_connect("/proto", subprotocols=["chat.v1", "chat.v2"]) as ws:
            assert ws.accepted_subprotocol == "chat.v2"
            assert ws.receive_text() == "chat.v2"
    assert offered == [["chat.v1", "chat.v2"]]


def test_websocket_auto_accept_selects_no_subprotocol():
    app = App()

    @app.websocket_route("/proto")
    async def proto(ws):
        await ws.send(str(ws.subprotocol))

    with create_client(app) as client:
        with client.websocket_connect("/proto", subprotocols=["chat.v1"]) as ws:
            assert ws.accepted_subprotocol is None
            assert ws.receive_text() == "None"


def test_websocket_accept_sends_extra_headers():
    app = App()

    @app.websocket_route("/headers", auto_accept=False)
    async def headers(ws):
        await ws.accept(headers=[(b"x-server", b"bocadillo")])

    with create_client(app) as client:
        with client.websocket_connect("/headers") as ws:
            assert ws.extra_headers == [(b"x-server", b"bocadillo")]
