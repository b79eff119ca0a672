"""The HTTP body limit (``max_body_size``) over real sockets: refused while it streams in."""

from __future__ import annotations

import asyncio
import json
import socket
from pathlib import Path

import httpx2 as httpx
import pytest

from bocadillo import App

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

MiB = 1024 * 1024


def rss_kib(pid: str | int = "self") -> int:
    """The resident set size of a process, in KiB (``VmRSS`` of ``/proc/<pid>/status``)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS line")


def echo_app(**settings) -> App:
    app = App(**settings)

    @app.route("/echo", methods=["POST"])
    async def echo(req, res):
        res.json = {"got": await req.json()}

    @app.route("/size", methods=["POST"])
    async def size(req, res):
        res.json = {"size": len(await req.body())}

    @app.route("/chunks", methods=["POST"])
    async def chunks(req, res):
        total = 0
        async for chunk in req:
            total += len(chunk)
        res.json = {"size": total}

    @app.route("/form", methods=["POST"])
    async def form(req, res):
        data = await req.form()
        upload = data["file"]
        res.json = {"name": data["name"], "file": len(await upload.read())}

    @app.route("/ignore", methods=["POST"])
    async def ignore(req, res):
        res.text = "not read"

    return app


async def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length from a non-blocking socket."""
    loop = asyncio.get_running_loop()
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = await loop.sock_recv(sock, 65536)
        assert chunk, f"connection closed before a full response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    while len(body) < int(headers["content-length"]):
        chunk = await loop.sock_recv(sock, 65536)
        assert chunk, "connection closed in the middle of the body"
        body += chunk
    return int(status_line.split()[1]), headers, body


def connect(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setblocking(False)
    return sock


async def test_a_1_gb_chunked_body_is_refused_with_413_while_it_streams(live_server):
    server = live_server(echo_app())
    before = rss_kib()
    loop = asyncio.get_running_loop()
    sock = connect(server.port)
    sent = 0
    chunk = b"[" + b"1," * (32 * 1024 - 1)  # 64 KiB of a never-ending JSON array

    async def send_a_gigabyte() -> None:
        nonlocal sent
        await loop.sock_sendall(
            sock,
            b"POST /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n",
        )
        frame = f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n"
        try:
            while sent < 1024 * MiB:  # generated lazily: one 64 KiB frame at a time
                await loop.sock_sendall(sock, frame)
                sent += len(chunk)
        except ConnectionError:
            pass  # the server closed the connection after its answer

    sending = asyncio.ensure_future(send_a_gigabyte())
    try:
        status, headers, body = await asyncio.wait_for(read_response(sock), 10)
    finally:
        sending.cancel()
        await asyncio.gather(sending, return_exceptions=True)
        sock.close()
    assert status == 413
    assert headers["connection"] == "close"
    assert json.loads(body) == {
        "error": "Request Entity Too Large",
        "status": 413,
        "detail": f"the request body is larger than {MiB} bytes",
    }
    assert sent < 1024 * MiB
    # The server (in this process) never held more than a chunk past the limit.
    assert rss_kib() - before < 64 * 1024


async def test_a_content_length_over_the_limit_is_refused_before_any_byte_is_read(live_server):
    server = live_server(echo_app(max_body_size=1000))
    sock = connect(server.port)
    # Only the head is sent: the answer cannot wait for the body.
    await asyncio.get_running_loop().sock_sendall(
        sock, b"POST /size HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1073741824\r\n\r\n"
    )
    try:
        status, headers, body = await asyncio.wait_for(read_response(sock), 10)
    finally:
        sock.close()
    assert status == 413
    assert json.loads(body)["detail"] == "the request body is larger than 1000 bytes"


def test_bodies_within_the_limit_are_served(live_server):
    server = live_server(echo_app(max_body_size=2000))
    exact = b"x" * 2000
    with httpx.Client(base_url=server.url) as client:
        echoed = client.post("/echo", json={"a": [1, 2, 3]})
        size = client.post("/size", content=exact)
        streamed = client.post("/chunks", content=iter([exact[:1000], exact[1000:]]))
        over = client.post("/size", content=exact + b"x")
        chunked_over = client.post("/chunks", content=iter([exact, b"x"]))
        ignored = client.post("/ignore", content=b"y" * 5000)
        after = client.post("/echo", json="still fine")
    assert echoed.json() == {"got": {"a": [1, 2, 3]}}
    assert size.json() == {"size": 2000}
    assert streamed.json() == {"size": 2000}
    assert (over.status_code, over.json()["status"]) == (413, 413)
    assert chunked_over.status_code == 413
    assert (ignored.status_code, ignored.text) == (200, "not read")  # never read: not refused
    assert after.json() == {"got": "still fine"}


def test_the_limit_can_be_turned_off(live_server):
    server = live_server(echo_app(max_body_size=None))
    with httpx.Client(base_url=server.url) as client:
        response = client.post("/size", content=b"z" * (2 * MiB))
    assert response.json() == {"size": 2 * MiB}


def test_forms_and_uploads_are_bounded_by_the_limit(live_server):
    server = live_server(echo_app(max_body_size=64 * 1024))
    with httpx.Client(base_url=server.url) as client:
        small = client.post("/form", data={"name": "a"}, files={"file": ("a.bin", b"\0" * 1000)})
        large = client.post(
            "/form", data={"name": "b"}, files={"file": ("b.bin", b"\0" * (128 * 1024))}
        )
        urlencoded = client.post("/form", data={"name": "c" * (128 * 1024)})
    assert small.json() == {"name": "a", "file": 1000}
    assert large.status_code == 413
    assert large.json()["error"] == "Request Entity Too Large"
    assert urlencoded.status_code == 413
