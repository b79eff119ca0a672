"""Providers: dependency injection by parameter name, scopes, teardown and checks.

``@provider`` registers globally, so every test uses provider names of its own and the
``restore_global_providers`` fixture (``tests/conftest.py``) puts the global registry back
afterwards.
"""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bocadillo import (
    App,
    ConfigurationError,
    HTTPError,
    before,
    create_client,
    provider,
    useprovider,
)

# Scopes -----------------------------------------------------------------------------------


def test_request_scope_makes_a_new_value_per_request():
    app = App()
    counter = itertools.count(1)

    @app.provider(name="rq_number")
    def _number():
        return next(counter)

    @app.route("/")
    async def index(req, res, rq_number):
        res.json = rq_number

    with create_client(app) as client:
        values = [client.get("/").json() for _ in range(3)]

    assert values == [1, 2, 3]


def test_request_scope_value_is_shared_within_one_request():
    app = App()
    made: list[dict[str, Any]] = []
    seen: dict[str, Any] = {}

    @provider(name="shared_ctx")
    async def _ctx():
        value: dict[str, Any] = {}
        made.append(value)
        return value

    @provider(name="shared_ctx_user")
    async def _user(shared_ctx):
        seen["provider"] = shared_ctx
        return "alice"

    def hook(req, res, params, shared_ctx):
        seen["hook"] = shared_ctx

    @app.route("/")
    @before(hook)
    async def index(req, res, shared_ctx, shared_ctx_user):
        seen["view"] = shared_ctx
        res.text = shared_ctx_user

    with create_client(app) as client:
        assert client.get("/").text == "alice"
        assert len(made) == 1
        client.get("/")

    assert len(made) == 2
    assert seen["hook"] is seen["view"] is seen["provider"] is made[1]


def test_app_scope_makes_one_value_and_tears_down_at_shutdown():
    app = App()
    events: list[str] = []
    counter = itertools.count(1)

    @provider(scope="app", name="app_scoped_db")
    async def _db() -> AsyncIterator[dict[str, int]]:
        number = next(counter)
        events.append(f"open {number}")
        yield {"connection": number}
        events.append(f"close {number}")

    @app.route("/")
    async def index(req, res, app_scoped_db):
        res.json = app_scoped_db

    with create_client(app) as client:
        first = client.get("/").json()
        second = client.get("/").json()
        assert events == ["open 1"]

    assert first == second == {"connection": 1}
    assert events == ["open 1", "close 1"]


def test_app_scoped_values_belong_to_one_app():
    counter = itertools.count(1)

    @provider(scope="app", name="per_app_value")
    def _value():
        return next(counter)

    def make_app() -> App:
        app = App()

        @app.route("/")
        async def index(req, res, per_app_value):
            res.json = per_app_value

        return app

    one, two = make_app(), make_app()
    with create_client(one) as client_one, create_client(two) as client_two:
        a = client_one.get("/").json()
        b = client_two.get("/").json()
        assert client_one.get("/").json() == a
        assert client_two.get("/").json() == b

    assert a != b


def test_request_scope_generator_teardown_runs_after_each_request():
    app = App()
    events: list[str] = []

    @provider(name="rq_teardown_conn")
    async def _conn():
        events.append("setup")
        yield "conn"
        events.append("teardown")

    @app.route("/")
    async def index(req, res, rq_teardown_conn):
        events.append(f"view {rq_teardown_conn}")

    with create_client(app) as client:
        client.get("/")
        assert events == ["setup", "view conn", "teardown"]
        client.get("/")
        assert events == ["setup", "view conn", "teardown"] * 2


def test_request_scope_teardown_runs_when_the_view_fails():
    app = App()
    events: list[str] = []

    @app.provider(name="rq_teardown_on_error")
    def _resource():
        events.append("setup")
        yield "resource"
        events.append("teardown")

    @app.route("/")
    async def index(req, res, rq_teardown_on_error):
        raise HTTPError(409)

    with create_client(app) as client:
        response = client.get("/")

    assert response.status_code == 409
    assert events == ["setup", "teardown"]


