"""AsyncAPI 3.0 documents generated from apps, validated against the official JSON Schema.

The schema comes from the ``@asyncapi/specs`` package of the npm registry (``make
pytest`` fetches it into the virtualenv); it missing is a failure, never a skip.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import jsonschema
import msgspec
import pydantic
import pytest
import typesystem

from bocadillo import App, ConfigurationError, Recipe, create_client
from bocadillo.realtime.envelope import ERROR_CODES
from example_chat.app import create_app as create_chat
from tests.docs_examples import python_examples

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = ROOT / ".venv" / "asyncapi-specs" / "package" / "schemas" / "3.0.0.json"


@pytest.fixture(scope="module")
def validator() -> Any:
    if not SCHEMA.exists():
        pytest.fail(f"{SCHEMA} is missing: run `make {SCHEMA.relative_to(ROOT)}` (it uses npm)")
    schema = json.loads(SCHEMA.read_text(encoding="utf-8"))
    return jsonschema.Draft7Validator(schema)


def check(validator: Any, document: dict[str, Any]) -> dict[str, Any]:
    """Validate ``document`` (as JSON, the way it is served) and return it."""
    document = json.loads(json.dumps(document))
    errors = sorted(validator.iter_errors(document), key=lambda e: list(e.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors[:10])
    return document


def test_the_validator_refuses_a_broken_document(validator):
    # The schema really checks something: an operation without its action is refused.
    app = App()
    app.socket("ping")(lambda: "pong")
    document = app.asyncapi()
    del document["operations"]["ws.receive.ping"]["action"]
    assert list(validator.iter_errors(json.loads(json.dumps(document))))


def test_example_chat_document(validator):
    document = check(validator, create_chat().asyncapi(version="2.0.0"))
    assert document["asyncapi"] == "3.0.0"
    assert document["info"] == {"title": "example_chat", "version": "2.0.0"}
    channel = document["channels"]["ws"]
    assert channel["address"] == "/ws"
    sent_by_clients = {
        key.removeprefix("client.") for key in channel["messages"] if key.startswith("client.")
    }
    assert sent_by_clients == {"hello", "join", "leave", "message", "typing", "resume"}
    join = channel["messages"]["client.join"]["payload"]
    assert join["properties"]["type"] == {"const": "join"}
    room = join["properties"]["data"]  # a room name: a typesystem field, not a schema
    assert room["maxLength"] == 32 and room["pattern"] == "^[A-Za-z0-9_-]+$"
    message = channel["messages"]["client.message"]["payload"]["properties"]["data"]
    assert message["properties"]["text"]["maxLength"] == 2000
    assert message["required"] == ["room", "text"]
    assert channel["messages"]["client.join"]["correlationId"] == {
        "location": "$message.payload#/id"
    }
    # Replies: a response or an error, on the same channel.
    operation = document["operations"]["ws.receive.join"]
    assert operation["action"] == "receive"
    assert operation["reply"]["messages"] == [
        {"$ref": "#/channels/ws/messages/server.response"},
        {"$ref": "#/channels/ws/messages/server.error"},
    ]
    error = channel["messages"]["server.error"]["payload"]["properties"]["data"]
    assert error["properties"]["code"]["examples"] == list(ERROR_CODES)
    # The chat has a connect handler: it sends welcome.
    assert document["operations"]["ws.send.welcome"]["action"] == "send"
    # A client resumes like anywhere else.
    assert "ws.receive.resume" in document["operations"]


@dataclasses.dataclass
class Move:
    """A move in the game."""

    x: int
    y: int
    note: str | None = None


class Profile(pydantic.BaseModel):
    name: str
    tags: list[str] = []


class Team(pydantic.BaseModel):
    leader: Profile
    members: list[Profile]


class Score(msgspec.Struct):
    player: str
    points: int


def full_app() -> App:
    """Every kind of schema, every kind of endpoint, server messages and presence."""
    app = App(
        "game",
        presence_events=True,
        history_size=10,
        shutdown_message={"reason": "restart"},
    )

    @app.socket("move", schema=Move)
    async def move(data: Move) -> dict[str, int]:
        """Play a move.

        The reply says the turn number."""
        return {"turn": 1}

    @app.socket("team", schema=Team)
    async def team(data: Team) -> None: ...

    @app.socket("score", schema=Score)
    async def score(data: Score) -> None: ...

    @app.socket("count", schema=typesystem.Integer(minimum=0))
    async def count(data: int) -> int:
        return data

    @app.socket("ping")
    async def ping() -> str:
        return "pong"

    @app.socket("hello", endpoint="/admin/ws")
    async def hello() -> str:
        return "hi"

    app.server_message("scored", schema=Score, description="A player scored.", room=True)
    app.server_message("confirm", schema=typesystem.String(), request=True)

    @app.websocket_route("/rooms/{room}/feed", value_type="json")
    async def feed(ws, room: str, since: int = 0, tags: list[str] | None = None):
        """The room's feed."""

    @app.websocket_route("/raw", receive_type="bytes")
    async def raw(ws):
        pass

    recipe = Recipe("extra")

    @recipe.websocket_route("/echo")
    async def echo(ws, token: str):
        pass

    app.include(recipe)
    return app


