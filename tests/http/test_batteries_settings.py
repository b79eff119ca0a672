"""Settings: ``configure``, ``App(**settings)``, environment overrides, and the built-in
middleware they switch on (CORS, GZip, HSTS, allowed hosts)."""

from __future__ import annotations

import types

import pytest
from starlette.testclient import WebSocketDenialResponse

from bocadillo import App, ConfigurationError, Settings, configure, create_client, settings

PREFLIGHT = {
    "Origin": "https://client.example",
    "Access-Control-Request-Method": "POST",
}


def text_app(body: str = "hello", **app_settings) -> App:
    app = App(**app_settings)

    @app.route("/", methods=["GET", "POST"])
    async def index(req, res):
        res.text = body

    return app


# CORS -------------------------------------------------------------------------------------


def test_cors_off_by_default_answers_no_preflight():
    app = text_app()

    with create_client(app) as client:
        response = client.options("/", headers=PREFLIGHT)

    assert response.status_code == 405
    assert "access-control-allow-origin" not in response.headers


def test_cors_true_has_restrictive_defaults():
    # No origin is allowed until listed, GET only, no header (Bocadillo 0.18's defaults).
    app = configure(text_app(), cors=True)
    get_preflight = {"Origin": "https://client.example", "Access-Control-Request-Method": "GET"}

    with create_client(app) as client:
        preflight = client.options("/", headers=get_preflight)
        simple = client.get("/", headers={"Origin": "https://client.example"})

    assert preflight.status_code == 400
    assert "access-control-allow-origin" not in preflight.headers
    assert simple.text == "hello"
    assert "access-control-allow-origin" not in simple.headers


def test_cors_dict_opens_what_it_lists():
    app = configure(
        text_app(),
        cors={"allow_origins": ["*"], "allow_methods": ["GET", "POST"], "allow_headers": ["*"]},
    )

    with create_client(app) as client:
        preflight = client.options("/", headers=PREFLIGHT)
        simple = client.get("/", headers={"Origin": "https://client.example"})

    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "*"
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert simple.text == "hello"
    assert simple.headers["access-control-allow-origin"] == "*"


def test_cors_dict_restricts_origins():
    app = configure(text_app(), cors={"allow_origins": ["https://good.example"]})

    with create_client(app) as client:
        good = client.options(
            "/",
            headers={"Origin": "https://good.example", "Access-Control-Request-Method": "GET"},
        )
        foreign_preflight = client.options(
            "/",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"},
        )
        foreign_get = client.get("/", headers={"Origin": "https://evil.example"})

    assert good.status_code == 200
    assert good.headers["access-control-allow-origin"] == "https://good.example"
    assert foreign_preflight.status_code == 400
    assert "access-control-allow-origin" not in foreign_preflight.headers
    assert foreign_get.text == "hello"
    assert "access-control-allow-origin" not in foreign_get.headers


# GZip -------------------------------------------------------------------------------------


def test_gzip_compresses_bodies_above_the_minimum_size():
    large = "bocadillo " * 100
    app = App()

    @app.route("/large")
    async def large_view(req, res):
        res.text = large

    @app.route("/small")
    async def small_view(req, res):
        res.text = "tiny"

    configure(app, gzip=True, gzip_min_size=500)

    with create_client(app) as client:
        compressed = client.get("/large", headers={"Accept-Encoding": "gzip"})
        small = client.get("/small", headers={"Accept-Encoding": "gzip"})
        plain = client.get("/large", headers={"Accept-Encoding": "identity"})

    assert compressed.headers["content-encoding"] == "gzip"
    assert int(compressed.headers["content-length"]) < len(large)
    assert compressed.text == large  # the client decompressed it
    assert "content-encoding" not in small.headers
    assert small.text == "tiny"
    assert "content-encoding" not in plain.headers
    assert plain.text == large


def test_gzip_off_by_default():
    app = text_app("x" * 5000)

    with create_client(app) as client:
        response = client.get("/", headers={"Accept-Encoding": "gzip"})

    assert "content-encoding" not in response.headers


def test_gzip_min_size_applies_to_the_default_threshold():
    # 1024 bytes is the default minimum: 1000 bytes stay plain, 2000 are compressed.
    app = App(gzip=True)

    @app.route("/{size}")
    async def sized(req, res, size: int):
        res.text = "a" * size

    with create_client(app) as client:
        below = client.get("/1000", headers={"Accept-Encoding": "gzip"})
        above = client.get("/2000", headers={"Accept-Encoding": "gzip"})

    assert app.settings.gzip_min_size == 1024
    assert "content-encoding" not in below.headers
    assert above.headers["content-encoding"] == "gzip"


