from __future__ import annotations

import httpx2 as httpx

from bocadillo import App


def test_live_server_serves_a_route(live_server):
    app = App()

    @app.route("/")
    async def index(req, res):
        res.text = "hello"

    server = live_server(app)
    response = httpx.get(server.url + "/")
    assert response.status_code == 200
    assert response.text == "hello"
