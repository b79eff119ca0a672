"""``create_client``'s client takes requests' spellings, as Bocadillo 0.18's did: on top of
Starlette's test client, whose own keywords keep working as they do."""

from __future__ import annotations

from collections.abc import Iterator

import httpx2
import pytest
from starlette.testclient import TestClient as StarletteTestClient

from bocadillo import App, Redirect, create_client, server_event
from bocadillo.testing.testclient import StreamedResponse, TestClient


def body_app() -> App:
    """An app that answers with what it received: method, content type, each chunk."""
    app = App()

    @app.route("/echo", methods=["get", "head", "options", "delete", "post", "put", "patch"])
    async def echo(req, res):
        chunks = [chunk.decode() async for chunk in req.stream() if chunk]
        res.json = {
            "method": req.method,
            "type": req.headers.get("content-type"),
            "chunked": req.headers.get("transfer-encoding") == "chunked",
            "chunks": chunks,
        }

    @app.route("/form", methods=["get", "delete", "post"])
    async def form(req, res):
        res.json = dict(await req.form())

    return app


def redirect_app() -> App:
    app = App()

    @app.route("/", methods=["get", "post"])
    async def index(req, res):
        raise Redirect("/home")

    @app.route("/home", methods=["get", "post"])
    async def home(req, res):
        res.text = "home"

    return app


def test_create_client_returns_a_starlette_test_client():
    client = create_client(App())
    assert isinstance(client, TestClient)
    assert isinstance(client, StarletteTestClient)
    assert isinstance(client, httpx2.Client)
    assert client.base_url == "http://testserver"


# allow_redirects= ------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "post"])
def test_allow_redirects_false_returns_the_redirect(method):
    with create_client(redirect_app()) as client:
        response = getattr(client, method)("/", allow_redirects=False)
        followed = getattr(client, method)("/", allow_redirects=True)
        by_default = client.request(method.upper(), "/")
        with_httpx_name = client.request(method.upper(), "/", follow_redirects=False)

    assert response.status_code == 302
    assert response.headers["location"] == "/home"
    assert (followed.status_code, followed.text) == (200, "home")
    assert [r.status_code for r in followed.history] == [302]
    assert by_default.text == "home"
    assert with_httpx_name.status_code == 302


def test_allow_redirects_on_a_client_that_does_not_follow_redirects():
    with create_client(redirect_app(), follow_redirects=False) as client:
        assert client.get("/").status_code == 302
        assert client.get("/", allow_redirects=True).text == "home"


@pytest.mark.parametrize("allow", [True, False])
def test_allow_redirects_and_follow_redirects_together_is_a_type_error(allow):
    with create_client(redirect_app()) as client:
        with pytest.raises(TypeError, match=r"give only one of them \(follow_redirects="):
            client.get("/", allow_redirects=allow, follow_redirects=allow)
        with pytest.raises(TypeError, match="allow_redirects= is requests' name"):
            client.request("POST", "/", allow_redirects=allow, follow_redirects=not allow)


# data= on every verb ---------------------------------------------------------------------


@pytest.mark.parametrize("method", ["get", "head", "options", "delete", "post", "put", "patch"])
def test_text_and_bytes_given_as_data_are_the_body_on_every_verb(method):
    with create_client(body_app()) as client:
        # filterwarnings = error: httpx2's DeprecationWarning for data=<text> would fail here.
        as_text = getattr(client, method)("/echo", data="héllo")
        as_bytes = client.request(method.upper(), "/echo", data=b"\x00raw")

    if method == "head":
        assert as_text.status_code == as_bytes.status_code == 200
        return
    assert as_text.json() == {
        "method": method.upper(),
        "type": None,
        "chunked": False,
        "chunks": ["héllo"],
    }
    assert as_bytes.json()["chunks"] == ["\x00raw"]


@pytest.mark.parametrize("method", ["get", "delete", "post"])
def test_a_mapping_given_as_data_is_a_form(method):
    with create_client(body_app()) as client:
        response = client.request(method.upper(), "/form", data={"foo": "bar", "n": "1"})
        echoed = getattr(client, method)("/echo", data={"foo": "bar"})

    assert response.json() == {"foo": "bar", "n": "1"}
    assert echoed.json()["type"] == "application/x-www-form-urlencoded"
    assert echoed.json()["chunks"] == ["foo=bar"]


def test_an_iterable_given_as_data_reaches_the_app_one_chunk_at_a_time():
    def stream() -> Iterator[str | bytes]:
        yield "one"
        yield b"two"
        yield "thrée"

    with create_client(body_app()) as client:
        from_generator = client.get("/echo", data=stream())
        from_list = client.put("/echo", data=[b"a", b"b"])

    assert from_generator.json() == {
        "method": "GET",
        "type": None,
        "chunked": True,
        "chunks": ["one", "two", "thrée"],
    }
    assert from_list.json()["chunks"] == ["a", "b"]


