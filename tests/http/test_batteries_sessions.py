"""Signed-cookie sessions: ``sessions=True`` with a secret key."""

from __future__ import annotations

import pytest

from bocadillo import App, ConfigurationError, configure, create_client


def counter_app() -> App:
    app = App()

    @app.route("/count")
    async def count(req, res):
        req.session["count"] = req.session.get("count", 0) + 1
        res.json = {"count": req.session["count"]}

    @app.route("/peek")
    async def peek(req, res):
        res.json = dict(req.session)

    return app


def test_session_persists_across_requests_through_a_cookie():
    app = configure(counter_app(), sessions=True, secret_key="not-so-secret")

    with create_client(app) as client:
        first = client.get("/count")
        second = client.get("/count")
        third = client.get("/count")

    assert first.json() == {"count": 1}
    assert "session" in first.cookies
    assert second.json() == {"count": 2}
    assert third.json() == {"count": 3}


def test_sessions_are_per_client():
    app = configure(counter_app(), sessions=True, secret_key="not-so-secret")

    with create_client(app) as alice, create_client(app) as bob:
        alice.get("/count")
        alice.get("/count")
        bob_count = bob.get("/count")
        alice_count = alice.get("/count")

    assert bob_count.json() == {"count": 1}
    assert alice_count.json() == {"count": 3}


def test_session_is_readable_in_a_websocket_route():
    app = configure(counter_app(), sessions=True, secret_key="not-so-secret")

    @app.route("/login/{user}")
    async def login(req, res, user: str):
        req.session["user"] = user

    @app.websocket_route("/ws")
    async def whoami(ws):
        await ws.send(ws.session.get("user", "anonymous"))

    with create_client(app) as client:
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "anonymous"
        client.get("/login/alice")
        with client.websocket_connect("/ws") as ws:
            assert ws.receive_text() == "alice"


def test_sessions_without_a_secret_key_raise_configuration_error():
    with pytest.raises(ConfigurationError, match="secret key"):
        configure(counter_app(), sessions=True)


def test_sessions_without_a_secret_key_fail_at_startup_for_an_unconfigured_app():
    app = App(sessions=True)

    with pytest.raises(ConfigurationError, match="secret key"), create_client(app):
        pass


def test_secret_key_environment_variable_is_used(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SECRET_KEY", "from-the-environment")
    app = configure(counter_app(), sessions=True)

    with create_client(app) as client:
        client.get("/count")
        response = client.get("/count")

    assert app.settings.secret_key == "from-the-environment"
    assert response.json() == {"count": 2}


def test_bocadillo_secret_key_wins_over_code(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BOCADILLO_SECRET_KEY", "env-key")

    app = configure(App(), secret_key="code-key")

    assert app.settings.secret_key == "env-key"


def test_session_cookie_signed_with_another_key_is_ignored():
    writer = configure(counter_app(), sessions=True, secret_key="key-one")
    reader = configure(counter_app(), sessions=True, secret_key="key-two")

    with create_client(writer) as client:
        client.get("/count")
        cookie = client.cookies["session"]
    with create_client(writer) as client:
        genuine = client.get("/peek", headers={"Cookie": f"session={cookie}"})
    with create_client(reader) as client:
        response = client.get("/peek", headers={"Cookie": f"session={cookie}"})

    assert genuine.json() == {"count": 1}

    assert response.status_code == 200
    assert response.json() == {}


def test_tampered_session_cookie_yields_an_empty_session():
    app = configure(counter_app(), sessions=True, secret_key="not-so-secret")

    with create_client(app) as client:
        client.get("/count")
        client.get("/count")
        cookie = client.cookies["session"]
        tampered = cookie[:-4] + ("AAAA" if not cookie.endswith("AAAA") else "BBBB")
        client.cookies.clear()
        genuine = client.get("/peek", headers={"Cookie": f"session={cookie}"})
        response = client.get("/peek", headers={"Cookie": f"session={tampered}"})
        restarted = client.get("/count", headers={"Cookie": f"session={tampered}"})

    assert genuine.json() == {"count": 2}
    assert response.status_code == 200
    assert response.json() == {}
    assert restarted.json() == {"count": 1}


def test_sessions_off_means_no_session_cookie():
    app = counter_app()

    @app.route("/plain")
    async def plain(req, res):
        res.json = {"has_session": "session" in req.scope}

    with create_client(app) as client:
        response = client.get("/plain")

    assert response.json() == {"has_session": False}
    assert "session" not in response.cookies


def test_session_options_dict_is_passed_to_the_middleware():
    app = configure(
        counter_app(), sessions={"session_cookie": "crumbs"}, secret_key="not-so-secret"
    )

    with create_client(app) as client:
        first = client.get("/count")
        second = client.get("/count")

    assert "crumbs" in first.cookies
    assert "session" not in first.cookies
    assert second.json() == {"count": 2}
