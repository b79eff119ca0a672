"""Per-room traffic on Redis (issue #19): W workers on one ``redis-server``, R rooms of C
clients each, every room publishing at a fixed rate.

Each worker is a separate ``bench.serve`` process of ``bench/apps/rooms_app.py`` with the
hub on one fresh ``redis-server`` (same prefix). The load generator (one uvloop process,
picows clients, like ``bench/load.py``) connects C clients to each room, each joins its
room with a ``resume`` message (answered once its worker receives the room), then one
client per room sends ``say`` at ``--rate`` messages per second; its worker broadcasts it
to the room. Every client timestamps what it receives against the sender's
``time.monotonic()`` (one clock for every process of the machine).

``--placement room`` (the default) connects all of a room's clients to one worker (room
``r`` on worker ``r mod W``): a worker has members in 1/W of the rooms. ``--placement
spread`` connects the clients of every room to every worker in turn: each worker has
members in every room.

Measured over ``--duration`` seconds after ``--warmup``: messages delivered per second
(and what was offered), p50/p99 latency from the ``say`` to each member, and, per worker,
the frames and bytes it read from Redis (the bytes from ``ss``'s ``bytes_received`` of
its connections to Redis, which works on any version of the code; the frames from its
backend counters when it has them) and its CPU use.

Pinning (``--pin``): ``split`` (default) puts worker *i* on core *i* mod 2 and
redis-server and the load generator on core 1; ``server-core`` puts every worker on core
0 (as ``bench.run``'s ``fanout-redis``) and redis-server and the load generator on core 1.

    bench/.venv/bin/python -m bench.rooms --workers 1 2 4 --rooms 1000 --clients 10 --rate 2
"""

from __future__ import annotations

import argparse
import array
import asyncio
import http.client
import json
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from .run import ROOT, RedisServer, log, server_env

APP = "bench.apps.rooms_app:app"
STATS_PATH = "/hub-stats"
RAW = ROOT / "bench" / "results" / "raw"


# The harness --------------------------------------------------------------------------------


class Worker:
    """One worker process on ``core``, on a pre-bound loopback port."""

    def __init__(self, core: str, env: dict[str, str], log_path: Path) -> None:
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        self.port: int = listener.getsockname()[1]
        self.core = core
        command = ["taskset", "-c", core, sys.executable, "-m", "bench.serve", APP]
        command += ["--fd", str(listener.fileno())]
        self._log = open(log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            pass_fds=(listener.fileno(),),
            env=server_env(env),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        listener.close()
        self.pid = self.process.pid

    def wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"a worker exited with {self.process.returncode}")
            try:
                connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=1)
                connection.request("GET", "/json")
                if connection.getresponse().status == 200:
                    connection.close()
                    return
                connection.close()
            except OSError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"a worker was not ready after {timeout} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()


def cores(pin: str, workers: int) -> tuple[list[str], str]:
    """The core of each worker, and the core of redis-server and the load generator."""
    if pin == "server-core":
        return ["0"] * workers, "1"
    return [str(i % 2) for i in range(workers)], "1"


def run_case(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """One measurement with ``workers`` workers on a fresh redis-server."""
    RAW.mkdir(parents=True, exist_ok=True)
    worker_cores, load_core = cores(args.pin, workers)
    redis = RedisServer(RAW / "rooms-redis")
    started: list[Worker] = []
    try:
        env = {
            "BOCADILLO_HUB_URL": redis.url,
            "BOCADILLO_HUB_PREFIX": f"rooms-{uuid.uuid4().hex[:8]}",
            "BOCADILLO_STATS_ENDPOINT": STATS_PATH,
        }
        for core in worker_cores:
            started.append(Worker(core, env, RAW / "servers-rooms.log"))
        for worker in started:
            worker.wait_ready()
        command = ["taskset", "-c", load_core, sys.executable, "-m", "bench.rooms", "load"]
        command += ["--ports", *(str(w.port) for w in started)]
        command += ["--pids", *(str(w.pid) for w in started)]
        command += ["--redis-port", str(redis.port), "--redis-pid", str(redis.pid)]
        for name in ("rooms", "clients", "rate", "duration", "warmup", "placement"):
            command += [f"--{name}", str(getattr(args, name))]
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=args.timeout, check=False
        )
        if done.returncode != 0:
            tail = done.stderr.strip().splitlines()[-3:]
            return {"workers": workers, "error": " | ".join(tail) or "?"}
        result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        result["workers"] = workers
        result["cores"] = worker_cores
        result["load_core"] = load_core
        return result
    except subprocess.TimeoutExpired:
        return {"workers": workers, "error": f"timed out after {args.timeout} s"}
    finally:
        for worker in started:
            worker.stop()
        redis.stop()


