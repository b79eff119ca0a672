"""Header splitting attempts over a real uvicorn: a 500 JSON answer, never a dropped connection."""

from __future__ import annotations

import httpx2 as httpx
import pytest

from bocadillo import App, Redirect

pytestmark = pytest.mark.integration


def test_live_bad_header_and_redirect_answer_500_and_keep_serving(live_server):
    app = App()

    @app.route("/header")
    async def header(req, res, value: str):
        res.headers["x-echo"] = value

    @app.route("/redirect")
    async def redirect(req, res, to: str):
        raise Redirect(to)

    @app.route("/download")
    async def download(req, res, name: str):
        res.attachment(content=b"data", filename=name)

    server = live_server(app)
    with httpx.Client(base_url=server.url) as client:
        split = client.get("/header", params={"value": "a\r\nSet-Cookie: session=forged"})
        moved = client.get("/redirect", params={"to": "/x\r\nSet-Cookie: session=forged"})
        nul = client.get("/header", params={"value": "a\0b"})
        named = client.get("/download", params={"name": 'ré"sumé\r\n.pdf'})
        fine = client.get("/redirect", params={"to": "/next"})
    for response in (split, moved, nul):
        assert response.status_code == 500
        assert response.json()["error"] == "Internal Server Error"
        assert "set-cookie" not in response.headers
    assert named.status_code == 200
    assert named.headers["content-disposition"] == (
        "attachment; filename=\"re_sume__.pdf\"; filename*=UTF-8''r%C3%A9%22sum%C3%A9%0D%0A.pdf"
    )
    assert (fine.status_code, fine.headers["location"]) == (302, "/next")
