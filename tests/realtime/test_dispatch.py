"""Message-type routing: ``@app.socket`` handlers behind a WebSocket endpoint, in-process."""

from __future__ import annotations

import dataclasses
import itertools
import threading
from typing import Any

import pytest
import typesystem
from starlette.testclient import WebSocketTestSession

from bocadillo import (
    App,
    ConfigurationError,
    EnvelopeError,
    Recipe,
    WebSocket,
    WebSocketDisconnect,
    create_client,
)
from bocadillo.realtime.dispatch import SocketRequest
from bocadillo.realtime.envelope import ERROR_CODES
from bocadillo.realtime.hub import Hub
from tests.realtime.helpers import on_loop


def request(session: WebSocketTestSession, kind: str, data: Any = None, **extra: Any) -> Any:
    """Send an envelope and return the decoded reply."""
    session.send_json({"type": kind, "data": data, **extra})
    return session.receive_json()


def error(code: str, request_id: Any = None) -> dict[str, Any]:
    """The shape of an error envelope (``message`` is checked separately)."""
    shape: dict[str, Any] = {"type": "error", "data": {"code": code}}
    if request_id is not None:
        shape["id"] = request_id
    return shape


def without_message(reply: dict[str, Any]) -> dict[str, Any]:
    """The reply with its human-readable error message checked and removed."""
    data = dict(reply["data"])
    assert isinstance(data.pop("message"), str)
    return {**reply, "data": data}


def echo_app(**settings: Any) -> App:
    app = App(**settings)

    @app.socket("echo")
    def echo(data):
        return data

    return app


# Handlers ---------------------------------------------------------------------------------


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_socket_handler_gets_its_parameters_by_name(sync):
    app = App()
    seen: dict[str, Any] = {}

    def inspect(
        data: Any, ws: Any, client_id: Any, message: Any, type: Any, id: Any, hub: Any
    ) -> Any:
        seen.update(ws=ws, hub=hub)
        return {
            "data": data,
            "client_id": client_id,
            "is_ws_id": client_id == ws.id,
            "message": message,
            "type": type,
            "id": id,
        }

    async def async_inspect(data, ws, client_id, message, type, id, hub):
        return inspect(data, ws, client_id, message, type, id, hub)

    app.socket("inspect")(inspect if sync else async_inspect)

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "inspect", "data": {"n": 1}, "id": "r1", "extra": True})
            reply = ws.receive_json()
    assert reply["type"] == "response"
    assert reply["id"] == "r1"
    assert reply["data"] == {
        "data": {"n": 1},
        "client_id": reply["data"]["client_id"],
        "is_ws_id": True,
        "message": {"type": "inspect", "data": {"n": 1}, "id": "r1", "extra": True},
        "type": "inspect",
        "id": "r1",
    }
    assert isinstance(seen["ws"], WebSocket)
    assert seen["hub"] is app.hub


def test_socket_handler_gets_a_daebus_style_req():
    app = App()

    @app.socket("inspect")
    def inspect(req):
        assert isinstance(req, SocketRequest)
        assert req.websocket.id == req.client_id
        return {
            "client_id": req.client_id,
            "message_type": req.message_type,
            "data": req.data,
            "payload": req.payload,
            "id": req.id,
        }

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            reply = request(ws, "inspect", [1], id="q")
            assert on_loop(client, lambda: app.hub.ids) == [reply["data"]["client_id"]]
    assert reply["data"] == {
        "client_id": reply["data"]["client_id"],
        "message_type": "inspect",
        "data": [1],
        "payload": {"type": "inspect", "data": [1], "id": "q"},
        "id": "q",
    }


def test_socket_handler_takes_only_the_parameters_it_names():
    app = App()

    @app.socket("nothing")
    def nothing():
        return "ok"

    @app.socket("just_id")
    async def just_id(id):
        return {"id": id}

    @app.socket("default")
    def default(data, unknown="fallback"):
        return [data, unknown]

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert request(ws, "nothing") == {"type": "response", "data": "ok"}
            assert request(ws, "just_id", id=5) == {"type": "response", "data": {"id": 5}, "id": 5}
            assert request(ws, "just_id") == {"type": "response", "data": {"id": None}}
            assert request(ws, "default", 1) == {"type": "response", "data": [1, "fallback"]}


