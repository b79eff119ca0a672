"""What uvicorn cannot bound, measured on loopback (the figures in docs/deployment.md).

Serves ``tests/integration/cli_app.py`` with ``bocadillo run`` (a socket bound here and
handed over with ``--fd``) and, with a bounded number of sockets for a bounded time:

1. ``half``: N WebSocket upgrade requests whose head never ends; how many are still open
   after 5, 15 and 30 seconds (uvicorn's keep-alive timeout is 5 s).
2. ``trickle``: N HTTP requests sending one header byte per second.
3. ``pings``: one client sends P pings and never reads the pongs; the server's RSS, under
   ``bocadillo run`` and under a bare ``python -m uvicorn``.
4. ``limit``: with ``limit_concurrency`` = L, L half-sent requests held open, then one
   normal request: answered 503 at once rather than left waiting for a descriptor.

Run: ``.venv/bin/python -m bench.exposure [--n 500] [--hold 30]``. Loopback only.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

__all__ = ["main"]

ROOT = Path(__file__).resolve().parents[1]
BOCADILLO = Path(sys.executable).with_name("bocadillo")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError("no VmRSS")


class Server:
    """``bocadillo run`` (or, with ``bare=True``, ``python -m uvicorn``) on a socket bound here."""

    def __init__(self, env: dict[str, str] | None = None, *, bare: bool = False) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4096)
        self.port = self.sock.getsockname()[1]
        self.log = Path(tempfile.mkstemp(suffix=".log")[1])
        environ = {**os.environ, **(env or {})}
        environ.pop("PYTHONASYNCIODEBUG", None)
        with open(self.log, "wb") as out:
            command = [sys.executable, "-m", "uvicorn"] if bare else [str(BOCADILLO), "run"]
            self.process = subprocess.Popen(
                [*command, "tests.integration.cli_app:app"]
                + ["--fd", str(self.sock.fileno()), "--log-level", "warning"],
                cwd=ROOT,
                env=environ,
                pass_fds=[self.sock.fileno()],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + 30
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(self.log.read_text())
            time.sleep(0.05)

    def _answers(self) -> bool:
        try:
            return self.get("/client").startswith(b"HTTP/1.1 200")
        except OSError:
            return False

    def get(self, path: str, timeout: float = 5.0) -> bytes:
        with socket.create_connection(("127.0.0.1", self.port), timeout=timeout) as sock:
            sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
            return sock.recv(4096)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        self.sock.close()


def is_open(sock: socket.socket) -> bool:
    try:
        return sock.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT) != b""
    except BlockingIOError:
        return True
    except OSError:
        return False


def half_sent(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port))
    key = base64.b64encode(os.urandom(16)).decode()
    sock.sendall(
        (
            f"GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
        ).encode()  # no Sec-WebSocket-Version, no blank line: the head never ends
    )
    return sock


def hold(socks: list[socket.socket], marks: list[float], step: float = 0.0) -> dict[str, int]:
    """Count the open sockets at each mark (seconds); with ``step``, send a header byte on
    each socket every ``step`` seconds meanwhile (a trickle)."""
    start = time.monotonic()
    counts = {}
    next_byte = start + step if step else None
    for mark in marks:
        while time.monotonic() - start < mark:
            if next_byte is not None and time.monotonic() >= next_byte:
                for sock in socks:
                    try:
                        sock.send(b"a")
                    except OSError:
                        pass
                next_byte += step
            time.sleep(0.1)
        counts[f"{mark:g}s"] = sum(is_open(sock) for sock in socks)
    return counts


def scenario_half(n: int, marks: list[float]) -> dict[str, object]:
    server = Server()
    try:
        before = rss_kib(server.process.pid)
        socks = [half_sent(server.port) for _ in range(n)]
        counts = hold(socks, marks)
        served = server.get("/client").split(b"\r\n", 1)[0].decode()
        grown = rss_kib(server.process.pid) - before
        for sock in socks:
            sock.close()
        return {"opened": n, "open": counts, "rss_growth_kib": grown, "new_request": served}
    finally:
        server.stop()


def scenario_trickle(n: int, marks: list[float]) -> dict[str, object]:
    server = Server()
    try:
        socks = []
        for _ in range(n):
            sock = socket.create_connection(("127.0.0.1", server.port))
            sock.sendall(b"GET /client HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: ")
            socks.append(sock)
        counts = hold(socks, marks, step=1.0)
        for sock in socks:
            sock.close()
        return {"opened": n, "open": counts}
    finally:
        server.stop()


def scenario_pings(pings: int, *, bare: bool = False) -> dict[str, object]:
    server = Server(bare=bare)
    try:
        sock = socket.create_connection(("127.0.0.1", server.port))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        key = base64.b64encode(os.urandom(16)).decode()
        sock.sendall(
            (
                f"GET /raw HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n"
                f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n"
                f"Sec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        head = b""
        while b"\r\n\r\n" not in head:
            head += sock.recv(1)
        before = rss_kib(server.process.pid)
        mask = os.urandom(4)
        payload = bytes(b ^ mask[i % 4] for i, b in enumerate(b"p" * 125))
        frame = bytes([0x89, 0x80 | 125]) + mask + payload  # a masked 125-byte ping
        sock.settimeout(5)  # the server stopped reading: the pings wait in socket buffers
        sent = 0
        start = time.monotonic()
        try:
            for _ in range(pings // 1000):
                sock.sendall(frame * 1000)  # and never read a pong
                sent += 1000
        except OSError as exc:
            error = type(exc).__name__
        else:
            error = None
        elapsed = time.monotonic() - start
        grown = rss_kib(server.process.pid) - before
        sock.close()
        return {
            "pings_sent": sent,
            "bytes_sent": sent * len(frame),
            "seconds": round(elapsed, 1),
            "client_error": error,
            "rss_growth_kib": grown,
        }
    finally:
        server.stop()


def scenario_limit(limit: int) -> dict[str, object]:
    server = Server(env={"BOCADILLO_LIMIT_CONCURRENCY": str(limit)})
    try:
        socks = [half_sent(server.port) for _ in range(limit)]
        start = time.monotonic()
        answer = server.get("/client").split(b"\r\n", 1)[0].decode()
        waited = time.monotonic() - start
        for sock in socks:
            sock.close()
        return {"held": limit, "new_request": answer, "answered_in_s": round(waited, 3)}
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="half-sent requests (500)")
    parser.add_argument("--trickle", type=int, default=200, help="trickling requests (200)")
    parser.add_argument("--hold", type=float, default=30.0, help="seconds to hold them (30)")
    parser.add_argument("--pings", type=int, default=200_000, help="pings never read")
    parser.add_argument("--limit", type=int, default=100, help="limit_concurrency (100)")
    args = parser.parse_args()
    marks = [m for m in (5.0, 15.0, args.hold) if m <= args.hold]
    results = {
        "half_sent_upgrades": scenario_half(args.n, marks),
        "trickling_requests": scenario_trickle(args.trickle, marks),
        "pings_never_read": scenario_pings(args.pings),
        "pings_never_read_bare_uvicorn": scenario_pings(args.pings, bare=True),
        "limit_concurrency": scenario_limit(args.limit),
    }
    json.dump(results, sys.stdout, indent=2)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
