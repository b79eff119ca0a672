"""Plugins: ``configure(app, plugins=[...])`` and globally registered ``@plugin``s."""

from __future__ import annotations

from bocadillo import App, Middleware, configure, create_client, plugin


class PoweredBy(Middleware):
    async def after_dispatch(self, req, res):
        res.headers["x-powered-by"] = self.options["name"]


def health_plugin(app: App) -> None:
    """Adds a route, a middleware and a setting."""

    @app.route("/health")
    async def health(req, res):
        res.json = {"ok": True, "gzip": app.settings.gzip}

    app.add_middleware(PoweredBy, name="health-plugin")
    app.settings["gzip"] = True
    app.settings["gzip_min_size"] = 10


def test_plugins_setting_runs_each_plugin_with_the_app():
    app = App()

    @app.route("/")
    async def index(req, res):
        res.text = "y" * 100

    configure(app, plugins=[health_plugin])

    with create_client(app) as client:
        health = client.get("/health")
        index_response = client.get("/", headers={"Accept-Encoding": "gzip"})

    assert health.json() == {"ok": True, "gzip": True}
    assert health.headers["x-powered-by"] == "health-plugin"
    # The setting the plugin changed switched GZip on for the whole app.
    assert index_response.headers["content-encoding"] == "gzip"
    assert index_response.headers["x-powered-by"] == "health-plugin"


def test_plugins_see_the_other_settings():
    seen: list[object] = []

    def reader(app: App) -> None:
        seen.append(app.settings.api_name)

    configure(App(), plugins=[reader], api_name="demo")

    assert seen == ["demo"]


def test_plugins_run_in_order():
    order: list[str] = []

    def first(app: App) -> None:
        order.append("first")

    def second(app: App) -> None:
        order.append("second")

    configure(App(), plugins=[first, second])

    assert order == ["first", "second"]


def test_plugin_decorator_registers_a_global_plugin():
    configured: list[App] = []

    @plugin
    def everywhere(app: App) -> None:
        configured.append(app)

        @app.route("/from-global-plugin")
        async def from_plugin(req, res):
            res.text = "global plugin"

    def local(app: App) -> None:
        configured.append(app)

    one = configure(App(), plugins=[local])
    two = App()

    with create_client(two) as client:
        response = client.get("/from-global-plugin")

    assert response.text == "global plugin"
    # Global plugins run before the ones given in settings, and for every app.
    assert configured == [one, one, two]


def test_global_plugin_is_forgotten_after_restore():
    # Guards the fixture: the plugin registered by the previous test is gone.
    app = App()

    with create_client(app) as client:
        assert client.get("/from-global-plugin").status_code == 404
