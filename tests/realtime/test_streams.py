"""Room history, resume, presence and server-to-client requests, in-process."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bocadillo import (
    App,
    ConfigurationError,
    InvalidState,
    JoinRefused,
    RequestFailed,
    RequestTimeout,
    create_client,
)
from bocadillo.realtime.history import Position
from tests.realtime.helpers import awaited, on_loop


def history_app(**settings: Any) -> App:
    """``/ws`` with ``enter`` (join a room) and ``say`` (publish to it); rooms named
    ``news*`` keep 5 publications."""
    app = App(**settings)
    app.room_options("news*", history_size=5)

    @app.socket("enter")
    def enter(ws, data):
        ws.join(data)
        return "ok"

    @app.socket("say")
    def say(hub, data):
        return hub.broadcast(data["text"], type="said", room=data["room"])

    return app


def current(client, app: App, room: str) -> Position:
    position = awaited(client, app.hub.position, room)
    assert position is not None
    return position


def position_of(message: dict[str, Any]) -> dict[str, Any]:
    return {"epoch": message["epoch"], "offset": message["offset"]}


def test_publications_to_a_room_with_history_carry_their_position():
    app = history_app()
    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "enter", "data": "news", "id": 1})
        assert ws.receive_json()["data"] == "ok"
        ws.send_json({"type": "say", "data": {"room": "news", "text": "hello"}, "id": 2})
        published = ws.receive_json()
        assert published == {
            "type": "said",
            "data": "hello",
            "room": "news",
            "offset": 1,
            "epoch": published["epoch"],
        }
        assert ws.receive_json() == {"type": "response", "data": 1, "id": 2}
        # A room without history: no position.
        ws.send_json({"type": "enter", "data": "lobby", "id": 3})
        ws.receive_json()
        ws.send_json({"type": "say", "data": {"room": "lobby", "text": "hi"}, "id": 4})
        assert ws.receive_json() == {"type": "said", "data": "hi"}
        history = awaited(client, app.hub.history, "news")
        assert [(p.offset, p.data, p.type) for p in history] == [(1, "hello", "said")]


def test_resume_replays_exactly_what_was_missed_then_new_publications():
    app = history_app()
    with create_client(app) as client:
        with client.websocket_connect("/ws") as reader:
            reader.send_json({"type": "enter", "data": "news", "id": 1})
            reader.receive_json()
            for n in range(2):
                on_loop(client, app.hub.broadcast, f"m{n}", type="said", room="news")
            last = position_of([reader.receive_json() for _ in range(2)][-1])
        for n in range(2, 5):  # missed while away
            on_loop(client, app.hub.broadcast, f"m{n}", type="said", room="news")
        with client.websocket_connect("/ws") as back:
            back.send_json({"type": "resume", "data": {"rooms": {"news": last}}, "id": 9})
            replayed = [back.receive_json() for _ in range(3)]
            assert [(m["data"], m["offset"]) for m in replayed] == [("m2", 3), ("m3", 4), ("m4", 5)]
            assert back.receive_json() == {
                "type": "response",
                "data": {
                    "rooms": {"news": {"recovered": True, "epoch": last["epoch"], "offset": 5}}
                },
                "id": 9,
            }
            on_loop(client, app.hub.broadcast, "m5", type="said", room="news")
            assert back.receive_json()["data"] == "m5"  # rejoined: new ones follow


@pytest.mark.parametrize(
    ("position", "why"),
    [
        ({"epoch": "another", "offset": 1}, "another epoch"),
        ({"epoch": None, "offset": 0}, "a gap longer than the history"),
    ],
)
def test_resume_that_cannot_recover_says_so_with_the_current_position(position, why):
    app = history_app()
    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        for n in range(8):  # more than the 5 kept
            on_loop(client, app.hub.broadcast, n, room="news")
        now = current(client, app, "news")
        if position["epoch"] is None:
            position = {"epoch": now.epoch, "offset": 1}
        ws.send_json({"type": "resume", "data": {"rooms": {"news": position}}, "id": 1})
        reply = ws.receive_json()  # nothing replayed: the reply comes first
        assert reply["data"]["rooms"]["news"] == {
            "recovered": False,
            "epoch": now.epoch,
            "offset": 8,
        }, why
        assert on_loop(client, app.hub.local_members, "news") == {reply_id(client, app)}


def reply_id(client, app: App) -> str:
    ids = on_loop(client, lambda: app.hub.local_ids)
    assert len(ids) == 1
    return ids[0]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        ("news", "invalid_data"),
        ({"rooms": ["news"]}, "invalid_data"),
        ({"rooms": {"news": {"epoch": 5, "offset": 1}}}, "invalid_data"),
        ({"rooms": {"news": {"epoch": "x" * 65, "offset": 1}}}, "invalid_data"),
        ({"rooms": {"news": {"epoch": "e", "offset": -1}}}, "invalid_data"),
        ({"rooms": {"news": {"epoch": "e", "offset": True}}}, "invalid_data"),
        ({"rooms": {"bad\nname": None}}, "invalid_data"),
        ({"rooms": {"x" * 201: None}}, "invalid_data"),
        ({"rooms": {f"r{n}": None for n in range(101)}}, "invalid_data"),
        ({"rooms": {"secret": None, "news": None}}, "forbidden"),
    ],
)
def test_bad_resume_requests_get_an_error_and_join_nothing(data, code):
    app = history_app()

    @app.can_join
    def can_join(ws, room):
        return room != "secret"

    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "resume", "data": data, "id": 7})
        reply = ws.receive_json()
        assert reply["type"] == "error" and reply["id"] == 7
        assert reply["data"]["code"] == code
        assert on_loop(client, lambda: app.hub.local_rooms) == frozenset()


def test_resume_with_an_offset_ahead_of_the_stream_is_refused():
    app = history_app()
    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        on_loop(client, app.hub.broadcast, "one", room="news")
        epoch = current(client, app, "news").epoch
        rooms = {"news": {"epoch": epoch, "offset": 2}, "lobby": None}
        ws.send_json({"type": "resume", "data": {"rooms": rooms}, "id": 1})
        reply = ws.receive_json()
        assert reply["data"]["code"] == "invalid_data"
        assert "ahead" in reply["data"]["message"]
        assert on_loop(client, lambda: app.hub.local_rooms) == frozenset()


def test_async_can_join_and_rooms_without_history():
    app = history_app()

    @app.can_join
    async def can_join(ws, room):
        await asyncio.sleep(0)
        return True

    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "resume", "data": {"rooms": {"lobby": None}}, "id": 1})
        assert ws.receive_json()["data"] == {"rooms": {"lobby": {"recovered": False}}}
        assert on_loop(client, lambda: app.hub.local_rooms) == frozenset({"lobby"})


def test_resume_and_response_are_built_in_types():
    app = App()
    for kind in ("resume", "response", "error"):
        with pytest.raises(ConfigurationError, match="built in"):
            app.socket(kind)(lambda: None)


def test_ws_resume_helper_for_websocket_route_views():
    app = App(history_size=10)

    @app.can_join
    def can_join(ws, room):
        return room != "secret"

    @app.websocket_route("/feed", value_type="json")
    async def feed(ws):
        position = await ws.receive()
        recoveries = await ws.resume({"news": (position["epoch"], position["offset"])})
        recovery = recoveries["news"]
        await ws.send({"recovered": recovery.recovered, **recovery.position.as_dict()})
        try:
            await ws.resume({"secret": None})
        except JoinRefused as exc:
            await ws.send({"refused": exc.room})
        async for _ in ws:
            pass

    with create_client(app) as client, client.websocket_connect("/feed") as ws:
        for n in range(3):
            on_loop(client, app.hub.broadcast, {"n": n}, room="news")
        epoch = current(client, app, "news").epoch
        ws.send_json({"epoch": epoch, "offset": 1})
        assert [ws.receive_json() for _ in range(2)] == [{"n": 1}, {"n": 2}]
        assert ws.receive_json() == {"recovered": True, "epoch": epoch, "offset": 3}
        assert ws.receive_json() == {"refused": "secret"}


def test_presence_lists_users_and_counts_distinct_ones():
    app = App()
    app.room_options("lobby", presence_events=True)

    @app.socket("hello")
    def hello(ws, data):
        ws.user = data
        ws.join("lobby")
        return "in"

    with create_client(app) as client:
        with client.websocket_connect("/ws") as a, client.websocket_connect("/ws") as b:
            a.send_json({"type": "hello", "data": {"name": "ann"}, "id": 1})
            assert a.receive_json()["data"] == "in"  # a is in before b comes
            b.send_json({"type": "hello", "data": {"name": "ann"}, "id": 1})
            assert b.receive_json()["data"] == "in"
            joined = a.receive_json()  # b's join, seen by a
            assert joined["type"] == "join"
            assert joined["data"]["user"] == {"name": "ann"}
            presence = awaited(client, app.hub.presence, "lobby")
            assert sorted(p["user"]["name"] for p in presence) == ["ann", "ann"]
            stats = awaited(client, app.hub.presence_stats, "lobby")
            assert stats == {"connections": 2, "users": 1}
            assert joined["data"]["id"] in {p["id"] for p in presence}


def test_leave_events_reach_the_remaining_members():
    app = App()
    app.room_options("lobby", presence_events=True)

    @app.socket("hello")
    def hello(ws, data):
        ws.user = data
        ws.join("lobby")
        return "in"

    with create_client(app) as client, client.websocket_connect("/ws") as stays:
        stays.send_json({"type": "hello", "data": "ann", "id": 1})
        assert stays.receive_json()["data"] == "in"
        with client.websocket_connect("/ws") as goes:
            goes.send_json({"type": "hello", "data": "bob", "id": 1})
            assert goes.receive_json()["data"] == "in"
            assert stays.receive_json()["type"] == "join"
        left = stays.receive_json()
        assert left["type"] == "leave"
        assert left["data"]["user"] == "bob" and left["data"]["room"] == "lobby"


def request_app() -> tuple[App, list[Any]]:
    app = App()
    results: list[Any] = []
    tasks: set[asyncio.Task[None]] = set()  # referenced until the test ends

    @app.socket("ask")
    async def ask(ws, data):
        async def asking() -> None:
            try:
                results.append(await ws.request("question", data["q"], timeout=data["t"]))
            except (RequestTimeout, RequestFailed) as exc:
                results.append(type(exc).__name__)

        tasks.add(asyncio.get_running_loop().create_task(asking()))

    @app.socket("ask_inline")
    async def ask_inline(ws):
        try:
            await ws.request("question", 1)
        except InvalidState as exc:
            return str(exc)

    return app, results


def test_server_to_client_request_round_trip_and_a_second_reply_is_ignored():
    app, results = request_app()
    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "ask", "data": {"q": "2+2?", "t": 5}})
        question = ws.receive_json()
        assert question["type"] == "question" and question["data"] == "2+2?"
        ws.send_json({"type": "response", "data": 4, "id": question["id"]})
        ws.send_json({"type": "response", "data": 5, "id": question["id"]})  # twice
        ws.send_json({"type": "ask_inline", "id": 1})  # a sentinel: handled after both
        assert "another task" in ws.receive_json()["data"]
        assert results == [4]
        assert on_loop(client, lambda: app.hub.stats()["unknown_replies"]) == 1


def test_server_to_client_request_timeout_and_error_reply():
    app, results = request_app()
    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "ask", "data": {"q": "silence", "t": 0.05}})
        ws.receive_json()  # never answered
        ws.send_json({"type": "ask", "data": {"q": "fail", "t": 5}})
        question = ws.receive_json()
        ws.send_json(
            {"type": "error", "data": {"code": "nope", "message": "no"}, "id": question["id"]}
        )
        ws.send_json({"type": "ask_inline", "id": 1})
        ws.receive_json()
        awaited(client, _until, lambda: len(results) == 2)
        assert sorted(results) == ["RequestFailed", "RequestTimeout"]


async def _until(check) -> None:
    for _ in range(500):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("not reached")


def test_room_names_are_checked():
    app = App()
    errors: list[str] = []

    @app.websocket_route("/names")
    async def names(ws):
        for room in (5, None, "", "x" * 201, "a\nb", "tab\there"):
            try:
                ws.join(room)
            except (TypeError, ValueError) as exc:
                errors.append("TypeError" if isinstance(exc, TypeError) else type(exc).__name__)
        ws.join("fine name")
        await ws.send(",".join(sorted(ws.rooms)))

    with create_client(app) as client, client.websocket_connect("/names") as ws:
        assert ws.receive_text() == "fine name"
    assert (
        errors
        == ["TypeError", "TypeError", "InvalidArgument", "InvalidArgument"]
        + ["InvalidArgument"] * 2
    )


def test_a_bad_room_name_from_a_client_answers_invalid_data():
    app = App()

    @app.socket("join")
    def join(ws, data):
        ws.join(data)
        return "ok"

    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        for n, name in enumerate((5, None, ["a"], "", "x" * 201, "a\nb")):
            ws.send_json({"type": "join", "data": name, "id": n})
            reply = ws.receive_json()
            assert reply["type"] == "error" and reply["id"] == n
            assert reply["data"]["code"] == "invalid_data", reply
        ws.send_json({"type": "join", "data": "fine", "id": "last"})
        assert ws.receive_json()["data"] == "ok"
    assert app.hub.counters.errors == 0


def test_max_rooms_per_connection():
    app = App(max_rooms_per_connection=2)

    @app.socket("join")
    def join(ws, data):
        ws.join(data)
        return "ok"

    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        for n, expected in ((1, "ok"), (2, "ok")):
            ws.send_json({"type": "join", "data": f"r{n}", "id": n})
            assert ws.receive_json()["data"] == expected
        ws.send_json({"type": "join", "data": "r3", "id": 3})
        assert ws.receive_json()["data"]["code"] == "too_many_rooms"