def test_socket_handler_gets_providers_per_connection():
    app = App()
    made = itertools.count(1)

    @app.provider
    def session_number():
        return next(made)

    @app.socket("number")
    def number(session_number, data):
        return [session_number, data]

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert request(ws, "number", "a")["data"] == [1, "a"]
            assert request(ws, "number", "b")["data"] == [1, "b"]
        with client.websocket_connect("/ws") as ws:
            assert request(ws, "number", "c")["data"] == [2, "c"]


def test_socket_handler_with_an_unknown_parameter_fails_at_startup():
    app = App()

    @app.socket("broken")
    def broken(mystery):
        return mystery

    with pytest.raises(ConfigurationError, match="mystery"):
        with create_client(app):
            pass


def test_socket_sync_handlers_run_off_the_event_loop():
    app = App()
    threads: dict[str, int] = {}

    @app.socket("sync")
    def sync_handler():
        threads["sync"] = threading.get_ident()

    @app.socket("async")
    async def async_handler():
        threads["async"] = threading.get_ident()
        return "done"

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "sync"})
            assert request(ws, "async") == {"type": "response", "data": "done"}
    assert threads["sync"] != threads["async"]


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_socket_handlers_can_use_rooms_and_broadcast(sync):
    app = App()

    def join(ws: Any, data: Any) -> Any:
        ws.join(data)
        return sorted(ws.rooms)

    def say(ws: Any, data: Any, hub: Any) -> Any:
        return ws.broadcast(data["text"], type="said", room=data["room"], exclude_self=True)

    def whisper(hub: Any, data: Any) -> Any:
        return hub.send(data["to"], data["text"], type="whisper")

    async def async_join(ws, data):
        return join(ws, data)

    async def async_say(ws, data, hub):
        return say(ws, data, hub)

    async def async_whisper(hub, data):
        return whisper(hub, data)

    app.socket("join")(join if sync else async_join)
    app.socket("say")(say if sync else async_say)
    app.socket("whisper")(whisper if sync else async_whisper)

    @app.socket("leave")
    def leave(ws, data):
        ws.leave(data)
        return sorted(ws.rooms)

    @app.socket("whoami")
    def whoami(client_id):
        return client_id

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ann, client.websocket_connect("/ws") as bob:
            assert request(ann, "join", "lobby")["data"] == ["lobby"]
            assert request(bob, "join", "lobby")["data"] == ["lobby"]
            ann_id = request(ann, "whoami")["data"]
            bob_id = request(bob, "whoami")["data"]
            assert on_loop(client, app.hub.members, "lobby") == {ann_id, bob_id}
            assert request(ann, "say", {"room": "lobby", "text": "hi"})["data"] == 1
            assert bob.receive_json() == {"type": "said", "data": "hi"}
            assert request(ann, "whisper", {"to": bob_id, "text": "psst"})["data"] is True
            assert bob.receive_json() == {"type": "whisper", "data": "psst"}
            assert request(bob, "leave", "lobby")["data"] == []
            assert on_loop(client, app.hub.members, "lobby") == {ann_id}


@pytest.mark.parametrize(
    ("sent", "reply"),
    [
        pytest.param({"type": "echo", "data": 1, "id": "a"}, {"data": 1, "id": "a"}, id="str-id"),
        pytest.param({"type": "echo", "data": [1], "id": 7}, {"data": [1], "id": 7}, id="int-id"),
        pytest.param({"type": "echo", "data": "x", "id": 0}, {"data": "x", "id": 0}, id="zero-id"),
        pytest.param({"type": "echo", "data": {"k": "v"}}, {"data": {"k": "v"}}, id="no-id"),
        pytest.param({"type": "echo", "data": False}, {"data": False}, id="false"),
        pytest.param({"type": "echo", "data": 0, "id": None}, {"data": 0}, id="null-id"),
    ],
)
def test_socket_handler_result_goes_back_as_a_response(sent, reply):
    app = echo_app()

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_json(sent)
            assert ws.receive_json() == {"type": "response", **reply}


def test_socket_handler_returning_none_sends_nothing():
    app = echo_app()
    calls: list[Any] = []

    @app.socket("fire")
    def fire(data):
        calls.append(data)

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_json({"type": "fire", "data": 1, "id": "f1"})
            ws.send_json({"type": "fire", "data": 2, "id": "f2"})
            # The next thing received is the echo: the two fires answered nothing.
            assert request(ws, "echo", "after", id="e") == {
                "type": "response",
                "data": "after",
                "id": "e",
            }
    assert calls == [1, 2]


