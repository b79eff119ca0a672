"""The app's hub, in-process: registry, delivery, rooms, limits, jobs and stats.

Hub calls made by the test go through the test client's portal, so they run on the
app's event loop, as they would inside a view.
"""

from __future__ import annotations

import asyncio
import itertools
import threading
from contextlib import ExitStack
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession

from bocadillo import (
    App,
    ConfigurationError,
    InvalidState,
    UnknownConnection,
    WebSocketDisconnect,
    create_client,
)
from bocadillo.realtime.hub import Hub, HubLimits
from bocadillo.realtime.registry import ConnectionInfo
from bocadillo.realtime.rooms import RoomFull
from bocadillo.types import ASGIApp, Receive, Scope, Send
from tests.realtime.helpers import awaited, on_loop


def member_app(**settings: Any) -> App:
    """An app whose JSON route joins the rooms in ``?rooms=``, sends its id, then serves
    commands: ``{"join": room}``, ``{"leave": room}``, ``{"broadcast": data, ...}``,
    ``{"state": {...}}``, ``{"echo": value}``, ``{"close": code}``, ``{"fail": text}``.
    Its ``/ws`` endpoint answers ``whoami`` with the connection id."""
    app = App(**settings)

    @app.websocket_route("/member", value_type="json")
    async def member(ws, rooms: str = ""):
        for room in filter(None, rooms.split(",")):
            ws.join(room)
        await ws.send({"id": ws.id})
        async for command in ws:
            if "join" in command:
                ws.join(command["join"])
                await ws.send({"rooms": sorted(ws.rooms)})
            elif "leave" in command:
                ws.leave(command["leave"])
                await ws.send({"rooms": sorted(ws.rooms)})
            elif "broadcast" in command:
                count = ws.broadcast(
                    command["broadcast"],
                    room=command.get("room"),
                    exclude_self=command.get("exclude_self", False),
                )
                await ws.send({"sent_to": count})
            elif "state" in command:
                for key, value in command["state"].items():
                    setattr(ws.state, key, value)
                await ws.send({"ok": True})
            elif "echo" in command:
                await ws.send(command["echo"])
            elif "close" in command:
                await ws.close(command["close"])
            elif "fail" in command:
                raise RuntimeError(command["fail"])

    @app.socket("whoami")
    def whoami(client_id):
        return client_id

    return app


def connect(client: TestClient, path: str = "/member", **kwargs: Any) -> WebSocketTestSession:
    return client.websocket_connect(path, **kwargs)


def whoami(session: WebSocketTestSession) -> str:
    """The id of a ``/ws`` connection (a round trip, so it is registered)."""
    session.send_json({"type": "whoami"})
    reply = session.receive_json()
    assert reply["type"] == "response"
    conn_id: str = reply["data"]
    return conn_id


def receive_until(session: WebSocketTestSession, sentinel: Any) -> list[Any]:
    """JSON messages received before ``sentinel`` (which the test sends last)."""
    received = []
    while (message := session.receive_json()) != sentinel:
        received.append(message)
    return received


# Registry ---------------------------------------------------------------------------------


def test_hub_registers_a_websocket_route_connection_while_connected():
    app = member_app()

    with create_client(app) as client:
        hub = app.hub
        with connect(client, "/member?rooms=lobby") as ws:
            conn_id = ws.receive_json()["id"]
            assert on_loop(client, lambda: hub.count) == 1
            assert on_loop(client, lambda: hub.ids) == [conn_id]
            assert on_loop(client, hub.is_connected, conn_id) is True
            assert on_loop(client, hub.is_connected, "someone-else") is False
            assert awaited(client, hub.connection_count) == 1

            info: ConnectionInfo = on_loop(client, hub.info, conn_id)
            assert info.id == conn_id
            assert info.path == "/member"
            assert info.remote_address == "testclient"
            assert isinstance(info.connected_at, float)
            assert 0 < info.connected_at <= info.last_activity  # seconds since the epoch
            assert info.rooms == frozenset({"lobby"})
            assert (info.messages_received, info.bytes_received) == (0, 0)
            first = len(f'{{"id":"{conn_id}"}}')
            assert (info.messages_sent, info.bytes_sent) == (1, first)
            assert info.user_data == {}

            ws.send_json({"state": {"name": "ann", "level": 3}})
            assert ws.receive_json() == {"ok": True}
            command = '{"state":{"name":"ann","level":3}}'
            info = on_loop(client, hub.info, conn_id)
            assert (info.messages_received, info.bytes_received) == (1, len(command))
            assert (info.messages_sent, info.bytes_sent) == (2, first + len('{"ok":true}'))
            assert info.last_activity >= info.connected_at
            # user_data is ws.state: what the view sets shows up in the hub.
            assert info.user_data == {"name": "ann", "level": 3}
            assert info.as_dict()["rooms"] == ["lobby"]
        assert on_loop(client, lambda: hub.count) == 0
        assert on_loop(client, hub.is_connected, conn_id) is False
        with pytest.raises(UnknownConnection):
            on_loop(client, hub.info, conn_id)


def test_hub_registers_message_type_endpoint_connections():
    app = App()

    @app.socket("whoami")
    def whoami(client_id, ws):
        return {"id": client_id, "same": client_id == ws.id}

    with create_client(app) as client:
        with connect(client, "/ws") as ws:
            ws.send_json({"type": "whoami"})
            reply = ws.receive_json()
            conn_id = reply["data"]["id"]
            assert reply["data"]["same"] is True
            assert on_loop(client, lambda: app.hub.ids) == [conn_id]
            info = on_loop(client, app.hub.info, conn_id)
            assert info.path == "/ws"
            assert info.remote_address == "testclient"
            assert info.messages_received == 1
            assert info.messages_sent == 1
        assert on_loop(client, lambda: app.hub.count) == 0


