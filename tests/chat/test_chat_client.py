"""The example chat through the in-process test client: the page's flows, frame by frame.

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
from example_chat.app import HISTORY, RATE_LIMIT, create_app, room_list

_ids = itertools.count(1)
PUSHES = ("rooms", "join", "leave", "message", "typing")


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


def reply(ws: WebSocketTestSession, request_id: int, skip: tuple[str, ...] = PUSHES) -> Any:
    """The response or error answering ``request_id``; pushes of ``skip`` types are skipped."""
    while True:
        envelope = ws.receive_json()
        if envelope["type"] in ("response", "error") and envelope.get("id") == request_id:
            return envelope
        assert envelope["type"] in skip, f"unexpected {envelope}"


def enter(ws: WebSocketTestSession, room: str, name: str) -> dict[str, Any]:
    """Say hello as ``name``, then join ``room``; return the join's answer."""
    assert reply(ws, send(ws, "hello", {"name": name}))["data"] == {"name": name}
    envelope = reply(ws, send(ws, "join", room))
    assert envelope["type"] == "response", envelope
    data: dict[str, Any] = envelope["data"]
    return data


def post(ws: WebSocketTestSession, room: str, text: str) -> dict[str, Any]:
    """Send a message; return the publication the sender gets back."""
    request_id = send(ws, "message", {"room": room, "text": text})
    echoed = receive(ws, "message", skip=("rooms", "join", "leave", "typing"))
    assert reply(ws, request_id)["data"] is True
    return dict(echoed)


