"""The example chat through the in-process test client: the browser's flows, frame by frame.

Each flow of ``example_chat/static/chat.js`` is replayed here with envelopes on ``/ws``.
The test client's receives never time out, so a test only waits for frames that must
come; "X did not get Y" is checked by order: X's next frame is a later one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import pytest
from starlette.testclient import TestClient, WebSocketTestSession

from bocadillo import App, create_client
from example_chat.app import HISTORY, create_app

_ids = itertools.count(1)


@pytest.fixture
def chat() -> App:
    return create_app(rate_limit=None)


@pytest.fixture
def client(chat: App) -> Iterator[TestClient]:
    with create_client(chat) as client:
        yield client


Connect = Callable[[], tuple[WebSocketTestSession, dict[str, Any]]]


@pytest.fixture
def connect(client: TestClient) -> Iterator[Connect]:
    """Open ``/ws``: return the session and the welcome's data; closed at teardown."""
    with ExitStack() as stack:

        def open_session() -> tuple[WebSocketTestSession, dict[str, Any]]:
            ws = stack.enter_context(client.websocket_connect("/ws"))
            welcome = ws.receive_json()
            assert welcome["type"] == "welcome"
            return ws, welcome["data"]

        yield open_session


def send(ws: WebSocketTestSession, type: str, data: Any = None) -> int:
    request_id = next(_ids)
    ws.send_json({"type": type, "data": data, "id": request_id})
    return request_id


def receive(ws: WebSocketTestSession, type: str, *, skip: tuple[str, ...] = ("rooms",)) -> Any:
    """The next envelope of ``type``, skipping only the types in ``skip``."""
    while True:
        envelope = ws.receive_json()
        if envelope["type"] == type:
            return envelope
        assert envelope["type"] in skip, f"expected {type!r}, got {envelope}"


def reply(
    ws: WebSocketTestSession,
    request_id: int,
    skip: tuple[str, ...] = ("rooms", "presence", "message"),
) -> Any:
    """The response or error answering ``request_id``; pushes of ``skip`` types are skipped."""
    while True:
        envelope = ws.receive_json()
        if envelope["type"] in ("response", "error") and envelope.get("id") == request_id:
            return envelope
        assert envelope["type"] in skip, f"unexpected {envelope}"


def join(ws: WebSocketTestSession, room: str, name: str) -> dict[str, Any]:
    envelope = reply(ws, send(ws, "join", {"room": room, "name": name}))
    assert envelope["type"] == "response", envelope
    data: dict[str, Any] = envelope["data"]
    return data


def post(ws: WebSocketTestSession, text: str) -> dict[str, Any]:
    """Send a message; return the broadcast copy the sender gets back."""
    request_id = send(ws, "message", {"text": text})
    echoed = receive(ws, "message", skip=("rooms", "presence", "typing"))
    assert reply(ws, request_id)["type"] == "response"
    data: dict[str, Any] = echoed["data"]
    return data


def close(*sessions: WebSocketTestSession) -> None:
    for ws in sessions:
        ws.close()