def test_socket_binary_frames_are_parsed_like_text():
    app = echo_app()

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_bytes('{"type":"echo","data":"été","id":1}'.encode())
            assert ws.receive_json() == {"type": "response", "data": "été", "id": 1}


def test_socket_duplicate_type_on_one_endpoint_is_refused():
    app = App()

    @app.socket("ping")
    def ping():
        return 1

    with pytest.raises(ConfigurationError):

        @app.socket("ping")
        def ping_again():
            return 2

    # Another endpoint may use the same type.
    @app.socket("ping", endpoint="/other")
    def other_ping():
        return 3

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert request(ws, "ping")["data"] == 1
        with client.websocket_connect("/other") as ws:
            assert request(ws, "ping")["data"] == 3


@pytest.mark.parametrize("endpoint", ["ws", "", "relative/path"])
def test_socket_endpoint_must_start_with_a_slash(endpoint):
    app = App()
    with pytest.raises(ConfigurationError):
        app.socket("ping", endpoint=endpoint)(lambda: None)
    with pytest.raises(ConfigurationError):
        app.socket_connect(endpoint=endpoint)(lambda: None)


# Schemas ----------------------------------------------------------------------------------


@dataclasses.dataclass
class ChatMessage:
    text: str
    room: str = "lobby"
    urgent: bool = False


MESSAGE_SCHEMA = typesystem.Schema(
    fields={
        "text": typesystem.String(max_length=10),
        "room": typesystem.String(default="lobby"),
    }
)


@pytest.mark.parametrize(
    ("schema", "data", "expected"),
    [
        (MESSAGE_SCHEMA, {"text": "hi"}, {"text": "hi", "room": "lobby"}),
        (MESSAGE_SCHEMA, {"text": "hi", "room": "games"}, {"text": "hi", "room": "games"}),
        (typesystem.Integer(minimum=0), 5, 5),
        (
            ChatMessage,
            {"text": "hi"},
            {"class": "ChatMessage", "text": "hi", "room": "lobby", "urgent": False},
        ),
        (
            ChatMessage,
            {"text": "hi", "room": "games", "urgent": True},
            {"class": "ChatMessage", "text": "hi", "room": "games", "urgent": True},
        ),
    ],
)
def test_socket_schema_validates_data_before_the_handler(schema, data, expected):
    app = App()

    @app.socket("chat", schema=schema)
    def chat(data):
        if dataclasses.is_dataclass(data) and not isinstance(data, type):
            return {"class": type(data).__name__, **dataclasses.asdict(data)}
        return data

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert request(ws, "chat", data, id=1) == {
                "type": "response",
                "data": expected,
                "id": 1,
            }


@pytest.mark.parametrize(
    ("schema", "data", "mentions"),
    [
        (MESSAGE_SCHEMA, {"text": "far too long for it"}, "text"),
        (MESSAGE_SCHEMA, {}, "text"),
        (MESSAGE_SCHEMA, "not an object", ""),
        (MESSAGE_SCHEMA, None, ""),
        (typesystem.Integer(minimum=0), -1, ""),
        (ChatMessage, {}, "text"),
        (ChatMessage, {"text": 5}, "text"),
        (ChatMessage, {"text": "hi", "urgent": "yes"}, "urgent"),
        (ChatMessage, {"text": "hi", "colour": "red"}, "colour"),
        (ChatMessage, ["hi"], ""),
        (ChatMessage, None, ""),
    ],
)
def test_socket_schema_refuses_invalid_data_and_keeps_the_connection(schema, data, mentions):
    app = echo_app()
    calls: list[Any] = []

    @app.socket("chat", schema=schema)
    def chat(data):
        calls.append(data)
        return "handled"

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            reply = request(ws, "chat", data, id="c1")
            assert without_message(reply) == error("invalid_data", "c1")
            assert mentions in reply["data"]["message"]
            # Still open, still serving.
            assert request(ws, "echo", "alive")["data"] == "alive"
            assert on_loop(client, lambda: app.hub.count) == 1
    assert calls == []


class ClassSchema(typesystem.Schema):
    """A typesystem Schema class: an instance is needed."""


@pytest.mark.parametrize("schema", [ClassSchema, 42, "text"])
def test_socket_schema_that_cannot_validate_is_refused_at_registration(schema):
    app = App()
    with pytest.raises(ConfigurationError):
        app.socket("chat", schema=schema)(lambda data: data)


