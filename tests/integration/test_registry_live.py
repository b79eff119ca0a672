"""The registry over real sockets: abrupt TCP drops leave no ghost connections or members."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect

from bocadillo import App
from tests.live import eventually

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CLIENTS = 200


def make_app() -> App:
    app = App()

    @app.websocket_route("/room", caught_close_codes=all)
    async def room(ws):
        ws.join("lobby")
        await ws.send(ws.id)
        async for _ in ws:
            pass

    return app


async def test_abrupt_drops_leave_no_ghosts(live_server):
    app = make_app()
    server = live_server(app)
    clients = [await connect(server.ws_url + "/room") for _ in range(CLIENTS)]
    try:
        ids = [str(await asyncio.wait_for(ws.recv(), 10)) for ws in clients]
        await eventually(lambda: app.hub.count == CLIENTS)
        assert app.hub.members("lobby") == frozenset(ids)

        dropped, kept = clients[::2], clients[1::2]
        for ws in dropped:
            ws.transport.abort()  # TCP gone, no close frame
        kept_ids = frozenset(ids[1::2])

        await eventually(lambda: app.hub.count == len(kept))
        assert frozenset(app.hub.ids) == kept_ids
        assert app.hub.members("lobby") == kept_ids
        for conn_id in ids[::2]:
            assert not app.hub.is_connected(conn_id)
            assert app.hub.rooms_of(conn_id) == frozenset()
    finally:
        for ws in clients:
            ws.transport.abort()