def show(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"workers={result['workers']}: ERROR {result['error']}"
    per = result["per_worker"]
    frames = [w["frames_from_redis"] for w in per]
    return (
        f"workers={result['workers']} cores={','.join(result['cores'])} "
        f"delivered={result['delivered_per_s']:,.0f}/s of {result['offered_per_s']:,.0f} "
        f"p50={result['p50_ms']} ms p99={result['p99_ms']} ms "
        f"from Redis per worker: {[w['bytes_from_redis_per_s'] for w in per]} B/s, "
        f"frames {frames} "
        f"cpu% workers {[w['cpu_pct'] for w in per]} redis {result['redis_cpu_pct']} "
        f"load {result['load_cpu_pct']}"
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        return load_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.rooms", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--reps", type=int, default=1, help="repetitions (order alternates)")
    add_load_options(parser)
    parser.add_argument("--pin", choices=("split", "server-core"), default="split")
    parser.add_argument("--timeout", type=float, default=300.0, help="per measurement")
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    args = parser.parse_args(argv)
    results = []
    for rep in range(args.reps):
        order = args.workers if rep % 2 == 0 else list(reversed(args.workers))
        for workers in order:
            log(f"rooms: {workers} worker(s), repetition {rep + 1}")
            result = run_case(args, workers)
            result["rep"] = rep
            results.append(result)
            print(show(result), flush=True)
    if args.json is not None:
        args.json.write_text(json.dumps(results, indent=1))
    return 0 if all("error" not in r for r in results) else 1


def add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10, help="clients per room")
    parser.add_argument("--rate", type=float, default=2.0, help="publications per room per s")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--placement", choices=("room", "spread"), default="room")


# The load generator -------------------------------------------------------------------------

_SAID = b'{"type":"said"'
_T = b'"t":'
_RESPONSE = b'{"type":"response"'


