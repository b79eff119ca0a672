"""The apps of Bocadillo 0.18's guide, in its own shapes, run unchanged.

Each app is written as a project on disk (a settings module, an ``asgi.py`` entry point,
``providerconf.py``...) the way the guide lays it out, then served: by the test client, or
by uvicorn with real clients for the chat room.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import websockets.sync.client

from bocadillo import LiveServer, create_client

Project = Callable[..., Path]


def load(project: Project, files: dict[str, str], module: str) -> Any:
    project(files)
    return importlib.import_module(module).app


# websockets.md: a chat room ------------------------------------------------------------------

CHAT_ROOM = {
    "chatroom/__init__.py": "",
    "chatroom/providerconf.py": """
        from bocadillo import provider


        @provider(scope="app")
        async def clients() -> set:
            return set()


        @provider(scope="app")
        async def history() -> list:
            return []
    """,
    "chatroom/app.py": """
        from pathlib import Path

        from bocadillo import App, Templates, configure

        app = App()
        templates = Templates(directory=Path(__file__).parent / "templates")


        @app.route("/")
        async def index(req, res):
            res.html = await templates.render("index.html", room="Lobby")


        @app.websocket_route("/conversation", value_type="json")
        async def converse(ws, clients, history):
            for message in history:
                await ws.send(message)
            clients.add(ws)
            try:
                async for message in ws:
                    history.append(message)
                    for client in list(clients):
                        await client.send(message)
            finally:
                clients.remove(ws)


        @app.route("/clients")
        async def client_count(req, res, clients):
            res.json = {"count": len(clients)}


        configure(app, PROVIDER_MODULES=["chatroom.providerconf"])
    """,
    "chatroom/templates/index.html": """
        <h1>{{ room }}</h1>
        <script>const ws = new WebSocket(`ws://${location.host}/conversation`);</script>
    """,
}


@pytest.mark.integration
def test_websockets_guide_chat_room(project: Project):
    app = load(project, CHAT_ROOM, "chatroom.app")
    with LiveServer(app) as server:
        page = httpx.get(server.url("/"), timeout=10)
        assert page.status_code == 200
        assert "<h1>Lobby</h1>" in page.text
        assert page.headers["content-type"].startswith("text/html")

        url = server.ws_url("/conversation")
        with websockets.sync.client.connect(url) as ada:
            ada.send('{"user": "ada", "text": "hi"}')
            assert ada.recv(timeout=10) == '{"user":"ada","text":"hi"}'
            with websockets.sync.client.connect(url) as bob:
                # A newcomer first gets the history ...
                assert bob.recv(timeout=10) == '{"user":"ada","text":"hi"}'
                # ... the echo of its own message proves it joined the room:
                bob.send('{"user": "bob", "text": "hello"}')
                assert bob.recv(timeout=10) == '{"user":"bob","text":"hello"}'
                assert ada.recv(timeout=10) == '{"user":"bob","text":"hello"}'
                assert httpx.get(server.url("/clients"), timeout=10).json() == {"count": 2}
        deadline = time.monotonic() + 10
        while httpx.get(server.url("/clients"), timeout=10).json() != {"count": 0}:
            assert time.monotonic() < deadline, "the clients were never removed"
            time.sleep(0.02)


# config.md and plugins.md: a settings module, an entry point, plugins ------------------------

CONFIGURED = {
    "configured/__init__.py": "",
    "configured/.env": "PUBLIC=true\nENABLE_AUTH=false\n",
    "configured/plugins.py": """
        from bocadillo import settings


        def use_startup_message(app):
            message = settings.get("STARTUP_MESSAGE")
            if message is None:
                return

            @app.on("startup")
            async def on_startup():
                app.state.startup_messages.append(message)


        def use_auth_routes(app):
            @app.route("/login")
            async def login(req, res):
                res.text = "login"
    """,
    "configured/settings.py": """
        from pathlib import Path

        from starlette.config import Config

        from .plugins import use_auth_routes, use_startup_message

        config = Config(Path(__file__).parent / ".env")

        ALLOWED_HOSTS = ["testserver", "example.com"]
        HSTS = config("HSTS", cast=bool, default=False)
        PUBLIC = config("PUBLIC", cast=bool, default=False)
        PLUGINS = [
            {
                use_startup_message: True,
                use_auth_routes: config("ENABLE_AUTH", cast=bool, default=False),
            },
        ]
        STARTUP_MESSAGE = "App is ready!"
        _some_var = "not a setting"
    """,
    "configured/app.py": """
        from bocadillo import App, settings

        app = App()
        app.state.startup_messages = []


        @app.route("/")
        async def index(req, res):
            if settings.get("PUBLIC", False):
                res.text = "Hello, world!"
            else:
                res.text = "Coming soon!"
    """,
    "configured/asgi.py": """
        from bocadillo import configure

        from . import settings
        from .app import app

        configure(app, settings)
    """,
}


def test_config_guide_settings_module_entry_point_and_plugins(project: Project):
    app = load(project, CONFIGURED, "configured.asgi")

    with create_client(app) as client:
        assert client.get("/").text == "Hello, world!"
        assert client.get("/login").status_code == 404  # ENABLE_AUTH is false
        assert client.get("/", headers={"host": "evil.example"}).status_code == 400
        assert app.state.startup_messages == ["App is ready!"]
    assert "_some_var" not in app.settings


# sessions.md: SESSIONS = {"secret_key": Secret(...)} ------------------------------------------

SESSIONS = {
    "todos/__init__.py": "",
    "todos/settings.py": """
        from starlette.config import Config
        from starlette.datastructures import Secret

        config = Config(environ={"SECRET_KEY": "1234"})

        SESSIONS = {"secret_key": str(config("SECRET_KEY", cast=Secret))}
    """,
    "todos/app.py": """
        from bocadillo import App, configure

        from . import settings

        app = App()
        TODOS = [{"id": n, "title": f"todo {n}"} for n in range(1, 4)]


        @app.route("/unseen-todos")
        async def unseen_todos(req, res):
            last_id = req.session.get("last_id", 0)
            unseen = [todo for todo in TODOS if todo["id"] > last_id]
            if unseen:
                req.session["last_id"] = unseen[-1]["id"]
            res.json = unseen


        @app.route("/add")
        async def add(req, res):
            TODOS.append({"id": len(TODOS) + 1, "title": "new"})


        configure(app, settings)
    """,
}


def test_sessions_guide_remembers_what_the_client_has_seen(project: Project):
    app = load(project, SESSIONS, "todos.app")

    with create_client(app) as client:
        assert [todo["id"] for todo in client.get("/unseen-todos").json()] == [1, 2, 3]
        again = client.get("/unseen-todos")
        client.get("/add")
        assert [todo["id"] for todo in client.get("/unseen-todos").json()] == [4]

    assert again.json() == []
    assert "session" in again.cookies  # the session is sent again while it holds data


# routers.md: routers in their own modules, included with a prefix --------------------------

ROUTERS = {
    "routed/__init__.py": "",
    "routed/routers/__init__.py": "",
    "routed/routers/users.py": """
        from bocadillo import Router

        router = Router()


        @router.route("/users")
        async def list_users(req, res):
            res.json = ["ada"]


        @router.route("/users/{pk}")
        async def retrieve_user(req, res, pk: int):
            res.json = {"pk": pk}
    """,
    "routed/routers/todos.py": """
        from bocadillo import Router

        router = Router()


        @router.route("/")
        async def list_todos(req, res):
            res.json = []


        @router.route("/{pk}")
        async def retrieve_todo(req, res, pk: int):
            res.json = {"todo": pk}


        @router.websocket_route("/shared")
        async def synchronize_shared_todos(ws):
            await ws.send("synced")
    """,
    "routed/app.py": """
        from bocadillo import App

        from .routers import todos, users

        app = App()
        app.include_router(users.router)
        app.include_router(todos.router, prefix="/todos")
    """,
}


def test_routers_guide(project: Project):
    app = load(project, ROUTERS, "routed.app")

    with create_client(app) as client:
        assert client.get("/users").json() == ["ada"]
        assert client.get("/users/2").json() == {"pk": 2}
        assert client.get("/todos").json() == []
        assert client.get("/todos/7").json() == {"todo": 7}
        with client.websocket_connect("/todos/shared") as ws:
            assert ws.receive_text() == "synced"


# hooks.md ------------------------------------------------------------------------------------

HOOKS = {
    "hooked.py": """
        from bocadillo import App, HTTPError, hooks

        app = App()
        seen = []


        async def validate_has_my_header(req, res, params):
            if "x-my-header" not in req.headers:
                raise HTTPError(400)


        async def show_response_content(req, res, params):
            seen.append(res.content)


        @app.route("/message")
        @hooks.before(validate_has_my_header)
        @hooks.after(show_response_content)
        async def get_message(req, res):
            res.json = {"message": "hello"}


        async def validate_has_header(req, res, params, header):
            if header not in req.headers:
                raise HTTPError(400)


        @app.route("/checked")
        @hooks.before(validate_has_header, header="x-my-header")
        async def checked(req, res):
            pass


        class RequestHasHeader:
            def __init__(self, header: str):
                self.header = header

            async def __call__(self, req, res, params):
                if self.header not in req.headers:
                    raise HTTPError(400)


        async def show_content_type(req, res, params):
            seen.append(res.headers["content-type"])


        @app.route("/")
        @hooks.after(show_content_type)
        class Message:
            @hooks.before(RequestHasHeader("x-my-header"))
            async def get(self, req, res):
                res.json = {"header": req.headers["x-my-header"]}
    """
}


def test_hooks_guide(project: Project):
    project(HOOKS)
    module = importlib.import_module("hooked")
    header = {"x-my-header": "yes"}

    with create_client(module.app) as client:
        assert client.get("/message").status_code == 400
        assert client.get("/message", headers=header).json() == {"message": "hello"}
        assert client.get("/checked").status_code == 400
        assert client.get("/checked", headers=header).status_code == 200
        assert client.get("/").status_code == 400
        assert client.get("/", headers=header).json() == {"header": "yes"}

    assert module.seen == [b'{"message":"hello"}', "application/json"]


# providers.md --------------------------------------------------------------------------------

PROVIDERS = {
    "provided/__init__.py": "",
    "provided/settings.py": 'PROVIDER_MODULES = ["provided.providerconf"]\n',
    "provided/providerconf.py": """
        from bocadillo import HTTPError, provider

        events = []


        @provider
        async def message_format():
            return "{greeting}, {who}"


        @provider
        async def hello_message_format(message_format):
            return message_format.format(greeting="Hello", who="{who}")


        @provider(scope="app")
        async def notes():
            return [{"id": 1, "text": "Groceries"}, {"id": 2, "text": "Make potatoe smash"}]


        @provider
        async def get_note(notes):
            async def _get_note(pk: int) -> dict:
                note = next((note for note in notes if note["id"] == pk), None)
                if note is None:
                    raise HTTPError(404, detail=f"Note with ID {pk} does not exist.")
                return note

            return _get_note


        @provider(scope="app")
        async def db():
            events.append("connect")
            yield {"users": ["ada"]}
            events.append("disconnect")


        @provider(autouse=True)
        async def transaction(db):
            events.append("begin")
            yield
            events.append("commit")


        @provider(name="show_hello")
        async def provide_show_hello():
            events.append("Hello, providers!")


        @provider(lazy=True)
        async def random_data():
            events.append("fetched")
            return {"answer": 42}
    """,
    "provided/app.py": """
        from bocadillo import App, configure, useprovider

        from . import settings
        from .providerconf import provide_show_hello

        app = App()


        @app.route("/hello/{who}")
        async def hello(req, res, who: str, hello_message_format):
            res.text = hello_message_format.format(who=who)


        @app.route("/notes/{pk}")
        async def retrieve_note(req, res, pk: int, get_note):
            res.json = await get_note(pk)


        @app.route("/hi")
        @useprovider(provide_show_hello)
        async def say_hi(req, res):
            res.text = "A hello message was recorded."


        @app.route("/data")
        async def get_data(req, res, random_data):
            if req.query_params.get("fetch"):
                res.json = await random_data
            else:
                res.json = None


        configure(app, settings)
    """,
}


def test_providers_guide(project: Project):
    app = load(project, PROVIDERS, "provided.app")
    events = importlib.import_module("provided.providerconf").events

    with create_client(app) as client:
        assert client.get("/hello/peeps").text == "Hello, peeps"
        assert client.get("/notes/2").json() == {"id": 2, "text": "Make potatoe smash"}
        missing = client.get("/notes/3")
        assert missing.status_code == 404
        assert missing.json()["detail"] == "Note with ID 3 does not exist."
        assert client.get("/hi").text == "A hello message was recorded."
        assert client.get("/data").json() is None
        assert "fetched" not in events  # lazy: not made unless awaited
        assert client.get("/data?fetch=1").json() == {"answer": 42}

    # Every view ran in a transaction (autouse), on one db connection (app scope).
    assert events.count("connect") == 1 and events[-1] == "disconnect"
    assert events.count("begin") == events.count("commit") == 6
    assert events.count("Hello, providers!") == 1 and events.count("fetched") == 1


# middleware.md -------------------------------------------------------------------------------

MIDDLEWARE = {
    "layered.py": """
        from bocadillo import App, HTTPError, Middleware

        app = App()
        messages = []


        class NoOpMiddleware(Middleware):
            async def before_dispatch(self, req, res):
                pass

            async def after_dispatch(self, req, res):
                pass


        class Always202Middleware(Middleware):
            async def before_dispatch(self, req, res):
                if req.url.path == "/accepted":
                    res.status_code = 202
                    return res


        class MessageMiddleware(Middleware):
            def __init__(self, inner, message: str):
                super().__init__(inner)  # Don't forget to call `super()`!
                self.message = message

            async def before_dispatch(self, req, res):
                messages.append(self.message)


        class ASGIMessageMiddleware:
            def __init__(self, app, message: str):
                self.app = app
                self.message = message

            async def __call__(self, scope, receive, send):
                messages.append(self.message)
                await self.app(scope, receive, send)


        class Closed:
            def __init__(self, app):
                self.app = app

            async def __call__(self, scope, receive, send):
                if scope["type"] == "http" and scope["path"] == "/closed":
                    raise HTTPError(503)
                await self.app(scope, receive, send)


        @app.route("/")
        async def index(req, res):
            res.text = "index"


        app.add_middleware(NoOpMiddleware)
        app.add_middleware(Always202Middleware)
        app.add_middleware(MessageMiddleware, message="Hello, middleware!")
        app.add_middleware(ASGIMessageMiddleware, message="Hello, ASGI middleware!")
        app.add_middleware(Closed)
    """
}


def test_middleware_guide(project: Project):
    project(MIDDLEWARE)
    module = importlib.import_module("layered")

    with create_client(module.app) as client:
        assert client.get("/").text == "index"
        assert client.get("/accepted").status_code == 202
        closed = client.get("/closed")

    assert closed.status_code == 503
    # The ASGI middleware also sees the lifespan; /closed stops before both.
    assert module.messages[-2:] == ["Hello, ASGI middleware!", "Hello, middleware!"]
