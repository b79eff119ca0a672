"""One recipe included in two apps of one process: each app serves it with its own hub,
providers and plans, and nothing of one app leaks into the other."""

from __future__ import annotations

from bocadillo import App, Recipe, create_client
from tests.realtime.helpers import on_loop


def make_recipe() -> Recipe:
    chat = Recipe("chat")

    @chat.route("/count")
    async def count(req, res, token: str = "none"):
        res.json = {"count": req.app.hub.local_count, "token": token}

    @chat.websocket_route("/room/{name}", value_type="json")
    async def room(ws, name: str, token: str = "none"):
        ws.join(name)
        await ws.send({"id": ws.id, "token": token})
        async for message in ws:
            await ws.send({"echo": message})

    @chat.socket("whoami")
    def whoami(client_id, token: str = "none"):
        return {"id": client_id, "token": token}

    return chat


def test_a_recipe_in_two_apps_keeps_each_apps_connections_apart():
    chat = make_recipe()
    first, second = App(), App()

    @second.provider
    async def token():
        return "second's"

    first.include(chat)
    second.include(chat)
    with create_client(first) as one, create_client(second) as two:
        with one.websocket_connect("/chat/room/lobby") as a:
            joined = a.receive_json()
            assert joined["token"] == "none"
            with (
                two.websocket_connect("/chat/room/lobby") as b,
                two.websocket_connect("/chat/ws") as c,
            ):
                other = b.receive_json()
                # The second app injects its provider; the first reads the query default.
                assert other["token"] == "second's"
                c.send_json({"type": "whoami", "id": 1})
                reply = c.receive_json()
                assert reply["data"]["token"] == "second's"
                assert on_loop(one, lambda: first.hub.local_ids) == [joined["id"]]
                assert sorted(on_loop(two, lambda: second.hub.local_ids)) == sorted(
                    [other["id"], reply["data"]["id"]]
                )
                assert on_loop(one, first.hub.local_members, "lobby") == {joined["id"]}
                assert on_loop(two, second.hub.local_members, "lobby") == {other["id"]}
                assert one.get("/chat/count").json() == {"count": 1, "token": "none"}
                assert two.get("/chat/count").json() == {"count": 2, "token": "second's"}
                # A broadcast in one app reaches only its own connections.
                assert on_loop(two, lambda: second.hub.broadcast({"hi": 2}, room="lobby")) == 1
                assert b.receive_json() == {"hi": 2}
                a.send_json("ping")
                assert a.receive_json() == {"echo": "ping"}
    assert first.hub.stats()["connections_total"] == 1
    assert second.hub.stats()["connections_total"] == 2
