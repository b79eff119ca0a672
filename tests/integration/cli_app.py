"""The app that ``test_cli_live.py`` serves with ``bocadillo run`` in a subprocess.

A message-type endpoint (``/ws``) and a plain WebSocket route, with the default 64 KiB
``max_message_size``; ``/client`` says which client address the server saw, and ``/size``
how many bytes of body it read. Settings can be overridden through the environment
(``BOCADILLO_MAX_MESSAGE_SIZE``...).
"""

from __future__ import annotations

from bocadillo import App

app = App()


@app.socket("echo")
def echo(data):
    return {"echo": data}


@app.websocket_route("/raw")
async def raw(ws):
    async for message in ws:
        await ws.send(f"{len(message)}")


@app.route("/client")
async def client(req, res):
    res.json = {"host": req.client.host if req.client else None, "scheme": req.url.scheme}


@app.route("/size", methods=["POST"])
async def size(req, res):
    total = 0
    async for chunk in req:
        total += len(chunk)
    res.json = {"size": total}
