"""Server-sent events: ``server_event`` formatting and ``res.event_stream`` responses.

Streaming to a real client, and stopping when it goes away, is tested in
``tests/integration/test_batteries_live.py``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bocadillo import App, create_client, server_event


def test_server_event_with_data_only():
    assert server_event("hello") == "data: hello\n\n"


def test_server_event_with_every_field():
    text = server_event("payload", event="update", id=7, retry=3000)

    assert text == "id: 7\nevent: update\nretry: 3000\ndata: payload\n\n"


def test_server_event_name_is_an_alias_of_event():
    assert server_event("x", name="tick") == server_event("x", event="tick")


def test_server_event_splits_multi_line_data():
    assert server_event("line one\nline two\nline three") == (
        "data: line one\ndata: line two\ndata: line three\n\n"
    )


def test_server_event_encodes_non_string_data_as_json():
    assert server_event({"a": 1, "b": [1, 2]}) == 'data: {"a":1,"b":[1,2]}\n\n'
    assert server_event([1, "two"]) == 'data: [1,"two"]\n\n'
    assert server_event(5) == "data: 5\n\n"


def test_server_event_json_data_keeps_unicode_on_one_line():
    # U+2028 is a line break to str.splitlines(), not to server-sent events or JSON.
    assert server_event({"text": "café\u2028ok"}) == 'data: {"text":"café\u2028ok"}\n\n'


@pytest.mark.parametrize("data", [float("nan"), {"x": float("inf")}, ["\ud800"]])
def test_server_event_data_json_cannot_carry_raises_value_error(data):
    with pytest.raises(ValueError):
        server_event(data)


def test_server_event_comment_lines():
    assert server_event(comment="keep-alive") == ": keep-alive\n\n"
    assert server_event("x", comment="a\nb") == ": a\n: b\ndata: x\n\n"


def test_server_event_id_zero_is_kept():
    assert server_event("x", id=0) == "id: 0\ndata: x\n\n"


@pytest.mark.parametrize("bad_id", ["1\n2", "1\r2", "\n"])
def test_server_event_newline_in_id_raises(bad_id: str):
    with pytest.raises(ValueError, match="id"):
        server_event("x", id=bad_id)


def test_server_event_newline_in_event_name_raises():
    with pytest.raises(ValueError, match="event"):
        server_event("x", event="a\nb")


def test_event_stream_response_headers_and_body():
    app = App()

    @app.route("/events")
    async def events(req, res):
        @res.event_stream
        async def stream():
            yield server_event("first", id=1)
            yield server_event({"n": 2}, event="json", id=2)

    with create_client(app) as client:
        response = client.get("/events")

    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache"
    assert "content-length" not in response.headers
    assert response.text == 'id: 1\ndata: first\n\nid: 2\nevent: json\ndata: {"n":2}\n\n'


def test_event_stream_accepts_an_async_iterable_and_keeps_headers():
    app = App()

    async def numbers() -> AsyncIterator[str]:
        for n in range(3):
            yield server_event(str(n))

    @app.route("/numbers")
    async def view(req, res):
        res.headers["x-stream"] = "numbers"
        res.event_stream(numbers())

    with create_client(app) as client:
        response = client.get("/numbers")

    assert response.headers["x-stream"] == "numbers"
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.text == "data: 0\n\ndata: 1\n\ndata: 2\n\n"


def test_event_stream_generator_finally_runs_when_it_ends():
    app = App()
    events: list[str] = []

    @app.route("/events")
    async def view(req, res):
        @res.event_stream
        async def stream():
            try:
                yield server_event("only")
            finally:
                events.append("closed")

    with create_client(app) as client:
        response = client.get("/events")

    assert response.text == "data: only\n\n"
    assert events == ["closed"]
