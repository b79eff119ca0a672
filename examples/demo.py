"""A small demo app: ``make run`` serves it on http://127.0.0.1:8000."""

from __future__ import annotations

from bocadillo import App, WebSocket

app = App("demo")

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Bocadillo demo</title></head>
<body>
<h1>Bocadillo</h1>
<p>Try <a href="/hello/world">/hello/world</a> or
<a href="/add?a=2&amp;b=40">/add?a=2&amp;b=40</a>.</p>
<form id="f"><input id="t" placeholder="say something"><button>Send</button></form>
<ul id="log"></ul>
<script>
const ws = new WebSocket(`ws://${location.host}/echo`);
const log = document.getElementById("log");
ws.onmessage = (event) => {
  const li = document.createElement("li");
  li.textContent = event.data;
  log.appendChild(li);
};
document.getElementById("f").onsubmit = (event) => {
  event.preventDefault();
  const input = document.getElementById("t");
  ws.send(input.value);
  input.value = "";
};
</script>
</body></html>
"""


@app.route("/")
async def index(req, res):  # type: ignore[no-untyped-def]
    res.html = PAGE


@app.route("/hello/{who}")
async def hello(req, res, who: str):  # type: ignore[no-untyped-def]
    res.json = {"message": f"Hello, {who}!"}


@app.route("/add")
async def add(req, res, a: int, b: int = 0):  # type: ignore[no-untyped-def]
    res.json = {"sum": a + b}


@app.websocket_route("/echo")
async def echo(ws: WebSocket) -> None:
    async for message in ws:
        await ws.send(f"You said: {message}")