def test_hub_counts_every_live_connection():
    app = member_app()

    with create_client(app) as client:
        hub = app.hub
        with connect(client) as one, connect(client) as two, connect(client, "/ws") as three:
            ids = {one.receive_json()["id"], two.receive_json()["id"], whoami(three)}
            assert on_loop(client, lambda: hub.count) == 3
            assert set(on_loop(client, lambda: hub.ids)) == ids
            assert awaited(client, hub.connection_count) == 3
        assert on_loop(client, lambda: hub.count) == 0
        assert on_loop(client, lambda: hub.counters.connections_total) == 3


@pytest.mark.parametrize(
    ("command", "close_code"),
    [
        pytest.param(None, None, id="client-close"),
        pytest.param({"close": 4000}, 4000, id="server-close"),
        pytest.param({"close": 1000}, 1000, id="server-close-normal"),
    ],
)
def test_hub_forgets_a_connection_when_it_ends(command, close_code):
    app = member_app()

    with create_client(app) as client:
        with connect(client) as ws:
            conn_id = ws.receive_json()["id"]
            assert on_loop(client, app.hub.is_connected, conn_id)
            if command is not None:
                ws.send_json(command)
                assert ws.receive()["code"] == close_code
        assert not on_loop(client, app.hub.is_connected, conn_id)
        assert on_loop(client, lambda: app.hub.count) == 0
        assert awaited(client, app.hub.connection_count) == 0


def test_hub_forgets_a_connection_when_its_view_fails():
    app = member_app()

    with create_client(app) as client:
        with pytest.raises(RuntimeError, match="view failed"):
            with connect(client) as ws:
                conn_id = ws.receive_json()["id"]
                ws.send_json({"fail": "view failed"})
                ws.receive()
        assert not on_loop(client, app.hub.is_connected, conn_id)
        assert on_loop(client, lambda: app.hub.count) == 0


def test_hub_forgets_a_connection_when_its_view_returns():
    app = App()
    seen: list[tuple[str, bool]] = []

    @app.websocket_route("/short")
    async def short(ws):
        seen.append((ws.id, ws.hub.is_connected(ws.id)))
        await ws.send("bye")

    with create_client(app) as client:
        with connect(client, "/short") as ws:
            assert ws.receive_text() == "bye"
            assert ws.receive()["code"] == 1000
        assert on_loop(client, lambda: app.hub.count) == 0
    assert len(seen) == 1
    assert seen[0][1] is True


def test_hub_forgets_message_type_connections_closed_by_a_handler():
    app = App()

    @app.socket("quit")
    async def quit(ws):
        await ws.close(4001, "as you wish")

    with create_client(app) as client:
        with connect(client, "/ws") as ws:
            ws.send_json({"type": "quit"})
            assert ws.receive() == {
                "type": "websocket.close",
                "code": 4001,
                "reason": "as you wish",
            }
        assert on_loop(client, lambda: app.hub.count) == 0


def test_hub_never_registers_refused_connections():
    app = App(allowed_origins=["https://good.example"])

    @app.websocket_route("/items/{pk}")
    async def item(ws, pk: int):
        await ws.send(str(pk))

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with connect(client, "/items/abc", headers={"origin": "https://good.example"}):
                pass
        assert excinfo.value.code == 403
        with pytest.raises(WebSocketDisconnect):
            with connect(client, "/items/1", headers={"origin": "https://evil.example"}):
                pass
        assert on_loop(client, lambda: app.hub.counters.connections_total) == 0
        assert on_loop(client, lambda: app.hub.count) == 0


def test_hub_filter_selects_connections_by_their_info():
    app = member_app()

    with create_client(app) as client:
        hub = app.hub
        with (
            connect(client, "/member?rooms=red") as red,
            connect(client, "/member?rooms=blue") as blue,
            connect(client, "/ws") as other,
        ):
            red_id = red.receive_json()["id"]
            blue_id = blue.receive_json()["id"]
            red.send_json({"state": {"vip": True}})
            assert red.receive_json() == {"ok": True}
            other_id = whoami(other)

            assert on_loop(client, hub.filter, lambda info: info.path == "/member") == [
                red_id,
                blue_id,
            ]
            assert on_loop(client, hub.filter, lambda info: info.path == "/ws") == [other_id]
            assert on_loop(client, hub.filter, lambda info: "blue" in info.rooms) == [blue_id]
            assert on_loop(client, hub.filter, lambda info: info.user_data.get("vip")) == [red_id]
            assert on_loop(client, hub.filter, lambda info: False) == []


def test_app_id_generator_makes_the_connection_ids():
    app = member_app()
    numbers = itertools.count(1)

    @app.id_generator
    def make_id():
        return f"conn-{next(numbers)}"

    with create_client(app) as client:
        with connect(client) as one, connect(client, "/ws") as two:
            assert one.receive_json() == {"id": "conn-1"}
            assert whoami(two) == "conn-2"
            assert on_loop(client, lambda: app.hub.ids) == ["conn-1", "conn-2"]
            assert on_loop(client, app.hub.info, "conn-2").path == "/ws"


def test_app_id_generator_can_be_set_after_the_hub_exists():
    app = member_app()
    assert isinstance(app.hub, Hub)

    @app.id_generator
    def make_id():
        return "late"

    with create_client(app) as client:
        with connect(client) as ws:
            assert ws.receive_json() == {"id": "late"}


