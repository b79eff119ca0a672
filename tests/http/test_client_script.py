"""The JavaScript client served by the app (setting ``client_script``)."""

from __future__ import annotations

from pathlib import Path

from bocadillo import App
from bocadillo.testing import create_client

CLIENT = Path(__file__).resolve().parents[2] / "clients" / "js" / "client.js"


def test_served_at_its_documented_url_with_a_validator() -> None:
    with create_client(App()) as client:
        response = client.get("/bocadillo/client.js")
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/javascript; charset=utf-8"
        assert response.headers["cache-control"] == "no-cache"
        assert response.content == CLIENT.read_bytes()
        again = client.get(
            "/bocadillo/client.js", headers={"If-None-Match": response.headers["etag"]}
        )
        assert again.status_code == 304 and again.content == b""


def test_moved_or_turned_off() -> None:
    with create_client(App(client_script="/js/bocadillo.js")) as client:
        assert client.get("/js/bocadillo.js").status_code == 200
        assert client.get("/bocadillo/client.js").status_code == 404
    with create_client(App(client_script=None)) as client:
        assert client.get("/bocadillo/client.js").status_code == 404