def test_chat_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200
    assert '<script src="/static/chat.js" defer></script>' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # no inline script: the CSP forbids it
    script = client.get("/static/chat.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    # Text from the server goes in as text, never as HTML.
    assert "textContent" in script.text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script.text
    assert client.get("/static/chat.css").status_code == 200


def test_chat_welcome_lists_the_default_rooms(connect):
    ws, welcome = connect()
    assert welcome["client_id"]
    assert welcome["rooms"] == [{"name": "general", "users": 0}, {"name": "random", "users": 0}]


def test_chat_join_creates_the_room_and_lists_it(connect):
    ada, _ = connect()
    bob, _ = connect()
    joined = join(ada, "night-owls", "ada")
    assert joined == {"room": "night-owls", "name": "ada", "history": [], "members": ["ada"]}
    # Everyone connected hears of the new room and its count.
    rooms = receive(bob, "rooms")["data"]["rooms"]
    assert {"name": "night-owls", "users": 1} in rooms
    answer = reply(bob, send(bob, "rooms"))
    assert {"name": "night-owls", "users": 1} in answer["data"]["rooms"]


def test_chat_join_sends_the_last_50_messages(connect):
    ada, _ = connect()
    join(ada, "general", "ada")
    for n in range(HISTORY + 10):
        post(ada, f"message {n}")
    bob, _ = connect()
    history = join(bob, "general", "bob")["history"]
    assert HISTORY == 50
    assert [m["text"] for m in history] == [f"message {n}" for n in range(10, 60)]
    assert {m["name"] for m in history} == {"ada"}
    assert all(m["room"] == "general" for m in history)
    assert [m["seq"] for m in history] == sorted(m["seq"] for m in history)


def test_chat_history_is_per_room(connect):
    ada, _ = connect()
    join(ada, "general", "ada")
    post(ada, "in general")
    assert join(ada, "random", "ada")["history"] == []
    post(ada, "in random")
    assert [m["text"] for m in join(ada, "general", "ada")["history"]] == ["in general"]


def test_chat_presence_joined_and_left(chat, connect):
    ada, _ = connect()
    join(ada, "general", "ada")
    bob, _ = connect()
    assert join(bob, "general", "bob")["members"] == ["ada", "bob"]

    presence = receive(ada, "presence")["data"]
    assert presence == {
        "room": "general",
        "event": "joined",
        "name": "bob",
        "members": ["ada", "bob"],
    }
    # The hub keeps the username as the connection's user data.
    names = {chat.hub.info(i).user_data["name"] for i in chat.hub.members("general")}
    assert names == {"ada", "bob"}

    close(bob)
    presence = receive(ada, "presence")["data"]
    assert presence == {"room": "general", "event": "left", "name": "bob", "members": ["ada"]}
    rooms = receive(ada, "rooms", skip=())["data"]["rooms"]
    assert {"name": "general", "users": 1} in rooms


def test_chat_leave_and_switching_rooms_announce_left(connect):
    ada, _ = connect()
    bob, _ = connect()
    join(ada, "general", "ada")
    join(bob, "general", "bob")
    receive(ada, "presence")  # bob joined

    join(bob, "random", "bob")  # switching leaves general
    presence = receive(ada, "presence")["data"]
    assert presence == {"room": "general", "event": "left", "name": "bob", "members": ["ada"]}

    join(bob, "general", "bob")
    receive(ada, "presence")  # bob joined again
    left = reply(bob, send(bob, "leave"))
    assert left["data"] == {"room": "general"}
    presence = receive(ada, "presence")["data"]
    assert presence["event"] == "left" and presence["members"] == ["ada"]
    # Out of every room: messages are refused until the next join.
    error = reply(bob, send(bob, "message", {"text": "anyone?"}))
    assert error["data"]["code"] == "not_joined"


def test_chat_typing_reaches_the_rest_of_the_room(connect):
    ada, _ = connect()
    bob, _ = connect()
    join(ada, "general", "ada")
    join(bob, "general", "bob")
    receive(ada, "presence")

    bob.send_json({"type": "typing", "data": {"typing": True}})
    assert receive(ada, "typing")["data"] == {"room": "general", "name": "bob", "typing": True}
    bob.send_json({"type": "typing", "data": {"typing": False}})
    assert receive(ada, "typing")["data"]["typing"] is False
    # Bob got no notice of his own typing: his next frame is his message.
    assert post(bob, "done")["text"] == "done"

    bad = reply(bob, send(bob, "typing", {"typing": "maybe"}))
    assert bad["data"]["code"] == "invalid_data"


def test_chat_messages_reach_their_room_only(connect):
    ada, _ = connect()
    bob, _ = connect()
    cyd, _ = connect()
    join(ada, "general", "ada")
    join(bob, "general", "bob")
    join(cyd, "random", "cyd")

    sent = post(ada, "hello general")
    assert sent["name"] == "ada" and sent["room"] == "general"
    got = receive(bob, "message", skip=("rooms", "presence"))["data"]
    assert got == sent
    # Cyd is in another room: her next message is her own.
    assert post(cyd, "hello random")["text"] == "hello random"
    # And it did not reach general: bob's next message is ada's next one.
    post(ada, "second")
    assert receive(bob, "message", skip=("rooms", "presence"))["data"]["text"] == "second"


def test_chat_empty_message_is_an_error_and_the_connection_stays(connect):
    ada, _ = connect()
    join(ada, "general", "ada")
    for text in ("", "   "):
        request_id = send(ada, "message", {"text": text})
        error = reply(ada, request_id)
        assert error == {
            "type": "error",
            "data": {"code": "invalid_data", "message": "text: Must not be blank."},
            "id": request_id,
        }
    assert post(ada, "still here")["text"] == "still here"


def test_chat_invalid_join_data_is_an_error(connect):
    ada, _ = connect()
    for data in (
        {"room": "no spaces", "name": "ada"},
        {"room": "general", "name": ""},
        {"room": "general"},
        "general",
    ):
        error = reply(ada, send(ada, "join", data))
        assert error["data"]["code"] == "invalid_data", data
    error = reply(ada, send(ada, "message", {"text": "hi"}))
    assert error["data"] == {"code": "not_joined", "message": "join a room first"}


def test_chat_rate_limit_is_an_error():
    app = create_app(rate_limit=(3, 60))
    with create_client(app) as client, ExitStack() as stack:

        def connect() -> tuple[WebSocketTestSession, dict[str, Any]]:
            ws = stack.enter_context(client.websocket_connect("/ws"))
            return ws, ws.receive_json()["data"]

        ada, _ = connect()
        join(ada, "general", "ada")
        post(ada, "one")
        post(ada, "two")
        ada.send_json({"type": "message", "data": {"text": "three"}, "id": 99})
        error = ada.receive_json()
        assert error["type"] == "error"
        assert error["data"]["code"] == "rate_limited"
        # The dropped message was not posted.
        bob, _ = connect()
        history = join(bob, "general", "bob")["history"]
        assert [m["text"] for m in history] == ["one", "two"]


def test_chat_html_stays_literal_text(connect):
    ada, _ = connect()
    bob, _ = connect()
    join(ada, "general", "<b>ada</b>")
    join(bob, "general", "bob")
    text = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    assert post(ada, text)["text"] == text
    got = receive(bob, "message", skip=("rooms", "presence"))["data"]
    assert got["text"] == text and got["name"] == "<b>ada</b>"
    cyd, _ = connect()
    assert join(cyd, "general", "cyd")["history"][0]["text"] == text


def test_chat_hub_backend_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BOCADILLO_HUB_URL", "memory://")
    app = create_app()
    assert app.settings["hub_backend"] == "memory://"
    with create_client(app) as client, client.websocket_connect("/ws") as ada:
        assert ada.receive_json()["type"] == "welcome"
        join(ada, "general", "ada")
        assert post(ada, "on the memory hub")["text"] == "on the memory hub"


def test_chat_default_settings():
    app = create_app()
    assert app.settings["hub_backend"] is None  # the in-memory hub
    assert app.settings["rate_limit"] == (20, 10.0)