def test_app_id_generator_duplicate_id_fails_the_new_connection_only():
    app = member_app()

    @app.id_generator
    def same_id():
        return "same"

    with create_client(app) as client:
        with connect(client) as first:
            assert first.receive_json() == {"id": "same"}
            with pytest.raises(InvalidState):
                with connect(client) as second:
                    second.receive()
            assert on_loop(client, lambda: app.hub.ids) == ["same"]
            first.send_json({"echo": "still here"})
            assert first.receive_json() == "still here"


# Delivery ---------------------------------------------------------------------------------


def codec_app() -> App:
    """One route per codec; each sends its id (as text) once accepted."""
    app = App()

    async def serve(ws):
        await ws.send_text(ws.id)
        async for _ in ws:
            pass

    app.websocket_route("/json", value_type="json")(serve)
    app.websocket_route("/text")(serve)
    app.websocket_route("/bytes", send_type="bytes")(serve)

    @app.socket("whoami")
    def whoami(client_id):
        return client_id

    return app


def open_session(
    client: TestClient, path: str, stack: ExitStack
) -> tuple[WebSocketTestSession, str]:
    """Connect to a ``codec_app`` path; returns the session and its connection id."""
    session = stack.enter_context(client.websocket_connect(path))
    if path == "/ws":
        return session, whoami(session)
    return session, session.receive_text()


@pytest.mark.parametrize(
    ("path", "data", "kind", "expected"),
    [
        ("/json", {"a": [1, 2]}, None, {"type": "websocket.send", "text": '{"a":[1,2]}'}),
        ("/json", {"a": 1}, "ignored", {"type": "websocket.send", "text": '{"a":1}'}),
        ("/json", "plain", None, {"type": "websocket.send", "text": '"plain"'}),
        ("/text", "plain", None, {"type": "websocket.send", "text": "plain"}),
        ("/text", {"a": 1}, None, {"type": "websocket.send", "text": '{"a":1}'}),
        ("/text", b"\x00\x01", None, {"type": "websocket.send", "bytes": b"\x00\x01"}),
        ("/bytes", "é", None, {"type": "websocket.send", "bytes": "é".encode()}),
        ("/bytes", [1], None, {"type": "websocket.send", "bytes": b"[1]"}),
        (
            "/ws",
            {"a": 1},
            "notice",
            {"type": "websocket.send", "text": '{"type":"notice","data":{"a":1}}'},
        ),
        (
            "/ws",
            "hi",
            None,
            {"type": "websocket.send", "text": '{"type":"message","data":"hi"}'},
        ),
    ],
)
def test_hub_send_delivers_to_one_connection_with_its_codec(path, data, kind, expected):
    app = codec_app()

    with create_client(app) as client, ExitStack() as stack:
        target, target_id = open_session(client, path, stack)
        bystander, bystander_id = open_session(client, path, stack)
        assert on_loop(client, app.hub.send, target_id, data, type=kind) is True
        assert target.receive() == expected
        # Only the target got it: the bystander's next message is the marker.
        assert on_loop(client, app.hub.send, bystander_id, "marker") is True
        assert "marker" in str(bystander.receive())
        info = on_loop(client, app.hub.info, target_id)
        assert info.messages_sent == 2  # its id (or whoami reply), then this message
        # The totals count the views' own sends too: two ids, then the two hub messages.
        assert on_loop(client, lambda: app.hub.counters.messages_sent) == 4


def test_hub_send_to_an_unknown_connection_returns_false():
    app = codec_app()

    with create_client(app) as client:
        assert on_loop(client, app.hub.send, "nobody", {"a": 1}) is False
        assert on_loop(client, lambda: app.hub.counters.messages_sent) == 0


def test_hub_send_keeps_the_order_of_one_connection():
    app = member_app()

    with create_client(app) as client:
        with connect(client) as ws:
            conn_id = ws.receive_json()["id"]
            for n in range(50):
                assert on_loop(client, app.hub.send, conn_id, n) is True
            ws.send_json({"echo": "after"})
            assert [ws.receive_json() for _ in range(51)] == [*range(50), "after"]


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        pytest.param({}, "abc", id="everyone"),
        pytest.param({"room": "red"}, "ab", id="room"),
        pytest.param({"room": "blue"}, "bc", id="other-room"),
        pytest.param({"room": "nobody-here"}, "", id="empty-room"),
        pytest.param({"to": "ac"}, "ac", id="to"),
        pytest.param({"to": "a", "extra_to": ["ghost"]}, "a", id="to-unknown-id"),
        pytest.param({"to": ""}, "", id="to-nobody"),
        pytest.param({"to": "aac"}, "ac", id="to-duplicate-id"),
        pytest.param({"exclude": "b"}, "ac", id="exclude"),
        pytest.param({"exclude": "abc"}, "", id="exclude-everyone"),
        pytest.param({"room": "red", "exclude": "a"}, "b", id="room-exclude"),
        pytest.param({"room": "red", "to": "bc"}, "b", id="room-to"),
        pytest.param({"to": "abc", "exclude": "c"}, "ab", id="to-exclude"),
    ],
)
def test_hub_broadcast_reaches_exactly_the_chosen_connections(options, expected):
    app = member_app()

    with create_client(app) as client:
        with (
            connect(client, "/member?rooms=red") as a,
            connect(client, "/member?rooms=red,blue") as b,
            connect(client, "/member?rooms=blue") as c,
        ):
            sessions = {"a": a, "b": b, "c": c}
            ids = {name: session.receive_json()["id"] for name, session in sessions.items()}
            kwargs: dict[str, Any] = {}
            if "room" in options:
                kwargs["room"] = options["room"]
            if "to" in options:
                kwargs["to"] = [ids[n] for n in options["to"]] + options.get("extra_to", [])
            if "exclude" in options:
                kwargs["exclude"] = [ids[n] for n in options["exclude"]]

            count = on_loop(client, app.hub.broadcast, {"news": 1}, type="news", **kwargs)

            assert count == len(expected)
            for name, session in sessions.items():
                on_loop(client, app.hub.send, ids[name], "END")
                received = receive_until(session, "END")
                assert received == ([{"news": 1}] if name in expected else []), name