def percentile(values: array.array[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return round(ordered[rank - 1] * 1000, 2)


def schedstat_seconds(pid: int) -> float:
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


_SS_LINE = re.compile(r"pid=(\d+),")
_SS_BYTES = re.compile(r"bytes_received:(\d+)")


def bytes_from_redis(redis_port: int) -> dict[int, int]:
    """Bytes each process has received on its connections to redis-server (``ss``)."""
    done = subprocess.run(
        ["ss", "-tinpH", "state", "established", "dst", f"127.0.0.1:{redis_port}"],
        capture_output=True,
        text=True,
        check=True,
    )
    totals: dict[int, int] = {}
    pid = None
    for line in done.stdout.splitlines():
        found = _SS_LINE.search(line)
        if found:
            pid = int(found.group(1))
        counted = _SS_BYTES.search(line)
        if counted and pid is not None:
            totals[pid] = totals.get(pid, 0) + int(counted.group(1))
            pid = None
    return totals


def hub_stats(port: int) -> dict[str, Any]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection.request("GET", STATS_PATH)
        body: dict[str, Any] = json.loads(connection.getresponse().read())
        return body
    finally:
        connection.close()


class Run:
    def __init__(self) -> None:
        self.recording = False
        self.delivered = 0
        self.latencies: array.array[float] = array.array("d")
        self.joined = 0
        self.bad = 0


def load_main(argv: list[str]) -> int:
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m bench.rooms load")
    parser.add_argument("--ports", type=int, nargs="+", required=True)
    parser.add_argument("--pids", type=int, nargs="+", required=True)
    parser.add_argument("--redis-port", type=int, required=True)
    parser.add_argument("--redis-pid", type=int, required=True)
    add_load_options(parser)
    args = parser.parse_args(argv)
    result = uvloop.run(load(args))
    print(json.dumps(result))
    return 0


async def load(args: argparse.Namespace) -> dict[str, Any]:
    import resource

    from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    run = Run()
    monotonic = time.monotonic

    class Client(WSListener):  # type: ignore[misc]
        def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
            if frame.msg_type is not WSMsgType.TEXT:
                return
            payload = frame.get_payload_as_bytes()
            if payload.startswith(_SAID):
                if run.recording:
                    at = payload.find(_T) + len(_T)
                    end = payload.find(b",", at)
                    run.latencies.append(monotonic() - float(payload[at:end]))
                    run.delivered += 1
            elif payload.startswith(_RESPONSE):
                run.joined += 1
            else:
                run.bad += 1

    workers = len(args.ports)
    gate = asyncio.Semaphore(200)

    async def connect(port: int) -> tuple[WSTransport, Any]:
        async with gate:
            return await ws_connect(Client, f"ws://127.0.0.1:{port}/ws")

    placement: list[int] = []  # the worker of each client, room by room
    for room in range(args.rooms):
        for member in range(args.clients):
            if args.placement == "room":
                placement.append(room % workers)
            else:
                placement.append((room * args.clients + member) % workers)
    connections = await asyncio.wait_for(
        asyncio.gather(*(connect(args.ports[w]) for w in placement)), 120
    )
    # Welcome envelopes are not sent by this app; join every room with a resume.
    for index, (transport, _) in enumerate(connections):
        room = f"r{index // args.clients}"
        body = {"type": "resume", "id": 1, "data": {"rooms": {room: None}}}
        transport.send(WSMsgType.TEXT, json.dumps(body, separators=(",", ":")).encode())
    deadline = monotonic() + 120
    while run.joined < len(connections):
        if monotonic() > deadline:
            raise RuntimeError(f"only {run.joined} of {len(connections)} clients joined")
        await asyncio.sleep(0.05)

    # The sender of each room: its members in turn, so that with ``spread`` the senders
    # are on every worker.
    senders = [
        connections[room * args.clients + room % args.clients][0] for room in range(args.rooms)
    ]
    pad = "x" * 40
    stop = asyncio.Event()

    async def publish() -> None:
        """Every room ``rate`` times a second, spread over 10 ms ticks."""
        per_tick = args.rate * args.rooms / 100
        owed = 0.0
        room = 0
        tick = monotonic()
        while not stop.is_set():
            owed += per_tick
            while owed >= 1:
                owed -= 1
                data = f'{{"type":"say","data":{{"r":"r{room}","t":{monotonic()!r},"p":"{pad}"}}}}'
                senders[room].send(WSMsgType.TEXT, data.encode())
                room = (room + 1) % args.rooms
            tick += 0.01
            await asyncio.sleep(max(0.0, tick - monotonic()))

    publisher = asyncio.get_running_loop().create_task(publish())
    await asyncio.sleep(args.warmup)
    before_stats = [hub_stats(port) for port in args.ports]
    before_bytes = bytes_from_redis(args.redis_port)
    before_cpu = [schedstat_seconds(pid) for pid in args.pids]
    before_redis = schedstat_seconds(args.redis_pid)
    before_usage = resource.getrusage(resource.RUSAGE_SELF)
    started = monotonic()
    run.recording = True
    await asyncio.sleep(args.duration)
    run.recording = False
    wall = monotonic() - started
    after_usage = resource.getrusage(resource.RUSAGE_SELF)
    after_redis = schedstat_seconds(args.redis_pid)
    after_cpu = [schedstat_seconds(pid) for pid in args.pids]
    after_bytes = bytes_from_redis(args.redis_port)
    after_stats = [hub_stats(port) for port in args.ports]
    stop.set()
    await publisher
    for transport, _ in connections:
        transport.disconnect()

    per_worker = []
    for index, pid in enumerate(args.pids):
        backend_before = before_stats[index].get("backend", {})
        backend_after = after_stats[index].get("backend", {})
        if "received_frames" in backend_after:
            frames = backend_after["received_frames"] - backend_before["received_frames"]
        else:  # an older hub: the frames from other processes only
            frames = backend_after.get("received", 0) - backend_before.get("received", 0)
        received = after_bytes.get(pid, 0) - before_bytes.get(pid, 0)
        per_worker.append(
            {
                "bytes_from_redis_per_s": round(received / wall),
                "frames_from_redis": frames,
                "frames_from_redis_per_s": round(frames / wall),
                "cpu_pct": round(100 * (after_cpu[index] - before_cpu[index]) / wall, 1),
                "rooms_subscribed": backend_after.get("rooms_subscribed"),
                "publish_failed": backend_after.get("publish_failed", 0)
                - backend_before.get("publish_failed", 0),
                "reconnects": backend_after.get("reconnects", 0),
                "queued": backend_after.get("queued"),
                "connections": after_stats[index].get("connections"),
            }
        )
    own = (after_usage.ru_utime + after_usage.ru_stime) - (
        before_usage.ru_utime + before_usage.ru_stime
    )
    return {
        "rooms": args.rooms,
        "clients_per_room": args.clients,
        "rate": args.rate,
        "placement": args.placement,
        "seconds": round(wall, 2),
        "offered_per_s": args.rate * args.rooms * args.clients,
        "delivered_per_s": round(run.delivered / wall),
        "p50_ms": percentile(run.latencies, 50),
        "p99_ms": percentile(run.latencies, 99),
        "max_ms": percentile(run.latencies, 100),
        "bad_frames": run.bad,
        "per_worker": per_worker,
        "redis_cpu_pct": round(100 * (after_redis - before_redis) / wall, 1),
        "load_cpu_pct": round(100 * own / wall, 1),
    }


if __name__ == "__main__":
    sys.exit(main())