# Kinds of providers -----------------------------------------------------------------------


def test_sync_async_and_generator_providers():
    app = App()
    events: list[str] = []

    @provider(name="kind_sync")
    def _sync():
        return "sync"

    @provider(name="kind_async")
    async def _async():
        return "async"

    @provider(name="kind_gen")
    def _gen():
        yield "gen"
        events.append("gen closed")

    @provider(name="kind_agen")
    async def _agen():
        yield "agen"
        events.append("agen closed")

    @app.route("/")
    async def index(req, res, kind_sync, kind_async, kind_gen, kind_agen):
        res.json = [kind_sync, kind_async, kind_gen, kind_agen]

    with create_client(app) as client:
        response = client.get("/")

    assert response.json() == ["sync", "async", "gen", "agen"]
    # Teardown runs in reverse order of set-up.
    assert events == ["agen closed", "gen closed"]


def test_providers_can_use_providers():
    app = App()

    @provider(scope="app", name="chain_config")
    def _config():
        return {"greeting": "Hello"}

    @provider(name="chain_user")
    async def _user():
        return "anonymous"

    @provider(name="chain_message")
    async def _message(chain_config, chain_user):
        return f"{chain_config['greeting']}, {chain_user}!"

    @app.route("/")
    async def index(req, res, chain_message):
        res.text = chain_message

    with create_client(app) as client:
        response = client.get("/")

    assert response.text == "Hello, anonymous!"


def test_generator_provider_yielding_twice_is_an_error():
    app = App()

    @app.provider(name="twice")
    async def _twice():
        yield 1
        yield 2

    @app.route("/")
    async def index(req, res, twice):
        res.json = twice

    with create_client(app) as client, pytest.raises(ConfigurationError, match="exactly once"):
        client.get("/")


# Where providers are injected -------------------------------------------------------------


def test_injection_into_class_based_view_methods():
    app = App()

    @app.provider(name="cbv_store")
    def _store():
        return {"items": ["a", "b"]}

    @app.route("/items")
    class Items:
        async def get(self, req, res, cbv_store):
            res.json = cbv_store["items"]

        async def post(self, req, res):
            res.status_code = 201

    with create_client(app) as client:
        got = client.get("/items")
        posted = client.post("/items")

    assert got.json() == ["a", "b"]
    assert posted.status_code == 201


def test_injection_into_websocket_views_with_teardown_at_disconnect():
    app = App()
    events: list[str] = []

    @provider(name="ws_room")
    async def _room():
        events.append("join")
        yield "lobby"
        events.append("leave")

    @app.websocket_route("/ws/{user}")
    async def chat(ws, user: str, ws_room):
        await ws.send(f"{user} in {ws_room}")

    with create_client(app) as client:
        with client.websocket_connect("/ws/alice") as ws:
            assert ws.receive_text() == "alice in lobby"
        assert events == ["join", "leave"]


def test_injection_with_route_and_query_parameters():
    app = App()

    @app.provider(name="mixed_prefix")
    def _prefix():
        return ">"

    @app.route("/echo/{word}")
    async def echo(req, res, word: str, mixed_prefix, times: int = 1):
        res.text = mixed_prefix + word * times

    with create_client(app) as client:
        response = client.get("/echo/ab?times=2")

    assert response.text == ">abab"


def test_provider_takes_precedence_over_a_query_parameter_of_the_same_name():
    app = App()

    @app.provider(name="user")
    def _user():
        return "trusted"

    @app.route("/")
    async def index(req, res, user):
        res.text = user

    with create_client(app) as client:
        response = client.get("/?user=attacker")
        without_query = client.get("/")

    assert response.status_code == 200
    assert response.text == "trusted"
    assert without_query.text == "trusted"