def test_ws_broadcast_from_a_view_can_exclude_the_sender():
    app = member_app()

    with create_client(app) as client:
        with (
            connect(client, "/member?rooms=red") as sender,
            connect(client, "/member?rooms=red") as friend,
            connect(client, "/member") as stranger,
        ):
            for session in (sender, friend, stranger):
                session.receive_json()
            sender.send_json({"broadcast": "hi all", "exclude_self": True})
            assert sender.receive_json() == {"sent_to": 2}
            assert friend.receive_json() == "hi all"
            assert stranger.receive_json() == "hi all"

            sender.send_json({"broadcast": "hi room", "room": "red", "exclude_self": True})
            assert sender.receive_json() == {"sent_to": 1}
            assert friend.receive_json() == "hi room"

            sender.send_json({"broadcast": "me too"})
            assert sender.receive_json() == "me too"  # delivered before the view's reply
            assert sender.receive_json() == {"sent_to": 3}

            for session in (friend, stranger):
                session.send_json({"echo": "END"})
            assert receive_until(friend, "END") == ["me too"]
            assert receive_until(stranger, "END") == ["me too"]


def test_hub_broadcast_encodes_once_per_codec():
    app = codec_app()

    with create_client(app) as client, ExitStack() as stack:
        ids: dict[str, list[str]] = {}
        sessions = []
        for path in ("/json", "/json", "/json", "/text", "/text", "/bytes", "/ws", "/ws"):
            session, conn_id = open_session(client, path, stack)
            sessions.append(session)
            ids.setdefault(path, []).append(conn_id)
        before = on_loop(client, lambda: app.hub.encodes)

        count = on_loop(client, app.hub.broadcast, {"x": 1}, type="tick")

        assert count == 8
        assert on_loop(client, lambda: app.hub.encodes) == before + 4
        received = [session.receive() for session in sessions]
        assert received[:3] == [{"type": "websocket.send", "text": '{"x":1}'}] * 3
        assert received[3:5] == [{"type": "websocket.send", "text": '{"x":1}'}] * 2
        assert received[5] == {"type": "websocket.send", "bytes": b'{"x":1}'}
        assert (
            received[6:]
            == [{"type": "websocket.send", "text": '{"type":"tick","data":{"x":1}}'}] * 2
        )

        # One codec among the recipients: one encode, whatever their number.
        count = on_loop(client, app.hub.broadcast, "again", to=ids["/json"])
        assert count == 3
        assert on_loop(client, lambda: app.hub.encodes) == before + 5
        stats = on_loop(client, app.hub.stats)
        assert stats["encodes"] == before + 5


# Rooms ------------------------------------------------------------------------------------


def test_rooms_join_leave_and_queries():
    app = member_app()

    with create_client(app) as client:
        hub = app.hub
        with connect(client) as one, connect(client) as two:
            one_id = one.receive_json()["id"]
            two_id = two.receive_json()["id"]
            assert on_loop(client, hub.rooms_of, one_id) == frozenset()

            one.send_json({"join": "red"})
            assert one.receive_json() == {"rooms": ["red"]}
            one.send_json({"join": "blue"})
            assert one.receive_json() == {"rooms": ["blue", "red"]}
            one.send_json({"join": "red"})  # again: a no-op
            assert one.receive_json() == {"rooms": ["blue", "red"]}
            two.send_json({"join": "red"})
            assert two.receive_json() == {"rooms": ["red"]}

            assert on_loop(client, hub.members, "red") == {one_id, two_id}
            assert on_loop(client, hub.members, "blue") == {one_id}
            assert on_loop(client, hub.members, "green") == frozenset()
            assert on_loop(client, hub.rooms_of, one_id) == {"red", "blue"}
            assert on_loop(client, hub.rooms_of, two_id) == {"red"}
            assert on_loop(client, lambda: hub.rooms) == {"red", "blue"}
            assert on_loop(client, hub.info, one_id).rooms == {"red", "blue"}
            assert awaited(client, hub.room_members, "red") == {one_id, two_id}
            assert on_loop(client, lambda: hub.stats()["rooms"]) == 2

            one.send_json({"leave": "blue"})
            assert one.receive_json() == {"rooms": ["red"]}
            one.send_json({"leave": "never-joined"})
            assert one.receive_json() == {"rooms": ["red"]}
            # An emptied room is forgotten.
            assert on_loop(client, lambda: hub.rooms) == {"red"}
            assert on_loop(client, hub.members, "blue") == frozenset()
            assert awaited(client, hub.room_members, "blue") == set()

        # Leaving on disconnect, then forgetting the empty rooms.
        assert on_loop(client, lambda: hub.rooms) == frozenset()
        assert on_loop(client, hub.members, "red") == frozenset()
        assert on_loop(client, hub.rooms_of, one_id) == frozenset()
        assert awaited(client, hub.room_members, "red") == set()
        assert on_loop(client, lambda: hub.stats()["rooms"]) == 0


