"""``raise Redirect(...)``: status codes, ``Location``, and redirects to named routes."""

from __future__ import annotations

import pytest

from bocadillo import App, Recipe, Redirect, before, create_client


def test_redirect_to_a_url_answers_302_with_location():
    app = App()

    @app.route("/old")
    async def old(req, res):
        raise Redirect("/new")

    @app.route("/new")
    async def new(req, res):
        res.text = "new place"

    with create_client(app) as client:
        response = client.get("/old", follow_redirects=False)
        followed = client.get("/old")

    assert response.status_code == 302
    assert response.headers["location"] == "/new"
    assert followed.status_code == 200
    assert followed.text == "new place"


def test_redirect_to_an_absolute_url():
    app = App()

    @app.route("/")
    async def index(req, res):
        raise Redirect("https://example.com/elsewhere?x=1")

    with create_client(app) as client:
        response = client.get("/", follow_redirects=False)

    assert response.status_code == 302
    assert response.headers["location"] == "https://example.com/elsewhere?x=1"


def test_permanent_redirect_answers_301():
    app = App()

    @app.route("/old")
    async def old(req, res):
        raise Redirect("/new", permanent=True)

    with create_client(app) as client:
        response = client.get("/old", follow_redirects=False)

    assert response.status_code == 301
    assert response.headers["location"] == "/new"


@pytest.mark.parametrize("status", [303, 307, 308])
def test_redirect_with_an_explicit_status(status: int):
    app = App()

    @app.route("/form", methods=["POST"])
    async def form(req, res):
        raise Redirect("/done", status=status)

    with create_client(app) as client:
        response = client.post("/form", follow_redirects=False)

    assert response.status_code == status
    assert response.headers["location"] == "/done"


def test_redirect_to_a_named_route_with_parameters():
    app = App()

    @app.route("/posts/{pk}")
    async def post_detail(req, res, pk: int):
        res.text = f"post {pk}"

    @app.route("/latest")
    async def latest(req, res):
        raise Redirect(name="post_detail", pk=42)

    with create_client(app) as client:
        response = client.get("/latest", follow_redirects=False)
        followed = client.get("/latest")

    assert response.status_code == 302
    assert response.headers["location"] == "/posts/42"
    assert followed.text == "post 42"


def test_redirect_to_a_route_of_a_recipe():
    app = App()
    blog = Recipe("blog")

    @blog.route("/{slug}")
    async def article(req, res, slug: str):
        res.text = f"article {slug}"

    app.recipe(blog)

    @app.route("/")
    async def index(req, res):
        raise Redirect(name="blog:article", slug="hello-world", permanent=True)

    with create_client(app) as client:
        response = client.get("/", follow_redirects=False)
        followed = client.get("/")

    assert response.status_code == 301
    assert response.headers["location"] == "/blog/hello-world"
    assert followed.text == "article hello-world"


def test_redirect_raised_in_a_before_hook_skips_the_view():
    app = App()
    called: list[str] = []

    def login_required(req, res, params):
        if "user" not in req.query_params:
            raise Redirect(name="login")

    @app.route("/login")
    async def login(req, res):
        res.text = "please log in"

    @app.route("/dashboard")
    @before(login_required)
    async def dashboard(req, res):
        called.append("dashboard")
        res.text = "dashboard"

    with create_client(app) as client:
        response = client.get("/dashboard", follow_redirects=False)
        logged_in = client.get("/dashboard?user=alice")

    assert response.status_code == 302
    assert response.headers["location"] == "/login"
    assert logged_in.text == "dashboard"
    assert called == ["dashboard"]


def test_redirect_needs_exactly_one_of_url_and_name():
    with pytest.raises(ValueError):
        Redirect()
    with pytest.raises(ValueError):
        Redirect("/x", name="view")