def test_chat_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200
    assert '<script type="module" src="/static/chat.js"></script>' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert "<script>" not in page.text  # no inline script: the CSP forbids it
    script = client.get("/static/chat.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    # On the official client, from the app itself: no CDN.
    assert 'from "/bocadillo/client.js"' in script.text
    assert client.get("/bocadillo/client.js").status_code == 200
    # Text from the server goes in as text, never as HTML; links open safely.
    assert "textContent" in script.text and 'rel = "noopener noreferrer"' in script.text
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write"):
        assert sink not in script.text
    assert client.get("/static/chat.css").status_code == 200


def test_chat_welcome_lists_the_default_rooms(connect):
    ws, welcome = connect()
    assert welcome["client_id"]
    assert welcome["rooms"] == [{"name": "general", "users": 0}, {"name": "random", "users": 0}]


def test_chat_join_answers_history_members_and_position(connect):
    ada, _ = connect()
    joined = enter(ada, "general", "ada")
    assert joined["room"] == "general" and joined["history"] == []
    assert joined["members"] == [{"id": joined["members"][0]["id"], "name": "ada"}]
    assert joined["offset"] == 0 and isinstance(joined["epoch"], str)
    sent = post(ada, "general", "hi")
    assert (sent["room"], sent["offset"], sent["epoch"]) == ("general", 1, joined["epoch"])
    assert sent["data"]["name"] == "ada" and sent["data"]["text"] == "hi"


def test_chat_join_sends_the_last_50_messages(connect):
    ada, _ = connect()
    enter(ada, "general", "ada")
    for n in range(HISTORY + 5):
        post(ada, "general", f"m{n}")
    bob, _ = connect()
    history = enter(bob, "general", "bob")["history"]
    assert [m["text"] for m in history] == [f"m{n}" for n in range(5, HISTORY + 5)]
    assert [m["offset"] for m in history] == list(range(6, HISTORY + 6))


def test_chat_history_is_per_room(connect):
    ada, _ = connect()
    enter(ada, "general", "ada")
    post(ada, "general", "in general")
    assert reply(ada, send(ada, "join", "random"))["data"]["history"] == []
    post(ada, "random", "in random")
    bob, _ = connect()
    assert [m["text"] for m in enter(bob, "random", "bob")["history"]] == ["in random"]


def test_chat_presence_join_and_leave_events(connect):
    ada, _ = connect()
    enter(ada, "general", "ada")
    bob, _ = connect()
    members = enter(bob, "general", "bob")["members"]
    assert sorted(m["name"] for m in members) == ["ada", "bob"]
    joined = receive(ada, "join")["data"]
    assert joined["room"] == "general" and joined["user"] == {"name": "bob"}
    assert reply(bob, send(bob, "leave", "general"))["data"] is True
    left = receive(ada, "leave")["data"]
    assert left["id"] == joined["id"] and left["room"] == "general"


def test_chat_a_name_is_unique_in_a_room(connect):
    ada, _ = connect()
    enter(ada, "general", "ada")
    other, _ = connect()
    reply(other, send(other, "hello", {"name": "ada"}))
    error = reply(other, send(other, "join", "general"))["data"]
    assert error == {"code": "name_taken", "message": "someone in #general is already called ada"}
    # Elsewhere the name is free, and joining one's own room again is fine.
    assert reply(other, send(other, "join", "random"))["type"] == "response"
    assert reply(ada, send(ada, "join", "general"))["type"] == "response"


def test_chat_typing_reaches_the_rest_of_the_room_and_is_not_kept(connect):
    ada, _ = connect()
    enter(ada, "general", "ada")
    bob, _ = connect()
    enter(bob, "general", "bob")
    bob.send_json({"type": "typing", "data": {"room": "general"}})
    typing = receive(ada, "typing", skip=("rooms", "join"))
    assert typing == {"type": "typing", "data": {"room": "general", "name": "bob"}}
    # Bob gets no copy: his next frame answers his next request.
    assert reply(bob, send(bob, "hello", {"name": "bob"}), skip=())["type"] == "response"
    cyd, _ = connect()
    assert enter(cyd, "general", "cyd")["history"] == []  # not a publication


def test_chat_messages_reach_their_room_only(connect):
    ada, _ = connect()
    enter(ada, "general", "ada")
    bob, _ = connect()
    enter(bob, "random", "bob")
    post(ada, "general", "for general")
    post(bob, "random", "for random")
    # Ada's next frame answers her next request: nothing came from random.
    request_id = send(ada, "message", {"room": "random", "text": "sneaky"})
    error = reply(ada, request_id, skip=("rooms",))["data"]
    assert error == {"code": "not_joined", "message": "join #random first"}


def test_chat_empty_message_is_an_error_and_the_connection_stays(connect):
    ada, _ = connect()
    enter(ada, "general", "ada")
    for text in ("", "   "):
        error = reply(ada, send(ada, "message", {"room": "general", "text": text}))
        assert error["data"]["code"] == "invalid_data"
    assert post(ada, "general", "still here")["data"]["text"] == "still here"


def test_chat_invalid_data_is_an_error(connect):
    ada, _ = connect()
    assert reply(ada, send(ada, "join", "general"))["data"]["code"] == "not_named"
    for data in ({"name": ""}, {"name": "   "}, {}, "ada", {"name": "x" * 25}):
        assert reply(ada, send(ada, "hello", data))["data"]["code"] == "invalid_data", data
    reply(ada, send(ada, "hello", {"name": "ada"}))
    for room in ("no spaces", "", {"room": "general"}, "x" * 33):
        assert reply(ada, send(ada, "join", room))["data"]["code"] == "invalid_data", room
    error = reply(ada, send(ada, "message", {"room": "general", "text": "hi"}))
    assert error["data"] == {"code": "not_joined", "message": "join #general first"}


def test_chat_rate_limit_is_an_error():
    app = create_app(rate_limit=(4, 60))
    with create_client(app) as client, ExitStack() as stack:

        def connect() -> WebSocketTestSession:
            ws: WebSocketTestSession = stack.enter_context(client.websocket_connect("/ws"))
            assert ws.receive_json()["type"] == "welcome"
            return ws

        ada = connect()
        enter(ada, "general", "ada")
        post(ada, "general", "one")
        post(ada, "general", "two")
        ada.send_json({"type": "message", "data": {"room": "general", "text": "three"}, "id": 99})
        error = ada.receive_json()
        assert error["type"] == "error"
        assert error["data"]["code"] == "rate_limited"
        # The dropped message was not posted.
        bob = connect()
        history = enter(bob, "general", "bob")["history"]
        assert [m["text"] for m in history] == ["one", "two"]


def test_chat_html_stays_literal_text(connect):
    ada, _ = connect()
    bob, _ = connect()
    enter(ada, "general", "<b>ada</b>")
    enter(bob, "general", "bob")
    text = '<script>alert(1)</script><img src=x onerror="alert(2)">'
    assert post(ada, "general", text)["data"]["text"] == text
    got = receive(bob, "message", skip=("rooms", "join"))["data"]
    assert got["text"] == text and got["name"] == "<b>ada</b>"
    cyd, _ = connect()
    assert enter(cyd, "general", "cyd")["history"][0]["text"] == text


def test_chat_room_list_has_the_rooms_somebody_is_in():
    app = create_app(rate_limit=None)
    with create_client(app) as client, ExitStack() as stack:
        sessions = []
        for n in range(3):
            ws = stack.enter_context(client.websocket_connect("/ws"))
            ws.receive_json()
            enter(ws, f"room-{n}", f"user{n}")
            sessions.append(ws)
        portal = client.portal
        assert portal is not None
        listed = portal.call(room_list, app.hub)
        assert [r["name"] for r in listed] == ["general", "random", "room-0", "room-1", "room-2"]
        assert [r["users"] for r in listed] == [0, 0, 1, 1, 1]
        for n, ws in enumerate(sessions):
            assert reply(ws, send(ws, "leave", f"room-{n}"))["data"] is True
        # Nobody is in them any more: no longer listed.
        assert [r["name"] for r in portal.call(room_list, app.hub)] == ["general", "random"]


def test_chat_hub_backend_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv("BOCADILLO_HUB_URL", "memory://")
    app = create_app()
    assert app.settings["hub_backend"] == "memory://"
    with create_client(app) as client, client.websocket_connect("/ws") as ada:
        assert ada.receive_json()["type"] == "welcome"
        enter(ada, "general", "ada")
        assert post(ada, "general", "on the memory hub")["data"]["text"] == "on the memory hub"


def test_chat_default_settings():
    app = create_app()
    assert app.settings["hub_backend"] is None  # the in-memory hub
    assert app.settings["rate_limit"] == RATE_LIMIT == (30, 10.0)
    assert app.settings["history_size"] == HISTORY and app.settings["presence_events"] is True
