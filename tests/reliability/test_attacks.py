"""The attacks of issue #16, all at once, against the example chat served as the README says.

``bocadillo run example_chat.app:app`` runs in its own process (on a socket bound here and
handed over with ``--fd``), with the chat's settings and Bocadillo's defaults, nothing
tuned for the test. Its RSS is read from ``/proc/<pid>/status`` right after startup (the
baseline), then every 50 ms. A probe process (``chat_probe.py``: ``PROBE_USERS`` normal
chat users on 127.0.0.1) sends messages to ``general`` and times each one's round trip to
its own broadcast, before and during the attacks.

The attackers, all in this process, on other loopback addresses (every 127/8 address is
loopback on Linux, and the per-IP cap counts by address):

- held for the whole window: ``HALF_SENT`` HTTP requests and as many WebSocket upgrade
  requests whose heads never end (uvicorn has no timeout for them: docs/deployment.md,
  "What uvicorn cannot bound"); ``CAP`` WebSocket connections from 127.0.0.2, the per-IP
  cap; a client that sends pings and never reads the pongs;
- ``WAVES`` waves, one a second, each of (started one after the other across the second):
  a client offering permessage-deflate and sending a deflate bomb (16 MiB of zeros in
  16 kB) as a compressed frame anyway; a frame header announcing 1 MiB; a 100 kB message
  on ``/ws``; a ``BODY`` chunked JSON body to ``POST /``; a chat user sending three times
  its rate allowance into ``general`` at once; a client sending 40,000 minimal frames
  (320 kB) at once; ``OVER_CAP`` more connections from 127.0.0.2; ``BAD_ORIGINS``
  handshakes from a foreign origin or with ``Origin: null``.

The example chat has no view that reads a request body (its only HTTP view is the page,
``GET /``), so the body goes to ``POST /``: answered 405 at once, and the server reads the
rest of the body and drops it, buffering none of it. ``max_body_size``'s 413 for a view that
reads its body is tested over real sockets in ``tests/integration/test_body_limit_live.py``.

Every attack must get its documented answer, the server's RSS must stay within ``RSS_BOUND``
of its baseline, and the probe must be served in time. How "in time" is measured: the
probe's wall-clock round trips are recorded (``docs/deployment.md`` quotes them), but on
the 2 shared cores this runs on, other work takes the CPU from the server: in runs during
development the server's event loop waited up to 1 s for a CPU within a single round trip
(``/proc/<pid>/schedstat``), so a bound on the slowest wall-clock round trip, or on the
99th percentile, failed on machine noise alone. What the server itself makes a user wait
is the time its event loop *runs* while the user's message is in flight: an event loop held
by an attack (the 840 ms of the issue's deflate bomb) shows there in full, and other
processes' work does not. That figure still grows with the machine's load (work piles up
while the server waits for a CPU, and the chat's handlers run in threads that wait for the
loop's thread): in ten runs at load averages of 4 to 15, its maximum was 32 to 60 ms but
reached 96 ms once, while its 99th percentile stayed between 24 and 54 ms. So the 99th
percentile of the server's share must stay under ``LATENCY_BOUND`` (the maximum is
recorded), and so must the median wall-clock round trip. The users' round trips start on
interleaved slots that a slow round trip does not shift, so that one pause of the machine
touches few of them.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
import zlib
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from bocadillo.config import DEFAULTS
from example_chat.app import RATE_LIMIT
from tests.integration.test_body_limit_live import read_response
from tests.live import eventually
from tests.uvicorn_process import ROOT, BocadilloRun, bocadillo_run

from .chat_probe import schedstat
from .harness import log_records, record_figures
from .wsclient import BINARY, TEXT, HandshakeError, WSClient, encode_frame, frame_header, open_ws

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

KiB = 1024
MiB = 1024 * KiB
#: What the issue asks of one server under these attacks.
RSS_BOUND = 64 * MiB
LATENCY_BOUND = 0.100

PROBE_USERS = 6
WAVES = 20
HALF_SENT = 200
CAP = DEFAULTS["max_connections_per_ip"]
OVER_CAP = 5
BAD_ORIGINS = 10
BODY = 16 * MiB
#: Pings the pinger sends at most (26 MB) before it must have been stopped.
PINGS = 200_000
TIMEOUT = 30.0

FLOOD_IP = "127.0.0.2"  # the connections up to and past the per-IP cap
ATTACKER_IP = "127.0.0.3"  # every other attack

ALLOWANCE, _ = RATE_LIMIT
VIOLATIONS = DEFAULTS["rate_limit_violations"]
FRAME_LIMIT = 2 * DEFAULTS["max_message_size"]  # uvicorn's ws_max_size under bocadillo run


def envelope(kind: str, data: Any, request_id: int) -> bytes:
    return json.dumps({"type": kind, "data": data, "id": request_id}).encode()


async def raw_socket(port: int, host: str, *, rcvbuf: int | None = None) -> socket.socket:
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((host, 0))
        await asyncio.wait_for(loop.sock_connect(sock, ("127.0.0.1", port)), TIMEOUT)
    except BaseException:
        sock.close()
        raise
    return sock


async def told_to_close(client: WSClient) -> None:
    """Wait for the server's close frame, then drop the connection. (A client the app
    closes while it is still sending in bulk is not read again: the server closes the TCP
    connection only after uvicorn's close timeout, 10 s.)"""
    await eventually(
        lambda: client.close_code is not None or client.lost.done(),
        TIMEOUT,
        what="the server's close frame",
    )
    client.abort()


