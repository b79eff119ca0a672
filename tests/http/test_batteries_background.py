"""Background tasks: ``res.background(func, *args)`` runs after the response is sent.

A real client that receives the response before the task ends is tested in
``tests/integration/test_batteries_live.py``.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator

from bocadillo import App, create_client
from bocadillo.types import ASGIApp, Message, Receive, Scope, Send


class RecordSent:
    """Records ``"response sent"`` when the last body message goes out."""

    def __init__(self, app: ASGIApp, *, events: list[str]) -> None:
        self.app = app
        self.events = events

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_wrapper(message: Message) -> None:
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body"):
                self.events.append("response sent")

        await self.app(scope, receive, send_wrapper)


def test_sync_background_task_runs_after_the_response_in_a_thread():
    app = App()
    events: list[str] = []
    threads: list[threading.Thread] = []
    app.add_middleware(RecordSent, events=events)

    def send_email(to: str, *, subject: str) -> None:
        threads.append(threading.current_thread())
        events.append(f"email to {to}: {subject}")

    @app.route("/signup")
    async def signup(req, res):
        res.background(send_email, "alice@example.com", subject="Welcome")
        events.append("view")
        res.text = "signed up"

    with create_client(app) as client:
        response = client.get("/signup")

    assert response.text == "signed up"
    assert events == ["view", "response sent", "email to alice@example.com: Welcome"]
    assert threads[0] is not threading.main_thread()


def test_async_background_task_used_as_a_decorator():
    app = App()
    events: list[str] = []
    app.add_middleware(RecordSent, events=events)

    @app.route("/")
    async def index(req, res):
        @res.background
        async def cleanup():
            events.append("cleanup")

        res.json = {"ok": True}

    with create_client(app) as client:
        response = client.get("/")

    assert response.json() == {"ok": True}
    assert events == ["response sent", "cleanup"]


def test_several_background_tasks_run_in_order():
    app = App()
    events: list[str] = []
    app.add_middleware(RecordSent, events=events)

    async def task(name: str) -> None:
        events.append(name)

    def sync_task(name: str) -> None:
        events.append(name)

    @app.route("/")
    async def index(req, res):
        res.background(task, "one")
        res.background(sync_task, "two")
        res.background(task, "three")

    with create_client(app) as client:
        client.get("/")

    assert events == ["response sent", "one", "two", "three"]


def test_background_tasks_run_with_streamed_and_cookie_responses():
    app = App()
    events: list[str] = []
    app.add_middleware(RecordSent, events=events)

    async def note(what: str) -> None:
        events.append(what)

    @app.route("/stream")
    async def stream(req, res):
        async def chunks() -> AsyncIterator[str]:
            yield "a"
            yield "b"

        res.stream(chunks())
        res.background(note, "after stream")

    @app.route("/cookie")
    async def cookie(req, res):
        res.set_cookie("flavour", "chorizo")
        res.text = "cookie set"
        res.background(note, "after cookie")

    with create_client(app) as client:
        streamed = client.get("/stream")
        with_cookie = client.get("/cookie")

    assert streamed.text == "ab"
    assert with_cookie.cookies["flavour"] == "chorizo"
    assert events == ["response sent", "after stream", "response sent", "after cookie"]


def test_background_task_runs_after_an_event_stream():
    from bocadillo import server_event

    app = App()
    events: list[str] = []
    app.add_middleware(RecordSent, events=events)

    @app.route("/events")
    async def view(req, res):
        @res.event_stream
        async def stream():
            yield server_event("tick")

        res.background(events.append, "after events")

    with create_client(app) as client:
        response = client.get("/events")

    assert response.text == "data: tick\n\n"
    assert events == ["response sent", "after events"]