# Errors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("frame", "expected"),
    [
        pytest.param("not json", error("invalid_json"), id="invalid-json"),
        pytest.param(b'{"type":"\xff"}', error("invalid_json"), id="invalid-utf8"),
        pytest.param("[" * 60_000, error("invalid_json"), id="deep-nesting"),
        pytest.param(
            '{"type":"echo","data":' + "9" * 5000 + "}", error("invalid_json"), id="huge-int"
        ),
        pytest.param("[1, 2]", error("invalid_envelope"), id="not-an-object"),
        pytest.param('{"data":1,"id":"m"}', error("invalid_envelope", "m"), id="missing-type"),
        pytest.param('{"type":"","id":2}', error("invalid_envelope", 2), id="empty-type"),
        pytest.param('{"type":7,"id":"n"}', error("invalid_envelope", "n"), id="number-type"),
        pytest.param('{"type":"echo","id":1.5}', error("invalid_envelope"), id="float-id"),
        pytest.param('{"type":"echo","id":true}', error("invalid_envelope"), id="bool-id"),
        pytest.param('{"type":"echo","id":[1]}', error("invalid_envelope"), id="list-id"),
        pytest.param('{"type":"nope","id":"u"}', error("unknown_type", "u"), id="unknown-type"),
        pytest.param('{"type":"Echo"}', error("unknown_type"), id="type-is-case-sensitive"),
    ],
)
def test_socket_bad_messages_answer_an_error_and_keep_the_connection(frame, expected):
    app = echo_app()

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            if isinstance(frame, bytes):
                ws.send_bytes(frame)
            else:
                ws.send_text(frame)
            reply = ws.receive_json()
            assert without_message(reply) == expected
            assert reply["data"]["code"] in ERROR_CODES
            assert request(ws, "echo", "still open", id=9) == {
                "type": "response",
                "data": "still open",
                "id": 9,
            }


def test_socket_handler_error_hides_the_exception_and_keeps_the_connection(caplog):
    app = echo_app()

    @app.socket("boom")
    def boom(data):
        raise ValueError("secret database password in here")

    @app.socket("not_json")
    async def not_json():
        return {1, 2}  # a set is not JSON-serialisable

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            reply = request(ws, "boom", 1, id="b")
            assert without_message(reply) == error("handler_error", "b")
            assert "secret" not in reply["data"]["message"]
            assert "ValueError" not in reply["data"]["message"]
            reply = request(ws, "not_json", id="j")
            assert without_message(reply) == error("handler_error", "j")
            assert request(ws, "echo", "alive")["data"] == "alive"
            assert on_loop(client, lambda: app.hub.counters.errors) == 2
    assert any(
        record.name == "bocadillo.dispatch" and record.exc_info is not None
        for record in caplog.records
    )


def test_socket_handler_may_raise_an_envelope_error_with_its_own_code():
    app = App()

    @app.socket("check")
    def check(data):
        if data != "ok":
            raise EnvelopeError("invalid_data", "say ok")
        return "fine"

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert request(ws, "check", "no", id=3) == {
                "type": "error",
                "data": {"code": "invalid_data", "message": "say ok"},
                "id": 3,
            }
            assert request(ws, "check", "ok")["data"] == "fine"


def test_socket_rate_limit_answers_rate_limited_then_closes_with_1008():
    app = echo_app(rate_limit=(2, 60), rate_limit_violations=3)

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert request(ws, "echo", 1, id=1)["data"] == 1
            assert request(ws, "echo", 2, id=2)["data"] == 2
            # Over the limit: refused with an error (with the request's id, so that a
            # client can fail that request), the handler does not run.
            assert without_message(request(ws, "echo", 3, id=3)) == error("rate_limited", 3)
            assert without_message(request(ws, "echo", 4, id=4)) == error("rate_limited", 4)
            assert on_loop(client, lambda: app.hub.count) == 1
            ws.send_json({"type": "echo", "data": 5, "id": 5})
            assert ws.receive() == {
                "type": "websocket.close",
                "code": 1008,
                "reason": "rate limit exceeded",
            }
        assert on_loop(client, lambda: app.hub.count) == 0