def replies(client: WSClient) -> list[str]:
    """The responses and error codes a client got (pushed messages left out)."""
    envelopes = [json.loads(payload) for _, payload in client.inbox]
    return [
        e["type"] if e["type"] == "response" else e["data"]["code"]
        for e in envelopes
        if e["type"] in ("response", "error")
    ]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def percentile(ordered: list[float], fraction: float) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def unanswered(sock: socket.socket) -> bool:
    """Whether the server has neither answered nor closed this connection."""
    try:
        sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
    except BlockingIOError:
        return True
    return False


async def in_bursts(make: Callable[[], Awaitable[Any]], n: int, burst: int = 50) -> list[Any]:
    results: list[Any] = []
    for start in range(0, n, burst):
        results += await asyncio.gather(*(make() for _ in range(min(burst, n - start))))
    return results


class Probe:
    """The probe process (``chat_probe.py``) and what it reported."""

    def __init__(self, server: BocadilloRun) -> None:
        environ = dict(os.environ)
        environ.pop("PYTHONASYNCIODEBUG", None)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.reliability.chat_probe", server.ws_url + "/ws"]
            + [str(PROBE_USERS), str(server.process.pid)],
            cwd=ROOT,
            env=environ,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        #: ``(sent, round trip, server's loop ran, server's loop waited for a CPU)``.
        self.samples: list[tuple[float, ...]] = []
        self.errors: list[str] = []
        self.ready = asyncio.Event()
        self.done = asyncio.Event()
        assert self.process.stdout is not None
        loop = asyncio.get_running_loop()
        loop.add_reader(self.process.stdout.fileno(), self._readable)
        self._buffer = b""

    def _readable(self) -> None:
        assert self.process.stdout is not None
        data = os.read(self.process.stdout.fileno(), 65536)
        if not data:
            asyncio.get_running_loop().remove_reader(self.process.stdout.fileno())
            self.done.set()
            return
        self._buffer += data
        *lines, self._buffer = self._buffer.split(b"\n")
        for line in lines:
            text = line.decode()
            if text == "ready":
                self.ready.set()
            elif text.startswith("sample "):
                self.samples.append(tuple(map(float, text.split()[1:])))
            elif text != "done":
                self.errors.append(text)

    async def stop(self) -> None:
        """Close its standard input (it stops), and wait for its last line."""
        assert self.process.stdin is not None
        self.process.stdin.close()
        await asyncio.wait_for(self.done.wait(), TIMEOUT)
        self.process.wait(TIMEOUT)

    def kill(self) -> None:
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(TIMEOUT)
        if self.process.stdout is not None:
            asyncio.get_running_loop().remove_reader(self.process.stdout.fileno())
            self.process.stdout.close()