# HSTS -------------------------------------------------------------------------------------


def test_hsts_redirects_plain_http_to_https():
    app = configure(text_app(), hsts=True)

    with create_client(app) as client:
        response = client.get("/page?x=1", follow_redirects=False)

    assert response.status_code in (301, 307, 308)
    assert response.headers["location"] == "https://testserver/page?x=1"
    assert "strict-transport-security" not in response.headers


def test_hsts_sets_the_header_over_https():
    app = configure(text_app(), hsts=True)

    with create_client(app, base_url="https://testserver") as client:
        response = client.get("/", follow_redirects=False)

    assert response.status_code == 200
    assert response.text == "hello"
    assert "max-age=" in response.headers["strict-transport-security"]


def test_hsts_off_by_default_serves_plain_http():
    app = text_app()

    with create_client(app) as client:
        response = client.get("/", follow_redirects=False)

    assert response.status_code == 200
    assert "strict-transport-security" not in response.headers


# Allowed hosts ----------------------------------------------------------------------------


def test_allowed_hosts_refuses_other_hosts():
    app = configure(text_app(), allowed_hosts=["example.com"])

    with create_client(app, base_url="http://example.com") as client:
        allowed = client.get("/")
        refused = client.get("/", headers={"Host": "attacker.example"})

    assert allowed.status_code == 200
    assert allowed.text == "hello"
    assert refused.status_code == 400
    assert "hello" not in refused.text


def test_allowed_hosts_default_accepts_any_host():
    app = text_app()

    with create_client(app, base_url="http://anything.example") as client:
        response = client.get("/")

    assert app.settings.allowed_hosts == ["*"]
    assert response.status_code == 200


# Environment overrides --------------------------------------------------------------------


