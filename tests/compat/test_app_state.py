"""No hidden process-wide state: providers, plugins and settings belong to their app.

Module-level declarations (``@provider``, ``@plugin``) are offered to apps; each app copies
them when it builds itself (providers) or is configured (plugins), and from then on reads
only its own copy. ``bocadillo.settings`` is a view of the last configured app's settings.
"""

from __future__ import annotations

import pytest

from bocadillo import App, SettingsError, configure, create_client, plugin, provider, settings
from bocadillo.injection import global_provider_names


def greeting_app(name: str = "greeting") -> App:
    app = App(name)

    @app.route("/")
    async def index(req, res, compat_greeting):
        res.text = compat_greeting

    return app


def test_a_provider_overridden_in_one_app_does_not_affect_another():
    @provider
    async def compat_greeting():
        return "hello"

    first, second = greeting_app("first"), greeting_app("second")

    @first.provider(name="compat_greeting")
    async def first_only():
        return "bonjour"

    with create_client(first) as one, create_client(second) as two:
        assert one.get("/").text == "bonjour"
        assert two.get("/").text == "hello"
    assert "compat_greeting" in global_provider_names()


def test_an_app_reads_its_own_copy_of_the_declared_providers_once_built():
    @provider(name="compat_greeting")
    async def first_declaration():
        return "first"

    built = greeting_app()
    with create_client(built) as client:
        assert client.get("/").text == "first"

        # A later declaration is offered to apps that build themselves from now on ...
        @provider(name="compat_greeting")
        async def second_declaration():
            return "second"

        # ... not to one that is already serving with its own copy.
        assert client.get("/").text == "first"

    with create_client(greeting_app()) as client:
        assert client.get("/").text == "second"


def test_app_scoped_values_are_made_once_per_app():
    made: list[str] = []

    @provider(scope="app")
    async def compat_counter():
        made.append("made")
        return {"hits": 0}

    def counter_app() -> App:
        app = App()

        @app.route("/")
        async def index(req, res, compat_counter):
            compat_counter["hits"] += 1
            res.json = compat_counter["hits"]

        return app

    first, second = counter_app(), counter_app()
    with create_client(first) as one, create_client(second) as two:
        assert [one.get("/").json() for _ in range(3)] == [1, 2, 3]
        assert two.get("/").json() == 1
    assert made == ["made", "made"]


def test_a_plugin_registered_after_an_app_is_configured_does_not_change_it():
    ran: list[str] = []
    configured = configure(App("configured"))

    @plugin
    def record(app):
        ran.append(app.name)

    configure(App("later"))

    assert ran == ["later"]
    assert configured.settings.plugins == []


def test_settings_of_one_app_are_not_the_settings_of_another():
    first = configure(App(), gzip=True, compat_marker="first")
    second = configure(App(), compat_marker="second")

    assert first.settings.gzip is True and second.settings.gzip is False
    assert settings.COMPAT_MARKER == "second"  # the view follows the last configured app

    settings.COMPAT_MARKER = "changed"  # written to that app's own settings
    assert second.settings.compat_marker == "changed"
    assert first.settings.compat_marker == "first"


def test_settings_view_forgets_the_app_with_clear():
    app = configure(App(), compat_marker="kept")
    settings._clear()

    assert not settings.configured
    assert "COMPAT_MARKER" not in settings
    with pytest.raises(SettingsError, match="configure"):
        _ = settings.COMPAT_MARKER
    assert app.settings.compat_marker == "kept"  # the app keeps its settings