def test_httpx_spellings_of_a_body_are_unchanged():
    def stream() -> Iterator[bytes]:
        yield b"one"
        yield b"two"

    with create_client(body_app()) as client:
        # content=<iterable> is httpx2's: Starlette's client joins it into one message.
        joined = client.post("/echo", content=stream())
        as_json = client.patch("/echo", json={"a": 1})
        # Two bodies: httpx2 sends data= and warns, as it does without this layer.
        with pytest.warns(DeprecationWarning, match="content="):
            both = client.post("/echo", content=b"content", data="data")

    assert joined.json()["chunks"] == ["onetwo"]
    assert as_json.json()["chunks"] == ['{"a":1}']
    assert both.json()["chunks"] == ["data"]


# stream=True -----------------------------------------------------------------------------


def events_app() -> App:
    app = App()

    @app.route("/events")
    async def events(req, res):
        @res.event_stream
        async def generate():
            yield server_event("hello", id=1)
            yield server_event(name="tick", data=["a", "b"])

    return app


def test_stream_true_iter_lines_yields_bytes_then_stops():
    with create_client(events_app()) as client:
        response = client.get("/events", stream=True)
        assert isinstance(response, StreamedResponse)
        assert response.status_code == 200
        with pytest.raises(httpx2.ResponseNotRead):  # httpx2's: nothing is read yet
            _ = response.content
        lines = response.iter_lines()
        received = [next(lines) for _ in range(7)]
        with pytest.raises(StopIteration):
            next(lines)

    assert received == [
        b"id: 1",
        b"data: hello",
        b"",
        b"event: tick",
        b"data: a",
        b"data: b",
        b"",
    ]
    assert response.is_closed


def test_stream_true_is_read_while_the_app_still_sends():
    app = App()
    sent: list[int] = []

    @app.route("/ticks")
    async def ticks(req, res):
        @res.stream
        async def generate():
            for n in range(1000):  # bounded; the test reads two
                sent.append(n)
                yield f"tick {n}\n"

    with create_client(app) as client:
        response = client.get("/ticks", stream=True)
        lines = response.iter_lines()
        first = [next(lines), next(lines)]
        # The app waits for the client to take each chunk: it is still near the start.
        assert len(sent) < 10
        response.close()

    assert first == [b"tick 0", b"tick 1"]
    assert len(sent) < 10


def test_stream_true_iter_content_yields_bytes():
    app = App()

    @app.route("/", methods=["get", "post"])
    async def index(req, res):
        @res.stream
        async def generate():
            yield "héllo"
            yield " world"

    with create_client(app) as client:
        one_byte = list(client.get("/", stream=True).iter_content())
        as_sent = list(client.post("/", stream=True).iter_content(chunk_size=None))
        by_four = list(client.get("/", stream=True).iter_content(4))
        read = client.get("/", stream=True)
        read.read()  # and the rest is httpx2's response

    assert one_byte == [bytes([b]) for b in "héllo world".encode()]
    assert as_sent == ["héllo".encode(), b" world"]
    assert by_four == [b"h\xc3\xa9l", b"lo w", b"orld"]
    assert read.text == "héllo world"


def test_stream_true_with_requests_and_httpx_keywords():
    with create_client(redirect_app()) as client:
        redirect = client.get("/", stream=True, allow_redirects=False)
        followed = client.post("/", stream=True, params={"q": "1"})
        assert list(followed.iter_lines()) == [b"home"]

    assert redirect.status_code == 302
    assert [r.status_code for r in followed.history] == [302]
    assert followed.history[0].request.url == "http://testserver/?q=1"


def test_without_stream_the_response_is_httpx2s():
    with create_client(events_app()) as client:
        response = client.get("/events")

    assert type(response) is httpx2.Response
    assert list(response.iter_lines())[:2] == ["id: 1", "data: hello"]


@pytest.mark.parametrize(
    "chunks, lines",
    [
        ([b"a\nb\n"], [b"a", b"b"]),
        ([b"a\r\nb"], [b"a", b"b"]),  # the last line needs no line ending
        ([b"a\r", b"\nb\r", b"\rc"], [b"a", b"b", b"", b"c"]),  # "\r" "\n" split is one ending
        ([b"li", b"ne\n", b"\n", b"\n"], [b"line", b"", b""]),
        ([b"x\r"], [b"x"]),
        ([], []),
    ],
)
def test_iter_lines_splits_across_chunks(chunks, lines):
    response = StreamedResponse(200, content=iter(chunks))
    assert list(response.iter_lines()) == lines