def test_socket_rate_limit_without_violation_limit_never_closes():
    app = echo_app(rate_limit=(1, 60), rate_limit_violations=None)

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert request(ws, "echo", 0)["data"] == 0
            for n in range(20):
                assert without_message(request(ws, "echo", n)) == error("rate_limited")
            assert on_loop(client, lambda: app.hub.count) == 1


@pytest.mark.parametrize("size", [30, 99, 100])
def test_socket_message_at_the_size_limit_is_handled(size):
    app = echo_app(max_message_size=100)
    frame = '{"type":"echo","data":"'
    frame += "x" * (size - len(frame) - 2) + '"}'
    assert len(frame) == size

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            ws.send_text(frame)
            assert ws.receive_json()["type"] == "response"


@pytest.mark.parametrize("binary", [False, True], ids=["text", "binary"])
def test_socket_message_too_large_answers_an_error_then_closes_with_1009(binary):
    app = echo_app(max_message_size=100)
    frame = '{"type":"echo","data":"' + "x" * 100 + '","id":1}'

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            if binary:
                ws.send_bytes(frame.encode())
            else:
                ws.send_text(frame)
            reply = ws.receive_json()
            assert without_message(reply) == error("message_too_large")
            assert "100" in reply["data"]["message"]
            assert ws.receive() == {
                "type": "websocket.close",
                "code": 1009,
                "reason": "message too large",
            }
        assert on_loop(client, lambda: app.hub.count) == 0


def test_socket_room_full_answers_room_full():
    app = echo_app(max_room_members=1)

    @app.socket("join")
    def join(ws, data):
        ws.join(data)
        return "joined"

    with create_client(app) as client:
        with client.websocket_connect("/ws") as first, client.websocket_connect("/ws") as second:
            assert request(first, "join", "duo", id=1)["data"] == "joined"
            reply = request(second, "join", "duo", id=2)
            assert without_message(reply) == error("room_full", 2)
            assert "duo" in reply["data"]["message"]
            assert request(second, "echo", "open")["data"] == "open"
            assert len(on_loop(client, app.hub.members, "duo")) == 1


# Connect and disconnect -------------------------------------------------------------------


@pytest.mark.parametrize("sync", [True, False], ids=["sync", "async"])
def test_socket_connect_returning_false_refuses_with_403(sync):
    app = echo_app()
    disconnects: list[str] = []
    done = threading.Event()

    def gate(ws: Any) -> bool:
        return bool(ws.query_params.get("token") == "s3kr3t")

    async def async_gate(ws):
        return gate(ws)

    app.socket_connect()(gate if sync else async_gate)

    @app.socket_disconnect()
    def gone(client_id):
        disconnects.append(client_id)
        done.set()

    @app.socket("whoami")
    def whoami(client_id):
        return client_id

    with create_client(app) as client:
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/ws?token=wrong"):
                pass
        assert excinfo.value.code == 403
        assert on_loop(client, lambda: app.hub.counters.connections_total) == 0
        with client.websocket_connect("/ws?token=s3kr3t") as ws:
            # True is no welcome: the first thing received is the response.
            accepted_id = request(ws, "whoami")["data"]
            ws.close(1000)
            assert done.wait(10)
    # The refused connection was never accepted: no disconnect handler for it.
    assert disconnects == [accepted_id]


def test_socket_connect_returned_value_is_sent_first_as_welcome():
    app = echo_app()

    @app.socket_connect()
    def hello(client_id, ws):
        return {"you": client_id, "name": ws.query_params.get("name")}

    @app.socket_connect()
    async def motd():
        return "message of the day"

    @app.socket_connect()
    def nothing():
        return None

    with create_client(app) as client:
        with client.websocket_connect("/ws?name=ann") as ws:
            welcome = ws.receive_json()
            assert welcome["type"] == "welcome"
            assert welcome["data"]["name"] == "ann"
            assert on_loop(client, app.hub.is_connected, welcome["data"]["you"])
            assert ws.receive_json() == {"type": "welcome", "data": "message of the day"}
            assert request(ws, "echo", 1) == {"type": "response", "data": 1}