def test_every_schema_kind_and_endpoint(validator):
    document = check(
        validator,
        full_app().asyncapi(
            servers={
                "local": {"host": "localhost:8000", "protocol": "ws"},
            }
        ),
    )
    schemas = document["components"]["schemas"]
    assert schemas["Move"]["properties"]["x"] == {"type": "integer"}
    assert schemas["Move"]["required"] == ["x", "y"]
    assert schemas["Move"]["description"] == "A move in the game."
    assert {"Team", "Profile", "Score"} <= set(schemas)
    channel = document["channels"]["ws"]
    messages = channel["messages"]
    assert messages["client.move"]["payload"]["properties"]["data"] == {
        "$ref": "#/components/schemas/Move"
    }
    assert messages["client.move"]["summary"] == "Play a move."
    assert messages["client.team"]["payload"]["properties"]["data"] == {
        "$ref": "#/components/schemas/Team"
    }
    assert messages["client.count"]["payload"]["properties"]["data"] == {
        "type": "integer",
        "minimum": 0,
    }
    assert messages["client.ping"]["payload"]["properties"]["data"] == {}
    # Presence, shutdown and the declared server messages.
    for kind in ("join", "leave", "shutdown", "scored", "confirm"):
        assert document["operations"][f"ws.send.{kind}"]["action"] == "send"
    scored = messages["server.scored"]["payload"]["properties"]
    assert {"room", "offset", "epoch"} <= set(scored)
    assert messages["server.scored"]["summary"] == "A player scored."
    confirm = document["operations"]["ws.send.confirm"]
    assert confirm["reply"]["messages"][0] == {"$ref": "#/channels/ws/messages/client.response"}
    assert messages["server.confirm"]["payload"]["required"] == ["type", "id"]
    # Another message-type endpoint.
    admin = document["channels"]["admin_ws"]
    assert admin["address"] == "/admin/ws"
    assert "client.hello" in admin["messages"]
    # Plain WebSocket routes: path parameters, query parameters in the ws binding.
    feed = document["channels"]["rooms_room_feed"]
    assert feed["address"] == "/rooms/{room}/feed"
    assert set(feed["parameters"]) == {"room"}
    assert feed["bindings"]["ws"]["query"] == {
        "type": "object",
        "properties": {
            "since": {"type": "integer"},
            "tags": {"type": "array", "items": {"type": "string"}},
        },
    }
    assert feed["description"] == "The room's feed."
    raw = document["channels"]["raw"]["messages"]
    assert raw["frame.in"]["contentType"] == "application/octet-stream"
    assert raw["frame.out"]["contentType"] == "text/plain"
    echo = document["channels"]["extra_echo"]  # in a recipe: under its prefix
    assert echo["address"] == "/extra/echo"
    assert echo["bindings"]["ws"]["query"]["required"] == ["token"]
    assert document["servers"]["local"]["protocol"] == "ws"


def test_an_app_without_websockets_has_an_empty_document(validator):
    document = check(validator, App("empty").asyncapi())
    assert document["channels"] == {} and document["operations"] == {}


def test_server_message_declared_twice_or_with_a_bad_schema_is_refused():
    app = App()
    app.server_message("news")
    with pytest.raises(ConfigurationError):
        app.server_message("news")
    with pytest.raises(ConfigurationError):
        app.server_message("other", schema=42)


def test_asyncapi_routes_are_opt_in_and_serve_json_and_html(validator):
    assert {getattr(r, "name", None) for r in App().router.routes}.isdisjoint(
        {"asyncapi", "asyncapi_page"}
    )
    app = full_app()
    app.settings["asyncapi_endpoint"] = "/asyncapi.json"
    app.settings["asyncapi_page"] = "/asyncapi"
    with create_client(app) as client:
        answer = client.get("/asyncapi.json")
        assert answer.status_code == 200
        assert answer.headers["content-type"] == "application/json"
        check(validator, answer.json())
        assert answer.json() == json.loads(json.dumps(app.asyncapi()))
        page = client.get("/asyncapi")
        assert page.status_code == 200
        assert page.headers["content-type"].startswith("text/html")
        text = page.text
        assert "<h2><code>/rooms/{room}/feed</code></h2>" in text
        assert "A player scored." in text
        assert "Answered with: response, error" in text
        # Self-contained: nothing fetched from elsewhere.
        assert "<script" not in text and "http://" not in text and "https://" not in text


def test_the_realtime_guide_example_runs_and_its_document_is_valid(validator):
    """The example of docs/realtime.md's "AsyncAPI" section (the first block after its heading)."""
    guide = (ROOT / "docs" / "realtime.md").read_text(encoding="utf-8")
    section = guide.index("## AsyncAPI")
    (source, line), *_ = [
        (p.values[0], p.values[1])
        for p in python_examples("realtime.md")
        if guide.count("\n", 0, section) < p.values[1]
    ]
    namespace: dict[str, Any] = {}
    exec(compile("\n" * line + source, "docs/realtime.md", "exec", dont_inherit=True), namespace)
    check(validator, namespace["document"])