class Attacks:
    """Every attack, and the answers it got."""

    def __init__(self, server: BocadilloRun) -> None:
        self.port = server.port
        self.answers: dict[str, list[Any]] = {}
        self.held: list[socket.socket] = []
        self.capped: list[WSClient] = []
        self.pinger: socket.socket | None = None
        bomb = zlib.compressobj(wbits=-15)
        self.bomb_frame = bytearray(
            encode_frame(TEXT, bomb.compress(bytes(16 * MiB)) + bomb.flush())
        )
        self.bomb_frame[0] |= 0x40  # RSV1: "this frame is compressed"
        self.minimal_frames = encode_frame(TEXT, b"{}") * 40_000

    def record(self, attack: str, answer: Any) -> None:
        self.answers.setdefault(attack, []).append(answer)

    # Held for the whole window -----------------------------------------------------------

    async def half_sent(self, upgrade: bool) -> None:
        async def one() -> None:
            sock = await raw_socket(self.port, ATTACKER_IP)
            self.held.append(sock)
            head = b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            if not upgrade:
                head = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            await asyncio.get_running_loop().sock_sendall(sock, head + b"X-Never: ends")

        await in_bursts(one, HALF_SENT)

    async def up_to_the_cap(self) -> None:
        async def one() -> None:
            client = await open_ws(self.port, "/ws", local_host=FLOOD_IP, timeout=TIMEOUT)
            self.capped.append(client)
            _, welcome = await client.next_message(TIMEOUT)
            self.record("admitted up to the cap", json.loads(welcome)["type"])

        await in_bursts(one, CAP, burst=8)

    async def pings_never_read(self) -> None:
        loop = asyncio.get_running_loop()
        sock = self.pinger = await raw_socket(self.port, ATTACKER_IP, rcvbuf=4 * KiB)
        await loop.sock_sendall(
            sock,
            b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            b"Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
            b"Sec-WebSocket-Version: 13\r\n\r\n",
        )
        head = b""
        while b"\r\n\r\n" not in head:  # one byte at a time: no frame is taken off
            head += await asyncio.wait_for(loop.sock_recv(sock, 1), TIMEOUT)
        assert head.startswith(b"HTTP/1.1 101")
        pings = encode_frame(0x9, b"p" * 125) * 1000
        sent = 0
        while sent < PINGS:
            try:
                await asyncio.wait_for(loop.sock_sendall(sock, pings), 2.0)
            except asyncio.TimeoutError:
                break  # the server stopped reading: it cannot write the pongs
            sent += 1000
        self.record("pings sent before the server stopped reading", sent)

    # Waves --------------------------------------------------------------------------------

    async def compressed(self) -> None:
        offer = [("Sec-WebSocket-Extensions", "permessage-deflate; client_max_window_bits")]
        client = await open_ws(self.port, "/ws", headers=offer, local_host=ATTACKER_IP)
        negotiated = b"sec-websocket-extensions" in client.response.lower()
        client.send_raw(bytes(self.bomb_frame))
        await client.wait_closed(TIMEOUT)
        self.record("compressed", (negotiated, client.close_code, client.close_reason))

    async def frame_too_large(self) -> None:
        client = await open_ws(self.port, "/ws", local_host=ATTACKER_IP)
        client.send_raw(frame_header(BINARY, MiB) + os.urandom(4))  # the header, no payload
        await client.wait_closed(TIMEOUT)
        self.record("frame too large", (client.close_code, client.close_reason))

    async def message_too_large(self) -> None:
        client = await open_ws(self.port, "/ws", local_host=ATTACKER_IP)
        client.send_text(envelope("hello", {"name": "x" * 100 * KiB}, 1))
        await client.wait_closed(TIMEOUT)
        self.record("message too large", (replies(client), client.close_code, client.close_reason))

    async def chunked_body(self) -> None:
        loop = asyncio.get_running_loop()
        sock = await raw_socket(self.port, ATTACKER_IP)
        try:
            await loop.sock_sendall(
                sock,
                b"POST / HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n",
            )
            chunk = b"[" + b"1," * (32 * KiB - 1)  # a JSON array that never ends
            data = b"%x\r\n" % len(chunk) + chunk + b"\r\n"
            for _ in range(BODY // len(chunk)):
                await asyncio.wait_for(loop.sock_sendall(sock, data), TIMEOUT)
            await loop.sock_sendall(sock, b"0\r\n\r\n")
            status, _, body = await asyncio.wait_for(read_response(sock), TIMEOUT)
        finally:
            sock.close()
        self.record("chunked body", (status, json.loads(body)["error"]))

    async def rate_flood(self, wave: int) -> None:
        """Spam into ``general``: three times the allowance of messages, at once."""
        client = await open_ws(self.port, "/ws", local_host=ATTACKER_IP)
        name = f"flooder-{wave}"
        frames = [envelope("hello", {"name": name}, 1), envelope("join", "general", 2)]
        frames += [
            envelope("message", {"room": "general", "text": f"spam {n}"}, n)
            for n in range(3, 3 + 3 * ALLOWANCE)
        ]
        client.send_raw(b"".join(encode_frame(TEXT, frame) for frame in frames))
        await told_to_close(client)
        self.record("rate flood", (replies(client), client.close_code, client.close_reason))

    async def frame_flood(self) -> None:
        """40,000 minimal frames (``{}``, 320 kB) in one write."""
        client = await open_ws(self.port, "/ws", local_host=ATTACKER_IP)
        client.send_raw(self.minimal_frames)
        await told_to_close(client)
        self.record("frame flood", (replies(client), client.close_code, client.close_reason))

    async def over_the_cap(self) -> None:
        client = await open_ws(self.port, "/ws", local_host=FLOOD_IP)
        await client.wait_closed(TIMEOUT)
        self.record("over the cap", (client.close_code, client.close_reason, client.inbox))

    async def bad_origin(self, origin: str) -> None:
        try:
            client = await open_ws(
                self.port, "/ws", headers=[("Origin", origin)], local_host=ATTACKER_IP
            )
        except HandshakeError as exc:
            self.record("bad origin", exc.status)
        else:
            client.abort()
            self.record("bad origin", 101)

    async def wave(self, n: int) -> None:
        """One of each attack, started one after the other across a second, as attackers
        acting independently would arrive (not all within the same millisecond)."""
        attacks: list[Awaitable[None]] = [
            self.compressed(),
            self.frame_too_large(),
            self.message_too_large(),
            self.chunked_body(),
            self.rate_flood(n),
            self.frame_flood(),
            *(self.over_the_cap() for _ in range(OVER_CAP)),
            *(self.bad_origin("null" if i % 2 else "http://evil.test") for i in range(BAD_ORIGINS)),
        ]

        async def after(delay: float, attack: Awaitable[None]) -> None:
            await asyncio.sleep(delay)
            await attack

        await asyncio.gather(*(after(i / len(attacks), a) for i, a in enumerate(attacks)))

    async def run(self) -> None:
        """Open what is held, one attack after the other, then send the waves, one a
        second, while all of it is held."""
        loop = asyncio.get_running_loop()
        await asyncio.gather(self.half_sent(upgrade=False), self.half_sent(upgrade=True))
        await self.up_to_the_cap()
        await self.pings_never_read()
        for n in range(WAVES):
            started = loop.time()
            await self.wave(n)
            await asyncio.sleep(max(0.0, started + 1.0 - loop.time()))
        self.record("half-sent requests unanswered", sum(map(unanswered, self.held)))
        self.record("held up to the cap", sum(client.connected for client in self.capped))

    def close(self) -> None:
        for sock in self.held:
            sock.close()
        for client in self.capped:
            client.abort()
        if self.pinger is not None:
            self.pinger.close()


@pytest.mark.timeout(180)
async def test_the_attacks_together_leave_memory_and_latency_bounded(tmp_path):
    asyncio.get_running_loop().set_debug(False)
    server = bocadillo_run("example_chat.app:app", tmp_path / "server.log")
    probe: Probe | None = None
    attacks = Attacks(server)
    try:
        baseline = server.rss_kib() * KiB
        probe = Probe(server)
        await asyncio.wait_for(probe.ready.wait(), TIMEOUT)
        await eventually(
            lambda: len(probe.samples) >= 5 * PROBE_USERS or probe.done.is_set(),
            TIMEOUT,
            what="round trips before any attack",
        )
        assert probe.errors == [] and not probe.done.is_set(), probe.errors
        warm = server.rss_kib() * KiB

        peak = [warm]

        async def sample_rss() -> None:
            while True:
                peak[0] = max(peak[0], server.rss_kib() * KiB)
                await asyncio.sleep(0.05)

        sampler = asyncio.create_task(sample_rss())
        loop_stat = Path(f"/proc/{server.process.pid}/schedstat")  # the event loop's thread
        cpu_before = schedstat(loop_stat)
        attack_start = time.monotonic()
        try:
            await attacks.run()
        finally:
            attack_end = time.monotonic()
            cpu_after = schedstat(loop_stat)
            attacks.close()
            sampler.cancel()
            await asyncio.gather(sampler, return_exceptions=True)
        await probe.stop()
    finally:
        attacks.close()
        if probe is not None:
            probe.kill()
        server.stop()

    before = [sample for sample in probe.samples if sample[0] < attack_start]
    during = [sample for sample in probe.samples if attack_start <= sample[0] <= attack_end]
    wall = sorted(sample[1] for sample in during)
    ran = sorted(sample[2] for sample in during)
    answers = attacks.answers
    figures = {
        "baseline_rss_mb": round(baseline / MiB, 1),
        "rss_after_warm_up_mb": round(warm / MiB, 1),
        "peak_rss_mb": round(peak[0] / MiB, 1),
        "peak_growth_mb": round((peak[0] - baseline) / MiB, 1),
        "attack_seconds": round(attack_end - attack_start, 1),
        "round_trips_before": len(before),
        "round_trips_during": len(during),
        "rtt_before_max_ms": ms(max(sample[1] for sample in before)),
        "rtt_during_median_ms": ms(percentile(wall, 0.5)),
        "rtt_during_p99_ms": ms(percentile(wall, 0.99)),
        "rtt_during_max_ms": ms(wall[-1]),
        "server_ran_during_a_round_trip_median_ms": ms(percentile(ran, 0.5)),
        "server_ran_during_a_round_trip_p99_ms": ms(percentile(ran, 0.99)),
        "server_ran_during_a_round_trip_max_ms": ms(ran[-1]),
        "server_waited_during_a_round_trip_max_ms": ms(max(sample[3] for sample in during)),
        "rtt_minus_server_wait_max_ms": ms(max(sample[1] - sample[3] for sample in during)),
        "server_loop_cpu_s": round(cpu_after[0] - cpu_before[0], 2),
        "server_loop_waited_for_cpu_s": round(cpu_after[1] - cpu_before[1], 2),
        "load_average": os.getloadavg(),
        "pings_sent_before_the_stall": answers["pings sent before the server stopped reading"][0],
    }
    record_figures("attacks", figures)

    # Every attack got its documented answer.
    assert probe.errors == []
    assert answers["admitted up to the cap"] == ["welcome"] * CAP
    assert answers["held up to the cap"] == [CAP]
    assert answers["over the cap"] == [(1013, "server busy", [])] * (WAVES * OVER_CAP)
    assert answers["half-sent requests unanswered"] == [2 * HALF_SENT]
    assert figures["pings_sent_before_the_stall"] < PINGS
    assert answers["compressed"] == [(False, 1002, "reserved bits must be 0")] * WAVES
    too_large = f"frame with {MiB} bytes exceeds limit of {FRAME_LIMIT} bytes"
    assert answers["frame too large"] == [(1009, too_large)] * WAVES
    assert (
        answers["message too large"] == [(["message_too_large"], 1009, "message too large")] * WAVES
    )
    assert answers["chunked body"] == [(405, "Method Not Allowed")] * WAVES
    flood = ["response"] * ALLOWANCE + ["rate_limited"] * (VIOLATIONS - 1)
    assert answers["rate flood"] == [(flood, 1008, "rate limit exceeded")] * WAVES
    junk = ["invalid_envelope"] * ALLOWANCE + ["rate_limited"] * (VIOLATIONS - 1)
    assert answers["frame flood"] == [(junk, 1008, "rate limit exceeded")] * WAVES
    assert answers["bad origin"] == [403] * (WAVES * BAD_ORIGINS)

    # The server held, and served everyone else in time.
    assert peak[0] - baseline < RSS_BOUND, figures
    assert len(during) >= WAVES * PROBE_USERS, figures
    # The server's own share of the round trips, and the typical wall-clock round trip
    # (see the module docstring for why not the slowest one).
    assert percentile(ran, 0.99) < LATENCY_BOUND, figures
    assert percentile(wall, 0.5) < LATENCY_BOUND, figures
    errors = [r for r in log_records(server.log.read_text()) if not r.startswith("INFO:")]
    assert errors == [], errors[:10]