@pytest.mark.parametrize("how", ["client", "server", "after-error"])
def test_socket_disconnect_runs_once_when_the_connection_ends(how):
    app = echo_app()
    ended: list[tuple[str, int | None]] = []
    done = threading.Event()

    @app.socket("boom")
    def boom():
        raise RuntimeError("handler failed")

    @app.socket_disconnect()
    def gone(client_id, ws):
        ended.append((client_id, ws.close_code))
        done.set()

    @app.socket_connect()
    def hello(client_id):
        return client_id

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            conn_id = ws.receive_json()["data"]
            if how == "after-error":
                assert without_message(request(ws, "boom", id=1)) == error("handler_error", 1)
                assert not done.is_set()  # a handler error does not end the connection
                ws.close(1000)
            elif how == "server":
                assert on_loop(client, lambda: app.hub.count) == 1
                portal = client.portal
                assert portal is not None
                assert portal.call(app.hub.disconnect, conn_id, 4000) is True
                assert ws.receive()["code"] == 4000
                ws.close(4000)  # the client answers the closing handshake
            else:
                ws.close(1001)
            assert done.wait(10)
        assert on_loop(client, lambda: app.hub.count) == 0
    assert len(ended) == 1
    assert ended[0][0] == conn_id
    assert ended[0][1] == {"client": 1001, "server": 4000, "after-error": 1000}[how]


def test_socket_disconnect_errors_are_logged_and_other_handlers_run(caplog):
    app = echo_app()
    calls: list[str] = []
    done = threading.Event()

    @app.socket_disconnect()
    def broken():
        raise ValueError("disconnect handler failed")

    @app.socket_disconnect()
    async def fine():
        calls.append("fine")
        done.set()

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert request(ws, "echo", 1)["data"] == 1
            ws.close(1000)
            assert done.wait(10)
    assert calls == ["fine"]
    assert any(record.name == "bocadillo.dispatch" for record in caplog.records)


# Endpoints --------------------------------------------------------------------------------


def test_socket_endpoints_in_recipes_custom_paths_and_the_app():
    app = App()
    chat = Recipe("chat")

    @app.socket("where")
    def app_where():
        return "app /ws"

    @app.socket("where", endpoint="/live")
    def app_live():
        return "app /live"

    @chat.socket("where")
    def chat_where(ws):
        return f"chat {ws.url.path}"

    @chat.socket("where", endpoint="/rt")
    def chat_rt(ws):
        return f"chat {ws.url.path}"

    app.recipe(chat)

    with create_client(app) as client:
        for path, expected in [
            ("/ws", "app /ws"),
            ("/live", "app /live"),
            ("/chat/ws", "chat /chat/ws"),
            ("/chat/rt", "chat /chat/rt"),
        ]:
            with client.websocket_connect(path) as ws:
                assert request(ws, "where")["data"] == expected
                conn_id = on_loop(client, lambda: app.hub.ids)[0]
                assert on_loop(client, app.hub.info, conn_id).path == path
        with pytest.raises(WebSocketDisconnect) as excinfo:
            with client.websocket_connect("/chat/live"):
                pass
        assert excinfo.value.code == 403


def test_socket_path_setting_moves_the_default_endpoint():
    app = App(socket_path="/socket")
    chat = Recipe("chat")

    @app.socket("ping")
    def ping():
        return "app"

    @chat.socket("ping")
    def chat_ping():
        return "chat"

    app.recipe(chat)

    with create_client(app) as client:
        with client.websocket_connect("/socket") as ws:
            assert request(ws, "ping")["data"] == "app"
        with client.websocket_connect("/chat/socket") as ws:
            assert request(ws, "ping")["data"] == "chat"
        for old in ("/ws", "/chat/ws"):
            with pytest.raises(WebSocketDisconnect) as excinfo:
                with client.websocket_connect(old):
                    pass
            assert excinfo.value.code == 403


def test_socket_endpoints_share_the_app_hub_with_routes():
    app = echo_app()

    @app.websocket_route("/plain", value_type="json")
    async def plain(ws):
        await ws.send({"id": ws.id})
        async for _ in ws:
            pass

    with create_client(app) as client:
        with client.websocket_connect("/plain") as plain_ws, client.websocket_connect("/ws") as ws:
            plain_id = plain_ws.receive_json()["id"]
            assert request(ws, "echo", 1)["data"] == 1
            assert on_loop(client, lambda: app.hub.count) == 2
            hub: Hub = app.hub
            assert on_loop(client, hub.broadcast, "all", type="news") == 2
            assert plain_ws.receive_json() == "all"
            assert ws.receive_json() == {"type": "news", "data": "all"}
            assert on_loop(client, hub.filter, lambda info: info.path == "/plain") == [plain_id]