def test_rooms_are_left_automatically_on_disconnect():
    app = member_app()

    with create_client(app) as client:
        hub = app.hub
        with connect(client, "/member?rooms=red") as stays:
            stays_id = stays.receive_json()["id"]
            with connect(client, "/member?rooms=red,blue") as leaves:
                leaves_id = leaves.receive_json()["id"]
                assert on_loop(client, hub.members, "red") == {stays_id, leaves_id}
            assert on_loop(client, hub.members, "red") == {stays_id}
            assert on_loop(client, hub.members, "blue") == frozenset()
            assert on_loop(client, hub.rooms_of, leaves_id) == frozenset()
            assert on_loop(client, lambda: hub.rooms) == {"red"}
            # A broadcast to the room reaches the one left.
            assert on_loop(client, hub.broadcast, "hi", room="red") == 1
            assert stays.receive_json() == "hi"


def test_ws_join_before_accept_raises_invalid_state():
    app = App()
    errors: list[Exception] = []

    @app.websocket_route("/early", auto_accept=False)
    async def early(ws):
        try:
            ws.join("lobby")
        except InvalidState as exc:
            errors.append(exc)
        assert ws.rooms == frozenset()
        async with ws:
            ws.join("lobby")
            await ws.send(",".join(ws.rooms))

    with create_client(app) as client:
        with connect(client, "/early") as ws:
            assert ws.receive_text() == "lobby"
    assert len(errors) == 1


def test_rooms_member_limit_refuses_a_join_with_room_full():
    app = App(max_room_members=1)
    outcomes: list[str] = []

    @app.websocket_route("/join")
    async def join(ws):
        try:
            ws.join("tiny")
        except RoomFull as exc:
            outcomes.append(f"full {exc.room} {exc.limit}")
            await ws.send("full")
        else:
            outcomes.append("joined")
            await ws.send("joined")
        async for _ in ws:
            pass

    with create_client(app) as client:
        with connect(client, "/join") as first, connect(client, "/join") as second:
            assert first.receive_text() == "joined"
            assert second.receive_text() == "full"
            assert on_loop(client, lambda: len(app.hub.members("tiny"))) == 1
    assert outcomes == ["joined", "full tiny 1"]


# Disconnect and shutdown ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "kind", "expected"),
    [
        ("/json", None, {"type": "websocket.send", "text": '{"reason":"kicked"}'}),
        (
            "/ws",
            "kicked",
            {"type": "websocket.send", "text": '{"type":"kicked","data":{"reason":"kicked"}}'},
        ),
    ],
)
def test_hub_disconnect_sends_a_last_message_then_closes(path, kind, expected):
    app = codec_app()

    with create_client(app) as client:
        with ExitStack() as stack:
            session, conn_id = open_session(client, path, stack)
            done = awaited(
                client,
                app.hub.disconnect,
                conn_id,
                4003,
                "go away",
                message={"reason": "kicked"},
                type=kind,
            )
            assert done is True
            assert session.receive() == expected
            assert session.receive() == {
                "type": "websocket.close",
                "code": 4003,
                "reason": "go away",
            }
        assert on_loop(client, app.hub.is_connected, conn_id) is False


def test_hub_disconnect_without_message_just_closes():
    app = member_app()

    with create_client(app) as client:
        with connect(client) as ws:
            conn_id = ws.receive_json()["id"]
            assert awaited(client, app.hub.disconnect, conn_id) is True
            assert ws.receive() == {"type": "websocket.close", "code": 1000}


def test_hub_disconnect_of_an_unknown_connection_returns_false():
    app = member_app()

    with create_client(app) as client:
        assert awaited(client, app.hub.disconnect, "nobody", 4000) is False


def test_hub_shutdown_notifies_closes_with_1001_and_refuses_new_connections():
    app = codec_app()

    with create_client(app) as client, ExitStack() as stack:
        json_session, _ = open_session(client, "/json", stack)
        ws_session, _ = open_session(client, "/ws", stack)
        awaited(client, app.hub.shutdown, message={"bye": True}, timeout=5)
        assert json_session.receive_json() == {"bye": True}
        assert json_session.receive()["code"] == 1001
        assert ws_session.receive_json() == {"type": "shutdown", "data": {"bye": True}}
        assert ws_session.receive()["code"] == 1001
        assert on_loop(client, lambda: app.hub.accepting) is False
        with connect(client, "/json") as late:
            assert late.receive()["code"] == 1001


# Limits -----------------------------------------------------------------------------------