def test_environment_variable_wins_over_code(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BOCADILLO_GZIP", "true")
    monkeypatch.setenv("BOCADILLO_GZIP_MIN_SIZE", "10")
    app = configure(text_app("z" * 100), gzip=False, gzip_min_size=100_000)

    with create_client(app) as client:
        response = client.get("/", headers={"Accept-Encoding": "gzip"})

    assert app.settings.gzip is True
    assert app.settings.gzip_min_size == 10
    assert response.headers["content-encoding"] == "gzip"


def test_environment_variable_can_switch_a_setting_off(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BOCADILLO_CORS", "false")
    app = configure(text_app(), cors=True)

    with create_client(app) as client:
        response = client.options("/", headers=PREFLIGHT)

    assert app.settings.cors is False
    assert "access-control-allow-origin" not in response.headers


def test_environment_allowed_hosts_is_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BOCADILLO_ALLOWED_HOSTS", "a.example, b.example")
    app = text_app()

    with create_client(app, base_url="http://b.example") as client:
        allowed = client.get("/")
        refused = client.get("/", headers={"Host": "c.example"})

    assert app.settings.allowed_hosts == ["a.example", "b.example"]
    assert allowed.status_code == 200
    assert refused.status_code == 400


def test_environment_cors_accepts_json_options(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BOCADILLO_CORS", '{"allow_origins": ["https://good.example"]}')
    app = text_app()

    with create_client(app) as client:
        good = client.get("/", headers={"Origin": "https://good.example"})
        foreign = client.get("/", headers={"Origin": "https://evil.example"})

    assert good.headers["access-control-allow-origin"] == "https://good.example"
    assert "access-control-allow-origin" not in foreign.headers


def test_environment_applies_to_an_app_never_configured(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("BOCADILLO_HSTS", "1")
    app = text_app()

    with create_client(app) as client:
        response = client.get("/", follow_redirects=False)

    assert response.status_code in (301, 307, 308)
    assert response.headers["location"].startswith("https://")


@pytest.mark.parametrize(
    ("name", "raw"), [("BOCADILLO_GZIP", "maybe"), ("BOCADILLO_GZIP_MIN_SIZE", "big")]
)
def test_invalid_environment_value_raises_configuration_error(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str
):
    monkeypatch.setenv(name, raw)

    with pytest.raises(ConfigurationError, match=name):
        configure(App())


@pytest.mark.parametrize(
    ("name", "raw"),
    [
        ("BOCADILLO_CORS", '{"allow_origins": ['),
        ("BOCADILLO_SESSIONS", '{"max_age": NaN}'),
        ("BOCADILLO_ALLOWED_HOSTS", '["a.example",]'),
    ],
)
def test_environment_value_that_is_not_json_raises_configuration_error(
    monkeypatch: pytest.MonkeyPatch, name: str, raw: str
):
    monkeypatch.setenv(name, raw)

    with pytest.raises(ConfigurationError, match=f"{name}=.* is not JSON"):
        configure(App())


# The settings objects ---------------------------------------------------------------------


def test_app_settings_reads_as_attributes_and_items():
    app = configure(App(), gzip=True, my_option="mine")

    assert isinstance(app.settings, Settings)
    assert app.settings.gzip is True
    assert app.settings["gzip"] is True
    assert app.settings.my_option == "mine"  # unknown names are kept for the user
    assert app.settings.cors is False  # defaults fill the rest
    assert app.settings.static_root == "/static"
    with pytest.raises(AttributeError):
        _ = app.settings.no_such_setting


def test_settings_proxy_reads_the_last_configured_app():
    configure(App(), proxy_marker="first")
    assert settings.proxy_marker == "first"

    configure(App(), proxy_marker="second", gzip=True)

    assert settings.proxy_marker == "second"
    assert settings["gzip"] is True
    assert settings.configured is True


def test_configuring_twice_raises_configuration_error():
    app = configure(App())

    with pytest.raises(ConfigurationError, match="already configured"):
        configure(app, gzip=True)


def test_configure_after_first_request_raises_configuration_error():
    app = text_app()

    with create_client(app) as client:
        assert client.get("/").status_code == 200

    with pytest.raises(ConfigurationError):
        configure(app, cors=True)


def test_app_debug_is_carried_into_settings():
    app = App(debug=True)

    assert app.settings.debug is True
    assert App().settings.debug is False


def test_app_constructor_settings_merge_with_configure():
    app = App(debug=True, gzip=True)
    configure(app, cors=True)

    assert app.settings.debug is True
    assert app.settings.gzip is True
    assert app.settings.cors is True


def test_debug_shows_tracebacks_only_when_on():
    def failing_app(debug: bool) -> App:
        app = App(debug=debug)

        @app.route("/")
        async def index(req, res):
            raise RuntimeError("kaboom")

        return app

    with create_client(failing_app(True), raise_server_exceptions=False) as client:
        debug_response = client.get("/", headers={"Accept": "text/html"})
    with create_client(failing_app(False), raise_server_exceptions=False) as client:
        quiet_response = client.get("/", headers={"Accept": "text/html"})

    assert debug_response.status_code == 500
    assert "kaboom" in debug_response.text
    assert quiet_response.status_code == 500
    assert "kaboom" not in quiet_response.text


def test_settings_object_upper_case_attributes_are_settings():
    module = types.ModuleType("my_settings")
    module.GZIP = True  # type: ignore[attr-defined]
    module.GZIP_MIN_SIZE = 20  # type: ignore[attr-defined]
    module.API_NAME = "demo"  # type: ignore[attr-defined]
    module.lowercase_helper = "ignored"  # type: ignore[attr-defined]

    app = configure(text_app("q" * 50), module)

    with create_client(app) as client:
        response = client.get("/", headers={"Accept-Encoding": "gzip"})

    assert app.settings.gzip is True
    assert app.settings.gzip_min_size == 20
    assert app.settings.api_name == "demo"
    assert "lowercase_helper" not in app.settings
    assert response.headers["content-encoding"] == "gzip"


def test_keyword_settings_win_over_the_settings_object():
    obj = types.SimpleNamespace(GZIP=True, CORS=True)

    app = configure(App(), obj, cors=False)

    assert app.settings.gzip is True
    assert app.settings.cors is False


def test_secret_key_is_hidden_in_the_repr():
    app = configure(App(), secret_key="very-secret-value")

    assert "very-secret-value" not in repr(app.settings)
    assert app.settings.secret_key == "very-secret-value"


def test_apps_do_not_share_default_settings_values():
    first = configure(App())
    first.settings.allowed_hosts.append("first.example")
    first.settings.plugins.append(print)

    second = configure(App())

    assert second.settings.allowed_hosts == ["*"]
    assert second.settings.plugins == []


def test_hsts_redirects_ws_to_wss_and_serves_wss():
    app = configure(App(), hsts=True)

    @app.websocket_route("/ws")
    async def greet(ws):
        await ws.send("secure hello")

    with create_client(app) as client:
        with client.websocket_connect("wss://testserver/ws") as ws:
            assert ws.receive_text() == "secure hello"
        with pytest.raises(WebSocketDenialResponse) as denied:
            with client.websocket_connect("ws://testserver/ws"):
                pass

    assert denied.value.status_code in (301, 307, 308)
    assert denied.value.headers["location"] == "wss://testserver/ws"
