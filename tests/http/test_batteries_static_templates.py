"""Static files (the ``static/`` folder, ``static_dir``/``static_root``, ``static()``) and
Jinja2 templates."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from bocadillo import App, Recipe, Templates, configure, create_client, static

PNG_BYTES = b"\x89PNG\r\n\x1a\n" + b"\x00" * 16


def make_assets(folder: Path) -> None:
    (folder / "css").mkdir(parents=True)
    (folder / "css" / "site.css").write_text("body { color: red; }")
    (folder / "app.js").write_text("console.log('hi');")
    (folder / "logo.png").write_bytes(PNG_BYTES)


# Static files -----------------------------------------------------------------------------


def test_static_folder_in_working_directory_is_served_at_static(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    make_assets(tmp_path / "static")
    monkeypatch.chdir(tmp_path)
    app = App()

    with create_client(app) as client:
        css = client.get("/static/css/site.css")
        js = client.get("/static/app.js")
        png = client.get("/static/logo.png")
        missing = client.get("/static/nope.css")

    assert css.status_code == 200
    assert css.text == "body { color: red; }"
    assert css.headers["content-type"].startswith("text/css")
    assert js.status_code == 200
    assert js.text == "console.log('hi');"
    assert js.headers["content-type"].split(";")[0].endswith("javascript")
    assert png.status_code == 200
    assert png.content == PNG_BYTES
    assert png.headers["content-type"] == "image/png"
    assert missing.status_code == 404


def test_no_static_folder_means_no_static_route(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.chdir(tmp_path)
    app = App()

    with create_client(app) as client:
        response = client.get("/static/site.css")

    assert response.status_code == 404


def test_static_dir_and_static_root_settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    make_assets(tmp_path / "public")
    make_assets(tmp_path / "static")
    (tmp_path / "public" / "only-public.txt").write_text("public")
    monkeypatch.chdir(tmp_path)
    app = configure(App(), static_dir="public", static_root="/files")

    with create_client(app) as client:
        served = client.get("/files/only-public.txt")
        css = client.get("/files/css/site.css")
        default_root = client.get("/static/css/site.css")

    assert served.status_code == 200
    assert served.text == "public"
    assert css.headers["content-type"].startswith("text/css")
    assert default_root.status_code == 404


def test_static_dir_can_be_an_absolute_path(tmp_path: Path):
    make_assets(tmp_path / "assets")
    app = configure(App(), static_dir=str(tmp_path / "assets"))

    with create_client(app) as client:
        response = client.get("/static/app.js")

    assert response.status_code == 200
    assert response.text == "console.log('hi');"


def test_static_dir_none_disables_static_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    make_assets(tmp_path / "static")
    monkeypatch.chdir(tmp_path)
    app = configure(App(), static_dir=None)

    with create_client(app) as client:
        response = client.get("/static/app.js")

    assert response.status_code == 404


def test_mount_static_helper_under_another_prefix(tmp_path: Path):
    make_assets(tmp_path / "assets")
    app = App()
    app.mount("/assets", static(tmp_path / "assets"))

    @app.route("/")
    async def index(req, res):
        res.text = "home"

    with create_client(app) as client:
        png = client.get("/assets/logo.png")
        css = client.get("/assets/css/site.css")
        missing = client.get("/assets/missing.png")
        home = client.get("/")

    assert png.content == PNG_BYTES
    assert png.headers["content-type"] == "image/png"
    assert css.text == "body { color: red; }"
    assert missing.status_code == 404
    assert home.text == "home"


def test_static_helper_refuses_a_missing_directory(tmp_path: Path):
    with pytest.raises(RuntimeError):
        static(tmp_path / "does-not-exist")


# Templates --------------------------------------------------------------------------------


@pytest.fixture
def template_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "hello.html").write_text("<h1>Hello, {{ name }}!</h1>")
    (folder / "page.html").write_text("{{ site }}: {{ title }}")
    (folder / "link.html").write_text("<a href=\"{{ url_for('item', pk=pk) }}\">item</a>")
    (folder / "plain.txt").write_text("raw {{ value }}")
    return folder


@pytest.mark.anyio
async def test_templates_render_asynchronously(template_dir: Path):
    templates = Templates(directory=template_dir)

    assert await templates.render("hello.html", name="Bocadillo") == "<h1>Hello, Bocadillo!</h1>"
    assert await templates.render("hello.html", {"name": "ctx"}) == "<h1>Hello, ctx!</h1>"


def test_templates_render_sync_and_render_string(template_dir: Path):
    templates = Templates(directory=template_dir)

    assert templates.render_sync("hello.html", name="sync") == "<h1>Hello, sync!</h1>"
    assert templates.render_sync("hello.html", {"name": "dict"}) == "<h1>Hello, dict!</h1>"
    assert templates.render_string("{{ a }} + {{ b }}", {"a": 1}, b=2) == "1 + 2"
    # Template variables may be called like the methods' own parameters.
    assert templates.render_string("{{ source }}/{{ context }}", source=1, context=2) == "1/2"


def test_templates_render_in_a_view(template_dir: Path):
    app = App()
    templates = Templates(app, directory=template_dir)

    @app.route("/hello/{name}")
    async def hello(req, res, name: str):
        res.html = await templates.render("hello.html", name=name)

    with create_client(app) as client:
        response = client.get("/hello/world")

    assert response.text == "<h1>Hello, world!</h1>"
    assert response.headers["content-type"].startswith("text/html")


@pytest.mark.anyio
async def test_templates_context_globals(template_dir: Path):
    templates = Templates(directory=template_dir, context={"site": "Bocadillo"})

    assert await templates.render("page.html", title="Home") == "Bocadillo: Home"
    assert templates.render_sync("page.html", title="Sync") == "Bocadillo: Sync"
    # Per-render values win over the globals.
    assert templates.render_sync("page.html", site="Other", title="T") == "Other: T"


@pytest.mark.anyio
async def test_templates_context_can_be_changed_after_creation(template_dir: Path):
    templates = Templates(directory=template_dir)
    templates.context["site"] = "Added later"

    assert templates.render_sync("page.html", title="sync") == "Added later: sync"
    assert await templates.render("page.html", title="async") == "Added later: async"


@pytest.mark.anyio
async def test_templates_autoescape_html(template_dir: Path):
    templates = Templates(directory=template_dir)
    evil = "<script>alert('x')</script>"

    rendered = await templates.render("hello.html", name=evil)
    rendered_sync = templates.render_sync("hello.html", name=evil)
    rendered_string = templates.render_string("<p>{{ v }}</p>", v=evil)

    for html in (rendered, rendered_sync, rendered_string):
        assert "<script>" not in html
        assert "&lt;script&gt;" in html
    # Non-HTML templates are not escaped.
    assert templates.render_sync("plain.txt", value="<b>") == "raw <b>"


@pytest.mark.anyio
async def test_templates_have_url_for_when_given_the_app(template_dir: Path):
    app = App()
    templates = Templates(app, directory=template_dir)

    @app.route("/items/{pk}")
    async def item(req, res, pk: int):
        pass

    @app.route("/users/{name}")
    async def user(req, res, name: str):
        pass

    assert await templates.render("link.html", pk=3) == '<a href="/items/3">item</a>'
    assert templates.render_string("{{ url_for('item', pk=4) }}") == "/items/4"
    # A route parameter may be called ``name``, like url_for's own first argument.
    assert templates.render_string("{{ url_for('user', name='bob') }}") == "/users/bob"


def test_templates_url_for_reaches_recipe_routes(template_dir: Path):
    app = App()
    blog = Recipe("blog")

    @blog.route("/posts/{slug}")
    async def post(req, res, slug: str):
        pass

    app.recipe(blog)
    templates = Templates(app, directory=template_dir)

    assert templates.render_string("{{ url_for('blog:post', slug='hi') }}") == "/blog/posts/hi"


@pytest.mark.anyio
async def test_templates_missing_template_raises(template_dir: Path):
    templates = Templates(directory=template_dir)

    with pytest.raises(jinja2.TemplateNotFound):
        await templates.render("nope.html")


def test_templates_default_directory_is_templates_in_working_directory(
    template_dir: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.chdir(template_dir.parent)
    templates = Templates()

    assert templates.render_sync("hello.html", name="cwd") == "<h1>Hello, cwd!</h1>"