class ClientIPFromHeader:
    """Test ASGI wrapper: take the client address from an ``x-client-ip`` header."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        for name, value in scope.get("headers", []):
            if name == b"x-client-ip":
                scope = {**scope, "client": (value.decode(), 50000)}
        await self.app(scope, receive, send)


@pytest.mark.parametrize("path", ["/member", "/ws"])
def test_max_connections_refuses_with_1013(path):
    app = member_app(max_connections=1)

    def ready(session: WebSocketTestSession) -> None:
        if path == "/ws":
            whoami(session)
        else:
            session.receive_json()

    with create_client(app) as client:
        with connect(client, path) as first:
            ready(first)
            with connect(client, path) as second:
                assert second.receive() == {
                    "type": "websocket.close",
                    "code": 1013,
                    "reason": "server busy",
                }
            assert on_loop(client, lambda: app.hub.counters.rejected) == 1
            assert on_loop(client, lambda: app.hub.count) == 1
        # Room again once the first one has left.
        with connect(client, path) as third:
            ready(third)
        assert on_loop(client, lambda: app.hub.counters.rejected) == 1
        assert on_loop(client, lambda: app.hub.counters.connections_total) == 2


def test_max_connections_per_ip_refuses_with_1013():
    app = member_app(max_connections_per_ip=1)
    app.add_middleware(ClientIPFromHeader)
    first_ip = {"x-client-ip": "10.0.0.1"}
    second_ip = {"x-client-ip": "10.0.0.2"}

    with create_client(app) as client:
        with connect(client, headers=first_ip) as one:
            one_id = one.receive_json()["id"]
            assert on_loop(client, app.hub.info, one_id).remote_address == "10.0.0.1"
            with connect(client, headers=first_ip) as refused:
                assert refused.receive()["code"] == 1013
            with connect(client, headers=second_ip) as other:
                other_id = other.receive_json()["id"]
                assert on_loop(client, app.hub.info, other_id).remote_address == "10.0.0.2"
            assert on_loop(client, lambda: app.hub.counters.rejected) == 1
        with connect(client, headers=first_ip) as again:
            again.receive_json()


def test_admitted_slots_are_given_back_when_a_connection_is_refused_or_ends():
    # A connect hook that refuses, a view that fails before accept and a normal visit
    # each hold a slot while they run; none may keep it, or the cap would fill up.
    app = App(max_connections=1, max_connections_per_ip=1)

    @app.socket_connect()
    def gate(ws):
        return ws.query_params.get("let") == "in"

    @app.websocket_route("/early", auto_accept=False)
    async def early(ws):
        raise RuntimeError("fails before accept")

    with create_client(app) as client:
        for _ in range(3):
            with pytest.raises(WebSocketDisconnect):
                with client.websocket_connect("/ws"):
                    pass
            # The client sees the 1011 close; the error goes on to the server after that.
            with pytest.raises(WebSocketDisconnect) as refused:
                with client.websocket_connect("/early"):
                    pass
            assert refused.value.code == 1011
        with client.websocket_connect("/ws?let=in"):
            assert on_loop(client, lambda: (app.hub.count, app.hub.slots.held)) == (1, 0)
        assert on_loop(
            client, lambda: (app.hub.slots.held, app.hub.slots.held_by("testclient"))
        ) == (0, 0)


@pytest.mark.parametrize(
    ("allowed", "origin", "accepted"),
    [
        (["https://good.example"], "https://good.example", True),
        (["https://good.example"], "https://evil.example", False),
        (["https://good.example"], "https://good.example.evil.example", False),
        (["https://good.example"], "http://good.example", False),
        (["https://good.example"], None, False),
        (["https://a.example", "https://b.example"], "https://b.example", True),
        ([], "https://good.example", False),
        (["*"], "https://anything.example", True),
        # Safe by default (#16): only the app's own origin, or clients without one.
        (None, "https://anything.example", False),
        (None, "http://testserver", True),
        (None, None, True),
    ],
)
@pytest.mark.parametrize("path", ["/member", "/ws"])
def test_allowed_origins_refuse_other_origins_with_403(path, allowed, origin, accepted):
    app = member_app(allowed_origins=allowed)

    headers = {"origin": origin} if origin is not None else {}
    with create_client(app) as client:
        if accepted:
            with connect(client, path, headers=headers) as ws:
                conn_id = whoami(ws) if path == "/ws" else ws.receive_json()["id"]
                assert on_loop(client, app.hub.is_connected, conn_id)
            assert on_loop(client, lambda: app.hub.counters.rejected) == 0
        else:
            with pytest.raises(WebSocketDisconnect) as excinfo:
                with connect(client, path, headers=headers):
                    pass
            assert excinfo.value.code == 403
            assert on_loop(client, lambda: app.hub.counters.rejected) == 1
            assert on_loop(client, lambda: app.hub.counters.connections_total) == 0


def test_rate_limit_drops_extra_frames_then_closes_with_1008():
    app = member_app(rate_limit=(2, 60), rate_limit_violations=3)

    with create_client(app) as client:
        with connect(client) as ws:
            ws.receive_json()
            for n in range(5):
                ws.send_json({"echo": n})
            assert ws.receive_json() == 0
            assert ws.receive_json() == 1
            # 2 and 3 were dropped (violations 1 and 2); 4 was the third violation.
            assert ws.receive() == {
                "type": "websocket.close",
                "code": 1008,
                "reason": "rate limit exceeded",
            }
        assert on_loop(client, lambda: app.hub.counters.dropped) == 3
        assert on_loop(client, lambda: app.hub.count) == 0


def test_max_message_size_closes_a_route_connection_with_1009():
    app = member_app(max_message_size=20)

    with create_client(app) as client:
        with connect(client) as ws:
            ws.receive_json()
            ws.send_json({"echo": "12345"})  # 16 bytes
            assert ws.receive_json() == "12345"
            ws.send_json({"echo": "1234567890"})  # 21 bytes
            assert ws.receive() == {
                "type": "websocket.close",
                "code": 1009,
                "reason": "message too large",
            }
        assert on_loop(client, lambda: app.hub.count) == 0


def test_idle_timeout_closes_silent_connections_with_1001():
    app = member_app(idle_timeout=0.05)

    with create_client(app) as client:
        with connect(client) as ws:
            ws.receive_json()
            assert ws.receive() == {
                "type": "websocket.close",
                "code": 1001,
                "reason": "idle timeout",
            }


# Settings ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "value", "field", "expected"),
    [
        ("BOCADILLO_MAX_CONNECTIONS", "5", "max_connections", 5),
        ("BOCADILLO_MAX_CONNECTIONS_PER_IP", "2", "max_connections_per_ip", 2),
        ("BOCADILLO_MAX_ROOM_MEMBERS", "7", "max_room_members", 7),
        ("BOCADILLO_RATE_LIMIT", "20/1.5", "rate_limit", (20, 1.5)),
        ("BOCADILLO_RATE_LIMIT", "20", "rate_limit", (20, 1.0)),
        ("BOCADILLO_RATE_LIMIT_VIOLATIONS", "4", "rate_limit_violations", 4),
        ("BOCADILLO_MAX_MESSAGE_SIZE", "1000", "max_message_size", 1000),
        ("BOCADILLO_IDLE_TIMEOUT", "30", "idle_timeout", 30.0),
        ("BOCADILLO_OUTBOX_LIMIT", "10", "outbox_limit", 10),
        ("BOCADILLO_OVERFLOW", "close", "overflow", "close"),
        (
            "BOCADILLO_ALLOWED_ORIGINS",
            "https://a.example, https://b.example",
            "allowed_origins",
            ["https://a.example", "https://b.example"],
        ),
    ],
)
def test_hub_limits_come_from_the_environment(monkeypatch, variable, value, field, expected):
    monkeypatch.setenv(variable, value)
    app = App()
    assert getattr(app.hub.limits, field) == expected


def test_hub_limits_environment_wins_over_the_code(monkeypatch):
    monkeypatch.setenv("BOCADILLO_MAX_CONNECTIONS", "1")
    app = member_app(max_connections=50, max_message_size=10)
    assert app.hub.limits.max_connections == 1
    assert app.hub.limits.max_message_size == 10

    with create_client(app) as client:
        with connect(client) as first:
            first.receive_json()
            with connect(client) as second:
                assert second.receive()["code"] == 1013


def test_hub_limits_from_app_settings_and_defaults():
    assert App().hub.limits == HubLimits()
    app = App(
        max_connections_per_ip=None,
        rate_limit=(3, 60),
        rate_limit_violations=2,
        max_message_size=100,
        max_connections=1,
        allowed_origins=["https://a.example"],
        overflow="drop_newest",
        outbox_limit=8,
    )
    assert app.hub.limits == HubLimits(
        allowed_origins=["https://a.example"],
        max_connections=1,
        max_connections_per_ip=None,
        rate_limit=(3, 60.0),
        rate_limit_violations=2,
        max_message_size=100,
        outbox_limit=8,
        overflow="drop_newest",
    )


# Jobs -------------------------------------------------------------------------------------


def test_every_runs_an_async_job_with_the_hub_while_the_app_runs():
    app = App()
    ran = threading.Event()
    seen: list[tuple[Hub, asyncio.Task[Any] | None]] = []

    @app.every(0.05)
    async def tick(hub):
        seen.append((hub, asyncio.current_task()))
        if len(seen) >= 2:
            ran.set()

    with create_client(app):
        assert ran.wait(10)
    assert all(hub is app.hub for hub, _ in seen)
    task = seen[0][1]
    assert task is not None
    # Cancelled and awaited at shutdown: the job no longer runs.
    assert task.done()
    assert task.cancelled()
    runs = app.jobs.jobs[0].runs
    assert runs >= 2
    assert len(seen) == runs


def test_every_runs_a_sync_job_in_a_thread_with_app_and_hub():
    app = App()
    ran = threading.Event()
    seen: list[tuple[App, Hub, bool]] = []

    @app.every(0.05)
    def tick(app, hub):
        seen.append((app, hub, threading.current_thread() is threading.main_thread()))
        ran.set()

    with create_client(app):
        assert ran.wait(10)
    application, hub, in_main_thread = seen[0]
    assert application is app
    assert hub is app.hub
    assert in_main_thread is False


def test_every_job_that_fails_keeps_running():
    app = App()
    ran = threading.Event()
    calls: list[int] = []

    @app.every(0.05)
    async def flaky():
        calls.append(len(calls))
        if len(calls) == 1:
            raise ValueError("first run fails")
        ran.set()

    with create_client(app):
        assert ran.wait(10)
    job = app.jobs.jobs[0]
    assert job.failures == 1
    assert job.runs == len(calls) >= 2


def test_every_immediately_runs_at_startup():
    app = App()
    ran = threading.Event()

    @app.every(3600, immediately=True)
    def hourly():
        ran.set()

    with create_client(app):
        assert ran.wait(10)
    assert app.jobs.jobs[0].runs == 1


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_every_job_can_broadcast_to_connected_clients(sync):
    app = member_app()
    ticks = itertools.count()

    def broadcast_tick(hub: Hub) -> None:
        hub.broadcast({"tick": next(ticks)}, room="ticks")

    async def async_tick(hub: Hub) -> None:
        broadcast_tick(hub)

    app.every(0.05)(broadcast_tick if sync else async_tick)

    with create_client(app) as client:
        with connect(client, "/member?rooms=ticks") as ws:
            ws.receive_json()
            first = ws.receive_json()
            second = ws.receive_json()
    assert second["tick"] > first["tick"]


@pytest.mark.parametrize("seconds", [0, -1, -0.5])
def test_every_refuses_a_period_that_is_not_positive(seconds):
    app = App()
    with pytest.raises(ConfigurationError):
        app.every(seconds)(lambda: None)


# Stats ------------------------------------------------------------------------------------


def test_stats_endpoint_answers_hub_stats():
    app = member_app(stats_endpoint="/_stats")

    with create_client(app) as client:
        with connect(client, "/member?rooms=red") as ws:
            ws.receive_json()
            ws.send_json({"echo": 1})
            assert ws.receive_json() == 1
            response = client.get("/_stats")
            expected = on_loop(client, app.hub.stats)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        stats = response.json()
        assert stats == expected
        assert stats["connections"] == 1
        assert stats["rooms"] == 1
        assert stats["connections_total"] == 1
        assert stats["messages_received"] == 1
        assert stats["bytes_received"] == len('{"echo":1}')
        assert stats["backend"] == {}
        assert client.get("/_stats").json()["connections"] == 0


def test_stats_endpoint_is_off_by_default():
    app = member_app()

    with create_client(app) as client:
        assert client.get("/_stats").status_code == 404


def test_stats_totals_include_what_views_send():
    app = member_app(stats_endpoint="/_stats")

    with create_client(app) as client:
        with connect(client) as ws:
            conn_id = ws.receive_json()["id"]
            ws.send_json({"echo": "x"})
            assert ws.receive_json() == "x"
            info = on_loop(client, app.hub.info, conn_id)
            stats = client.get("/_stats").json()
    assert info.messages_sent == 2
    assert stats["messages_sent"] == info.messages_sent
    assert stats["bytes_sent"] == info.bytes_sent


# Sizes are UTF-8 bytes ----------------------------------------------------------------------


def test_hub_delivery_counts_utf8_bytes_not_characters():
    app = codec_app()

    with create_client(app) as client, ExitStack() as stack:
        session, conn_id = open_session(client, "/text", stack)
        before = on_loop(client, app.hub.info, conn_id).bytes_sent
        total_before = on_loop(client, lambda: app.hub.counters.bytes_sent)
        assert on_loop(client, app.hub.send, conn_id, "é" * 10) is True
        assert session.receive_text() == "é" * 10
        assert on_loop(client, app.hub.info, conn_id).bytes_sent == before + 20
        assert on_loop(client, lambda: app.hub.counters.bytes_sent) == total_before + 20


def test_received_and_view_sent_bytes_count_utf8_bytes_not_characters():
    app = member_app()

    with create_client(app) as client:
        with connect(client) as ws:
            conn_id = ws.receive_json()["id"]
            before = on_loop(client, app.hub.info, conn_id).bytes_sent
            ws.send_text('{"echo":"ééééé"}')  # 16 characters, 21 bytes
            assert ws.receive_json() == "ééééé"  # '"ééééé"': 7 characters, 12 bytes
            info = on_loop(client, app.hub.info, conn_id)
    assert info.bytes_received == 21
    assert info.bytes_sent == before + 12


def test_max_message_size_counts_utf8_bytes_not_characters():
    app = member_app(max_message_size=20)

    with create_client(app) as client:
        with connect(client) as ws:
            ws.receive_json()
            ws.send_text('{"echo":"ééééé"}')  # 16 characters, but 21 bytes
            assert ws.receive() == {
                "type": "websocket.close",
                "code": 1009,
                "reason": "message too large",
            }


def test_hub_delivery_can_be_called_from_another_thread():
    app = member_app()

    with create_client(app) as client:
        with connect(client, "/member?rooms=red") as ws:
            conn_id = ws.receive_json()["id"]
            # The test's own thread is not the app's loop: the hub hops onto it.
            assert app.hub.send(conn_id, "direct") is True
            assert ws.receive_json() == "direct"
            assert app.hub.broadcast("to all", room="red") == 1
            assert ws.receive_json() == "to all"
            app.hub.join(conn_id, "blue")
            assert on_loop(client, app.hub.rooms_of, conn_id) == {"red", "blue"}
            app.hub.leave(conn_id, "blue")
            assert on_loop(client, app.hub.rooms_of, conn_id) == {"red"}


def test_hub_query_names_say_what_they_cover_and_old_names_stay_aliases():
    assert Hub.count is Hub.local_count
    assert Hub.ids is Hub.local_ids
    assert Hub.rooms is Hub.local_rooms
    assert Hub.members is Hub.local_members
    assert Hub.rooms_of is Hub.local_rooms_of
    assert Hub.connection_count is Hub.global_count
    assert Hub.room_members is Hub.global_members
    assert Hub.connection_rooms is Hub.global_rooms_of


def test_hub_reads_from_a_worker_thread_run_on_the_hubs_loop():
    app = member_app()
    seen: list[Any] = []

    @app.socket("census")
    def census(hub, client_id):  # sync: runs in a worker thread
        seen.append(threading.get_ident())
        return {
            "count": hub.local_count,
            "ids": hub.local_ids,
            "members": sorted(hub.local_members("red")),
            "rooms": sorted(hub.local_rooms_of(client_id)),
            "connected": hub.is_connected(client_id),
            "info": hub.info(client_id).path,
        }

    with create_client(app) as client:
        with connect(client, "/member?rooms=red") as member, connect(client, "/ws") as ws:
            member_id = member.receive_json()["id"]
            ws.send_json({"type": "census", "id": 1})
            reply = ws.receive_json()
            own_id = on_loop(client, lambda: [i for i in app.hub.local_ids if i != member_id])[0]
    assert seen and seen[0] != threading.get_ident()
    assert reply["data"] == {
        "count": 2,
        "ids": reply["data"]["ids"],
        "members": [member_id],
        "rooms": [],
        "connected": True,
        "info": "/ws",
    }
    assert sorted(reply["data"]["ids"]) == sorted([member_id, own_id])


@pytest.mark.parametrize("path", ["/json", "/text", "/bytes", "/ws"])
def test_hub_broadcast_of_what_json_cannot_carry_raises_before_any_send(path):
    app = codec_app()

    with create_client(app) as client, ExitStack() as stack:
        session, conn_id = open_session(client, path, stack)
        for data in (float("nan"), {"x": float("inf")}, ["\ud800"]):
            with pytest.raises(ValueError):
                on_loop(client, app.hub.broadcast, data)
            with pytest.raises(ValueError):
                on_loop(client, app.hub.send, conn_id, data)

        assert on_loop(client, app.hub.broadcast, "sentinel", type="tick") == 1
        received = session.receive()  # the sentinel comes first: nothing else was sent
        assert "sentinel" in (received.get("text") or received["bytes"].decode())