def test_useprovider_runs_a_provider_without_passing_it():
    app = App()
    visits: list[str] = []

    @provider(name="count_visit_side_effect")
    async def _count_visit():
        visits.append("visit")

    @app.route("/")
    @useprovider("count_visit_side_effect")
    async def index(req, res):
        res.text = "ok"

    with create_client(app) as client:
        client.get("/")
        response = client.get("/")

    assert response.text == "ok"
    assert visits == ["visit", "visit"]


# Checks at build time ---------------------------------------------------------------------


def test_missing_provider_dependency_raises_when_the_app_is_built():
    app = App()

    @app.provider(name="needs_missing")
    def _needs(does_not_exist_anywhere):
        return 1

    @app.route("/")
    async def index(req, res, needs_missing):
        pass

    with pytest.raises(ConfigurationError, match="does_not_exist_anywhere"), create_client(app):
        pass


def test_useprovider_with_an_unknown_name_raises_when_the_app_is_built():
    app = App()

    @app.route("/")
    @useprovider("no_such_provider_here")
    async def index(req, res):
        pass

    with pytest.raises(ConfigurationError, match="no_such_provider_here"), create_client(app):
        pass


def test_circular_providers_raise_when_the_app_is_built():
    app = App()

    @provider(name="cycle_a")
    def _a(cycle_b):
        return 1

    @provider(name="cycle_b")
    def _b(cycle_a):
        return 2

    @app.route("/")
    async def index(req, res, cycle_a):
        pass

    with pytest.raises(ConfigurationError, match="circular"), create_client(app):
        pass


def test_app_scope_depending_on_request_scope_raises():
    app = App()

    @provider(name="scope_req_value")
    def _request_value():
        return 1

    @provider(scope="app", name="scope_app_value")
    def _app_value(scope_req_value):
        return scope_req_value

    @app.route("/")
    async def index(req, res, scope_app_value):
        pass

    with pytest.raises(ConfigurationError, match="request-scoped"), create_client(app):
        pass


def test_unknown_scope_raises():
    with pytest.raises(ConfigurationError, match="scope"):
        provider(scope="session", name="bad_scope")(lambda: 1)  # type: ignore[call-overload]


# App-local providers ----------------------------------------------------------------------


def test_app_provider_is_local_to_one_app():
    owner, other = App(), App()

    @owner.provider(name="local_only_token")
    def _token():
        return "from provider"

    for app in (owner, other):

        @app.route("/")
        async def index(req, res, local_only_token: str = "not injected"):
            res.text = local_only_token

    with create_client(owner) as owner_client, create_client(other) as other_client:
        injected = owner_client.get("/")
        plain = other_client.get("/")
        from_query = other_client.get("/?local_only_token=query")

    assert injected.text == "from provider"
    assert plain.text == "not injected"
    assert from_query.text == "query"
    assert "local_only_token" in owner.providers
    assert "local_only_token" not in other.providers


def test_app_provider_overrides_a_global_provider():
    app, other = App(), App()

    @provider(name="override_me")
    def _global():
        return "global"

    @app.provider(name="override_me")
    def _local():
        return "local"

    for target in (app, other):

        @target.route("/")
        async def index(req, res, override_me):
            res.text = override_me

    with create_client(app) as client, create_client(other) as other_client:
        assert client.get("/").text == "local"
        assert other_client.get("/").text == "global"


def test_provider_name_defaults_to_the_function_name():
    app = App()

    @app.provider
    def function_named_provider():
        return "by function name"

    @app.route("/")
    async def index(req, res, function_named_provider):
        res.text = function_named_provider

    with create_client(app) as client:
        assert client.get("/").text == "by function name"


def test_provider_parameter_may_be_annotated_with_any_type():
    # A provider value is never read from the query string, so its annotation (here a
    # dict, which no converter can build from a string) must not be refused.
    app = App()

    @app.provider(name="typed_settings")
    def _settings():
        return {"answer": 42}

    @app.route("/")
    async def index(req, res, typed_settings: dict[str, int]):
        res.json = typed_settings

    with create_client(app) as client:
        response = client.get("/")

    assert response.json() == {"answer": 42}
