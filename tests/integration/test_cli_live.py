"""``bocadillo run``: a real subprocess serving an app with the app's limits.

The server gets a socket bound here (``--fd``), so no port is guessed; it is stopped by
its PID. Its memory is read from ``/proc/<pid>/status``.
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx2 as httpx
import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from bocadillo import App
from bocadillo.cli import FD_MARGIN, build_parser, uvicorn_options
from bocadillo.errors import ConfigurationError
from bocadillo.serving import BULK_READ, FEED_SIZE, http_protocol
from tests.integration.test_body_limit_live import rss_kib
from tests.reliability.wsclient import TEXT, encode_frame, open_ws
from tests.uvicorn_process import BOCADILLO, ROOT, BocadilloRun, bocadillo_run

pytestmark = pytest.mark.integration

KiB = 1024


def serve(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> BocadilloRun:
    """``bocadillo run tests.integration.cli_app:app --fd N`` on a socket bound here."""
    return bocadillo_run("tests.integration.cli_app:app", tmp_path / "server.log", *args, env=env)


@pytest.fixture
def server(tmp_path) -> Iterator[BocadilloRun]:
    served = serve(tmp_path)
    try:
        yield served
    finally:
        served.stop()


@pytest.mark.anyio
async def test_run_refuses_huge_frames_at_the_server_without_growing(server):
    baseline = rss_kib(server.process.pid)
    codes = []
    for _ in range(20):
        async with connect(server.ws_url + "/raw", max_size=None) as ws:
            try:
                await ws.send(b"\0" * (1024 * KiB))
                await asyncio.wait_for(ws.recv(), 10)
            except ConnectionClosed:
                pass
            close = ws.protocol.close_rcvd
            codes.append((close.code, close.reason) if close else None)
    # Refused by the server from the frame's header (the app would say "message too
    # large" after reading it); a reset while the client still wrote counts the same.
    refusal = (1009, f"frame with {1024 * KiB} bytes exceeds limit of {128 * KiB} bytes")
    assert set(codes) <= {refusal, None}
    assert refusal in codes
    assert rss_kib(server.process.pid) - baseline < 16 * KiB


@pytest.mark.anyio
async def test_run_answers_message_too_large_just_above_the_limit(server):
    async with connect(server.ws_url + "/ws") as ws:
        await ws.send(json.dumps({"type": "echo", "data": "ok", "id": 1}))
        assert json.loads(await ws.recv()) == {
            "type": "response",
            "data": {"echo": "ok"},
            "id": 1,
        }
        await ws.send(json.dumps({"type": "echo", "data": "x" * (64 * KiB)}))
        error = json.loads(await ws.recv())
        with pytest.raises(ConnectionClosed):
            await ws.recv()
    assert error["type"] == "error"
    assert error["data"]["code"] == "message_too_large"
    assert ws.protocol.close_rcvd is not None and ws.protocol.close_rcvd.code == 1009


@pytest.mark.anyio
async def test_run_does_not_negotiate_permessage_deflate(server):
    # The client offers permessage-deflate (websockets does by default).
    async with connect(server.ws_url + "/raw", compression="deflate") as ws:
        assert ws.request is not None and ws.response is not None
        assert "permessage-deflate" in ws.request.headers["Sec-WebSocket-Extensions"]
        assert "Sec-WebSocket-Extensions" not in ws.response.headers
        await ws.send("hello")
        assert await ws.recv() == "5"


def test_run_stops_reading_a_client_that_sends_pings_and_never_reads(server):
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    with sock:
        sock.sendall(
            b"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n"
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        assert head.startswith(b"HTTP/1.1 101")
        baseline = rss_kib(server.process.pid)
        # Masked 125-byte pings (mask 0: the payload goes as it is), 1,000 per write.
        ping = bytes([0x89, 0x80 | 125]) + b"\0\0\0\0" + b"p" * 125
        sock.settimeout(2)
        sent = 0
        with pytest.raises(TimeoutError):
            while sent < 200_000:  # 26 MB of pings, whose pongs are never read
                sock.sendall(ping * 1000)
                sent += 1000
        # The server stopped reading once its pongs filled its write buffer: the rest of
        # the pings wait in the sockets' buffers, not in the server's memory.
        assert rss_kib(server.process.pid) - baseline < 8 * KiB


@pytest.mark.anyio
async def test_run_parses_a_burst_of_frames_in_order_a_slice_at_a_time(tmp_path):
    # One write of 20,000 small frames and one of 60 KiB (over FEED_SIZE on its own): the
    # server reads far more than a slice at a time and parses it slice by slice, frames cut
    # anywhere; every message arrives whole and in order.
    served = serve(tmp_path, env={"BOCADILLO_RATE_LIMIT": "100000/1"})
    sizes = [n % 50 + 1 for n in range(20_000)]
    sizes.insert(10_000, 60 * KiB)
    assert 60 * KiB > FEED_SIZE
    try:
        client = await open_ws(served.port, "/raw")
        client.send_raw(b"".join(encode_frame(TEXT, b"x" * size) for size in sizes))
        replies = [int((await client.next_message(30))[1]) for _ in sizes]
        client.close()
        await client.wait_closed(10)
    finally:
        served.stop()
    assert replies == sizes


def test_run_serves_bodies_sent_in_bulk_and_keeps_the_connection(tmp_path):
    # Reads of a body streaming in are far over BULK_READ: each is followed by a turn of
    # the event loop before the next. Every byte still arrives, and the connection is
    # kept alive for the next request.
    served = serve(tmp_path, env={"BOCADILLO_MAX_BODY_SIZE": str(64 * 1024 * KiB)})
    body = os.urandom(16 * 1024 * KiB)
    assert len(body) > 100 * BULK_READ
    try:
        with httpx.Client(base_url=served.url, timeout=30) as client:
            sized = client.post(
                "/size", content=iter([body[i : i + 65536] for i in range(0, len(body), 65536)])
            )
            again = client.post("/size", content=b"x" * 10)
            refused = client.post("/size", content=b"y" * (65 * 1024 * KiB))
    finally:
        served.stop()
    assert sized.json() == {"size": len(body)}
    assert again.json() == {"size": 10}
    assert refused.status_code == 413


def test_run_bounds_request_heads(server):
    baseline = rss_kib(server.process.pid)
    sent = 0
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        sock.sendall(b"GET /client HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
        try:
            while sent < 8 * 1024 * KiB:  # a head that never ends, 4 KiB at a time
                sock.sendall(b"a" * (4 * KiB))
                sent += 4 * KiB
        except OSError:
            pass  # the server answered and closed
        answer = sock.recv(4096)
    # Refused once past the bound (32 KiB): the rest was never buffered (a bare uvicorn,
    # with httptools, keeps every byte of such a head in memory).
    assert answer.startswith(b"HTTP/1.1 400 ")
    assert rss_kib(server.process.pid) - baseline < 4 * KiB


def test_run_trusts_no_proxy_by_default(server):
    with httpx.Client(base_url=server.url) as client:
        forwarded = client.get(
            "/client", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
        )
    assert forwarded.json() == {"host": "127.0.0.1", "scheme": "http"}


def test_run_trusts_the_proxies_it_is_told_to(tmp_path):
    served = serve(tmp_path, "--forwarded-allow-ips", "127.0.0.1")
    try:
        with httpx.Client(base_url=served.url) as client:
            forwarded = client.get(
                "/client", headers={"X-Forwarded-For": "203.0.113.9", "X-Forwarded-Proto": "https"}
            )
    finally:
        served.stop()
    assert forwarded.json() == {"host": "203.0.113.9", "scheme": "https"}


def test_run_serves_with_workers(tmp_path):
    served = serve(tmp_path, "--workers", "2")
    try:
        with httpx.Client(base_url=served.url) as client:
            answers = [client.get("/client").json() for _ in range(4)]
    finally:
        served.stop()
    assert answers == [{"host": "127.0.0.1", "scheme": "http"}] * 4


def test_run_reports_an_app_it_cannot_load(tmp_path):
    result = subprocess.run(
        [str(BOCADILLO), "run", "tests.integration.cli_app:nothing"],
        cwd=ROOT,
        capture_output=True,
        timeout=60,
    )
    assert result.returncode == 1
    assert b"cannot load 'tests.integration.cli_app:nothing'" in result.stderr


@pytest.mark.parametrize(
    ("settings", "expected"),
    [
        (
            {},
            {
                "ws_max_size": 128 * KiB,
                "ws_per_message_deflate": False,
                "http": http_protocol(),
                "h11_max_incomplete_event_size": 32 * KiB,
                "timeout_graceful_shutdown": 6,
            },
        ),
        (
            {
                "max_message_size": None,
                "ws_per_message_deflate": True,
                "max_header_size": 8 * KiB,
                "shutdown_timeout": 0.5,
                "limit_concurrency": 100,
            },
            {
                "ws_max_size": 16 * 1024 * KiB,
                "ws_per_message_deflate": True,
                "h11_max_incomplete_event_size": 8 * KiB,
                "timeout_graceful_shutdown": 2,
                "limit_concurrency": 100,
            },
        ),
        ({"limit_concurrency": None}, {"limit_concurrency": None}),
        ({"limit_concurrency": "off"}, {"limit_concurrency": None}),
        ({"limit_concurrency": "250"}, {"limit_concurrency": 250}),
    ],
)
def test_uvicorn_options_follow_the_settings(settings, expected):
    options = uvicorn_options(App(**settings).settings)
    assert {key: options[key] for key in expected} == expected


def test_limit_concurrency_auto_keeps_file_descriptors_free():
    import resource

    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    options = uvicorn_options(App().settings)
    assert options["limit_concurrency"] == max(1, soft - FD_MARGIN)
    with pytest.raises(ConfigurationError, match="limit_concurrency"):
        uvicorn_options(App(limit_concurrency="lots").settings)


def test_dev_reloads_and_run_does_not():
    parser = build_parser()
    assert parser.parse_args(["dev", "app:app"]).reload is True
    run = parser.parse_args(["run", "app:app"])
    assert (run.reload, run.host, run.port, run.proxy_headers) == (False, "127.0.0.1", 8000, False)
