"""Many idle WebSockets on several workers over one Redis, then one broadcast to all (#19).

``python -m bench.many --workers 2 --connections 38000`` (bench/README.md says more):

1. starts a ``redis-server`` (as ``run.py`` does) and ``--workers`` processes of
   ``bocadillo run bench.apps.many_app:app``, each on its own pre-bound loopback port,
   all with their hub on that Redis; records each worker's RSS (``VmRSS``);
2. starts ``--generators`` load processes (``python -m bench.many generate``), each
   under the per-process open-file limit: client *j* connects to ``/fanout`` on worker
   *j* mod W, from source address ``127.0.0.(2 + j mod 253)`` (so the ephemeral ports of
   one source address are not the limit), ``--concurrency`` handshakes at a time per
   generator;
3. with ``--heap`` (the default), a first wave of ``--heap-sample`` clients per worker
   with ``tracemalloc`` on in the first worker, whose heap is then read by package
   (``/many/heap``, which stops tracing); then the other clients;
4. once all are connected: waits (bounded) until the counts are exact: each worker's
   registry (``/hub-stats``), the connections across workers (``hub.global_count()``)
   and the members of the room ``fanout`` (``hub.global_members``), all equal to the
   clients connected, with nothing queued for Redis; then reads every worker's RSS
   again and the kernel's figures;
5. sends one ``POST /broadcast-all`` to the first worker (it delivers to its own clients
   and publishes once through Redis for the others), and each generator timestamps each
   client's frame on the machine's monotonic clock, which all processes share: time
   from the trigger to the first client, p50, p99 and the last, overall and per worker,
   and each worker's garbage collections (``/many/gc``);
6. closes every client (close frame 1000), checks that the counts fall back to 0, and
   stops everything it started, by PID.

Every phase has a deadline, and the whole run a budget (``--budget``, 290 s by default).
The result is printed as JSON and written to ``bench/results/raw/many-<W>x<N>.json``;
with ``--publish`` it is kept in ``bench/results/many.json`` (the last two runs of each
configuration) and rendered into the "100,000 idle connections" section of
``docs/benchmarks.md``.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import datetime
import http.client
import itertools
import json
import math
import os
import resource
import secrets
import select
import signal
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from . import report
from .load import percentile, raise_nofile_limit, run_seconds
from .run import RAW, RESULTS, ROOT, RedisServer, Server, machine, revision, versions

APP = "bench.apps.many_app:app"
STATS_PATH = "/hub-stats"
#: The room every client of ``/fanout`` joins.
ROOM = "fanout"
#: ``bocadillo run`` keeps this many descriptors free under the open-file limit
#: (``limit_concurrency="auto"``, ``bocadillo/cli.py``), and a generator needs a few too.
FD_MARGIN = 64
#: Clients per generator process by default (each one is a descriptor).
PER_GENERATOR = 15000
#: Seconds the handshakes under way when a wave's time is up may take to finish.
GRACE = 10
#: Source addresses 127.0.0.2 ... 127.0.0.254.
SOURCES = 253
#: Linux's IP_BIND_ADDRESS_NO_PORT (Python 3.12 names it): ``bind()`` to an address
#: without taking a port yet; ``connect()`` then picks one unique for the 4-tuple.
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)
MANY_RESULTS = RESULTS / "many.json"
#: Runs of one configuration kept in ``many.json``.
KEEP_RUNS = 2


def log(message: str) -> None:
    sys.stderr.write(f"[many {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


def rss_bytes(pid: int) -> int:
    """The process's resident set (``VmRSS`` of ``/proc/PID/status``), in bytes."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"no VmRSS for {pid}")


def kernel() -> dict[str, int]:
    """Machine-wide kernel figures: TCP sockets in use and their buffer memory (pages,
    the unit of ``net.ipv4.tcp_mem``) from ``/proc/net/sockstat``, slab memory (KiB) from
    ``/proc/meminfo``, and conntrack entries if netfilter tracks connections."""
    found: dict[str, int] = {}
    with open("/proc/net/sockstat") as sockstat:
        for line in sockstat:
            if line.startswith("TCP:"):
                fields = line.split()[1:]
                values = dict(zip(fields[::2], fields[1::2], strict=True))
                found["tcp_inuse"] = int(values["inuse"])
                found["tcp_mem_pages"] = int(values["mem"])
    with open("/proc/meminfo") as meminfo:
        for line in meminfo:
            if line.startswith("Slab:"):
                found["slab_kib"] = int(line.split()[1])
    try:
        found["conntrack"] = int(Path("/proc/sys/net/netfilter/nf_conntrack_count").read_text())
    except (OSError, ValueError):
        pass
    return found


class Unavailable(RuntimeError):
    """A worker answered 503: its backend cannot reach Redis for now."""


def request(port: int, method: str, path: str, timeout: float = 30) -> Any:
    """One HTTP request to a worker; its JSON answer (an error status raises)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        connection.request(method, path)
        response = connection.getresponse()
        body = response.read()
        if response.status == 503:
            raise Unavailable(f"{method} {path} on :{port}: {body[:200]!r}")
        if response.status != 200:
            raise RuntimeError(f"{method} {path} on :{port}: {response.status} {body[:200]!r}")
        return json.loads(body)
    finally:
        connection.close()


# Generator ---------------------------------------------------------------------------------


class Generator:
    """One load process's clients, and when each got the broadcast."""

    def __init__(self, workers: int) -> None:
        #: When each client got the broadcast, by the worker it is connected to.
        self.times = [array.array("d") for _ in range(workers)]
        self.received_count = 0
        self.expected = 0
        self.all_received: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.bad = 0
        self.disconnected = 0
        #: Every transport whose handshake completed, even one whose ``ws_connect`` was
        #: given up on: all are closed at the end.
        self.transports: list[Any] = []
        self._gone = asyncio.Event()
        self._closing = -1

    def lost(self) -> None:
        self.disconnected += 1
        if self.disconnected == self._closing:
            self._gone.set()

    async def all_disconnected(self, count: int, timeout: float) -> None:
        """Wait (at most ``timeout``) until ``count`` clients have been disconnected."""
        self._closing = count
        if self.disconnected >= count:
            return
        try:
            await asyncio.wait_for(self._gone.wait(), timeout)
        except asyncio.TimeoutError:
            pass

    def received(self, worker: int, payload: bytes) -> None:
        if not payload.startswith(b'{"seq":'):
            self.bad += 1
            return
        self.times[worker].append(time.perf_counter())
        self.received_count += 1
        if self.received_count == self.expected and not self.all_received.done():
            self.all_received.set_result(None)


def client_class() -> type[Any]:
    """The picows listener (imported here: only generators need picows)."""
    from picows import WSListener, WSMsgType

    class IdleClient(WSListener):  # type: ignore[misc]
        def __init__(self, generator: Generator, worker: int) -> None:
            super().__init__()
            self.generator = generator
            self.worker = worker

        def on_ws_frame(self, transport: Any, frame: Any) -> None:
            if frame.msg_type is WSMsgType.TEXT:
                self.generator.received(self.worker, frame.get_payload_as_bytes())

        def on_ws_connected(self, transport: Any) -> None:
            self.generator.transports.append(transport)

        def on_ws_disconnected(self, transport: Any) -> None:
            self.generator.lost()

    return IdleClient


def source_socket(index: int) -> socket.socket:
    """An unconnected TCP socket bound to client ``index``'s source address."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        sock.bind((f"127.0.0.{2 + index % SOURCES}", 0))
    except BaseException:
        sock.close()
        raise
    return sock


def emit(event: dict[str, Any]) -> None:
    """One JSON line to the orchestrator (gone, or no longer reading: dropped)."""
    try:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()
    except (BrokenPipeError, ValueError):  # ValueError: stdout already closed
        pass


async def generate(args: argparse.Namespace) -> None:
    """A generator process: obeys ``connect N SECONDS`` (its next N clients),
    ``report SECONDS`` (the broadcast's times) and ``close`` on stdin, one JSON line on
    stdout for each."""
    from picows import WSCloseCode, ws_connect

    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    ports = [int(port) for port in args.ports.split(",")]
    generator = Generator(len(ports))
    client = client_class()
    indices = iter(range(args.first, args.first + args.count))
    connected = 0

    def listener_factory(worker: int) -> Callable[[Any, Any], Any]:
        # picows calls it with the upgrade request and response (a factory without
        # arguments costs it a TypeError per connection).
        return lambda _request, _response: client(generator, worker)

    async def connect(count: int, timeout: float) -> dict[str, Any]:
        """``--concurrency`` connectors, each taking the next client of the wave until
        none is left or ``timeout`` has passed (no task per client waiting on a
        semaphore: asyncio's ``Semaphore.acquire`` scans its waiters, quadratic in
        thousands of them). Handshakes under way at the deadline may finish (within
        ``GRACE`` seconds): a cancelled one could leave the server holding a connection
        the client no longer counts."""
        nonlocal connected
        errors: Counter[str] = Counter()
        started = time.perf_counter()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        wave = iter(list(itertools.islice(indices, count)))
        before = connected
        stop_at = time.monotonic() + timeout

        async def connector() -> None:
            nonlocal connected
            for index in wave:
                if time.monotonic() > stop_at:
                    break
                url = f"ws://127.0.0.1:{ports[index % len(ports)]}/fanout"
                try:
                    transport, _ = await ws_connect(
                        listener_factory(index % len(ports)),
                        url,
                        websocket_handshake_timeout=args.handshake_timeout,
                        socket_factory=lambda _url, index=index: source_socket(index),
                        read_buffer_init_size=1024,
                    )
                except Exception as exc:  # counted and reported, the others go on
                    errors[f"{type(exc).__name__}: {exc}"[:120]] += 1
                    continue
                connected += 1

        connectors = [asyncio.ensure_future(connector()) for _ in range(args.concurrency)]
        _, pending = await asyncio.wait(connectors, timeout=timeout + GRACE)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.wait(pending, timeout=5)
        made = connected - before
        missing = count - made - sum(errors.values())
        if missing > 0:
            errors[f"not connected within {timeout:g} s"] += missing
        generator.expected = connected
        after = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "event": "connected",
            "connected": made,
            "failed": count - made,
            "errors": dict(errors.most_common(5)),
            "seconds": round(time.perf_counter() - started, 2),
            "cpu_s": round(after.ru_utime + after.ru_stime - usage.ru_utime - usage.ru_stime, 2),
            "rss_mib": round(rss_bytes(os.getpid()) / 2**20, 1),
        }

    try:
        while True:
            line = (await reader.readline()).decode().split()
            if not line or line[0] == "close":
                break
            if line[0] == "connect":
                emit(await connect(int(line[1]), float(line[2])))
            elif line[0] == "report":  # the broadcast is on its way: wait for it, bounded
                try:
                    await asyncio.wait_for(asyncio.shield(generator.all_received), float(line[1]))
                except asyncio.TimeoutError:
                    pass
                emit(
                    {
                        "event": "received",
                        "times": [list(times) for times in generator.times],
                        "missing": generator.expected - generator.received_count,
                        "bad": generator.bad,
                        "disconnected": generator.disconnected,
                    }
                )
    finally:
        for transport in generator.transports:
            try:
                transport.send_close(WSCloseCode.OK)
                transport.disconnect()
            except Exception:  # already gone
                pass
        # Let the close frames and FINs go out before the process exits (bounded).
        await generator.all_disconnected(len(generator.transports), 10)
        emit(
            {
                "event": "closed",
                "opened": len(generator.transports),
                "disconnected": generator.disconnected,
            }
        )


# Orchestrator ------------------------------------------------------------------------------


class Budget:
    """The whole run's deadline; each phase gets at most what is left."""

    def __init__(self, seconds: float) -> None:
        self.deadline = time.monotonic() + seconds

    def left(self, phase: float, keep: float = 0) -> float:
        """At most ``phase`` seconds, keeping ``keep`` of the budget for what follows."""
        remaining = self.deadline - time.monotonic() - keep
        if remaining <= 0:
            raise TimeoutError("the run's budget is spent (--budget)")
        return min(phase, remaining)


class GeneratorProcess:
    """A generator process: commands on its stdin, one JSON line per event on its stdout."""

    def __init__(self, command: list[str]) -> None:
        self.process = subprocess.Popen(
            command, cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.pid = self.process.pid
        self._buffer = b""

    def read_event(self, timeout: float) -> dict[str, Any]:
        """Its next JSON line, within ``timeout`` seconds (a line of times can span
        several reads)."""
        stream = self.process.stdout
        assert stream is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"generator {self.pid}: no answer within {timeout:.0f} s")
            ready, _, _ = select.select([stream], [], [], remaining)
            if not ready:
                continue
            chunk = os.read(stream.fileno(), 1 << 20)
            if not chunk:
                raise RuntimeError(f"generator {self.pid} exited ({self.process.poll()})")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        event: dict[str, Any] = json.loads(line)
        return event

    def tell(self, command: str) -> None:
        stream = self.process.stdin
        assert stream is not None
        stream.write(command.encode() + b"\n")
        stream.flush()

    def close_input(self) -> None:
        """Close its stdin: it closes its clients and exits."""
        for stream in (self.process.stdin, self.process.stdout):
            if stream is not None:
                try:
                    stream.close()
                except OSError:
                    pass

    def stop(self) -> None:
        """By its PID: stdin closed, then SIGTERM if it has not exited within 15 s, then
        SIGKILL."""
        process = self.process
        self.close_input()
        try:
            process.wait(15)
            return
        except subprocess.TimeoutExpired:
            process.terminate()
        try:
            process.wait(5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def wait_counts(
    workers: list[Server], expected: int, timeout: float
) -> tuple[dict[str, Any], float | None]:
    """Poll until every count equals ``expected`` (and nothing is queued for Redis), or
    ``timeout``; the last counts seen, and how long it took (None: never exact). A 503
    (Redis unreachable from the worker for now) is counted and asked again."""
    started = time.monotonic()
    counts: dict[str, Any] = {}
    unavailable = 0
    while True:
        stats = [request(worker.port, "GET", STATS_PATH) for worker in workers]
        try:
            shared = request(workers[0].port, "GET", "/many/counts")
        except Unavailable:
            unavailable += 1
            shared = {"global_count": None, "room_members": None}
        counts = {
            "registries": [s["connections"] for s in stats],
            "registry_total": sum(s["connections"] for s in stats),
            "global_count": shared["global_count"],
            "room_members": shared["room_members"],
            "queued": sum(s["backend"].get("queued", 0) for s in stats),
            "redis_reconnects": sum(s["backend"].get("reconnects", 0) for s in stats),
            "unavailable_answers": unavailable,
        }
        exact = (
            counts["registry_total"] == expected
            and counts["global_count"] == expected
            and counts["room_members"] == expected
            and counts["queued"] == 0
        )
        if exact:
            return counts, round(time.monotonic() - started, 2)
        if time.monotonic() - started > timeout:
            return counts, None
        time.sleep(0.2)


def summarize_times(times: list[float], trigger: float, expected: int) -> dict[str, Any]:
    delays = sorted(1e3 * (t - trigger) for t in times)

    def at(q: float) -> float | None:
        value = percentile(delays, q)
        return None if value is None else round(value, 1)

    return {
        "received": len(delays),
        "missing": expected - len(delays),
        "first_ms": round(delays[0], 1) if delays else None,
        "p50_ms": at(50),
        "p99_ms": at(99),
        "last_ms": round(delays[-1], 1) if delays else None,
    }


def gc_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """A worker's garbage collections between two ``/many/gc`` readings: how many of
    each generation, and their total time in ms."""
    pairs = zip(before["seconds"], after["seconds"], strict=True)
    return {
        "count": [b - a for a, b in zip(before["count"], after["count"], strict=True)],
        "ms": [round(1e3 * (b - a), 1) for a, b in pairs],
    }


def heap_summary(heap: dict[str, Any]) -> dict[str, Any]:
    """Bytes per connection by package (the traced worker's ``/many/heap``)."""
    connections = heap["connections"]
    by_package = {name: size / connections for name, size in heap["bytes"].items()}
    return {
        "connections": connections,
        "bytes_per_conn": {name: round(size) for name, size in by_package.items()},
        "total_per_conn": round(sum(by_package.values())),
        "blocks_per_conn": round(sum(heap["blocks"].values()) / connections, 1),
        "bocadillo_per_conn": round(by_package.get("bocadillo", 0)),
        **{
            key: [
                [where, round(size / connections), round(count / connections, 2)]
                for where, size, count in heap[key]
            ]
            for key in ("top_lines", "bocadillo_lines")
        },
        "tracemalloc_overhead_mib": round(heap["tracemalloc_overhead"] / 2**20, 1),
    }


def connect_wave(
    generators: list[GeneratorProcess],
    workers: list[Server],
    counts: list[int],
    budget: Budget,
    args: argparse.Namespace,
) -> dict[str, Any]:
    """Each generator connects its next ``counts[i]`` clients; how it went."""
    timeout = budget.left(args.connect_timeout or math.inf, keep=args.reserve + GRACE)
    started = time.monotonic()
    cpu_before = sum(run_seconds(worker.pid) for worker in workers)
    for process, count in zip(generators, counts, strict=True):
        process.tell(f"connect {count} {timeout:g}")
    events = [process.read_event(budget.left(timeout + GRACE + 10)) for process in generators]
    seconds = time.monotonic() - started
    connected = sum(event["connected"] for event in events)
    errors: Counter[str] = Counter()
    for event in events:
        errors.update(event["errors"])
    log(f"wave of {sum(counts):,}: {connected:,} connected in {seconds:.1f} s")
    return {
        "clients": sum(counts),
        "connected": connected,
        "errors": dict(errors.most_common(5)),
        "seconds": round(seconds, 2),
        "per_s": round(connected / seconds) if seconds else None,
        "workers_cpu_s": round(sum(run_seconds(w.pid) for w in workers) - cpu_before, 1),
        "generators_cpu_s": round(sum(event["cpu_s"] for event in events), 1),
        "generator_rss_mib": [event["rss_mib"] for event in events],
    }


def check_limits(args: argparse.Namespace) -> int:
    """Raise our open-file limit to the hard one (children inherit it) and check that a
    worker's and a generator's share fit under it; the hard limit."""
    hard = raise_nofile_limit()
    per_worker = math.ceil(args.connections / args.workers)
    per_generator = math.ceil(args.connections / args.generators)
    if per_worker + FD_MARGIN > hard:
        need = math.ceil(args.connections / (hard - FD_MARGIN))
        raise SystemExit(
            f"{per_worker:,} connections per worker, but a process may open only {hard:,} "
            f"files here (ulimit -Hn), {FD_MARGIN} of which bocadillo run keeps free: use "
            f"--workers {need} or more, or raise the limit (docs/deployment.md, 'Many "
            "connections')"
        )
    if per_generator + FD_MARGIN > hard:
        raise SystemExit(
            f"{per_generator:,} clients per generator over the open-file limit ({hard:,}): "
            f"use --generators {math.ceil(args.connections / (hard - FD_MARGIN))} or more"
        )
    return hard


def orchestrate(args: argparse.Namespace) -> dict[str, Any]:
    hard = check_limits(args)
    budget = Budget(args.budget)
    RAW.mkdir(parents=True, exist_ok=True)
    log_path = RAW / "servers-many.log"
    log_path.write_bytes(b"")
    result: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "workers": args.workers,
        "connections": args.connections,
        "generators": args.generators,
        "concurrency": args.concurrency,
        "http": args.http,
        # /many/gc times collections with time.thread_time(): CPU, not waiting for a core
        "gc_clock": "cpu",
        "heap_sample": args.heap_sample if args.heap else None,
        "nofile_hard": hard,
        "loadavg_before": [round(value, 2) for value in os.getloadavg()],
    }
    started = time.monotonic()
    redis: RedisServer | None = None
    workers: list[Server] = []
    generators: list[GeneratorProcess] = []
    try:
        redis = RedisServer(RAW / "redis")
        env = {
            "BOCADILLO_HUB_URL": redis.url,
            "BOCADILLO_HUB_PREFIX": f"many-{secrets.token_hex(4)}",
            "BOCADILLO_STATS_ENDPOINT": STATS_PATH,
        }
        command = [sys.executable, "-m", "bocadillo.cli", "run", "--log-level", "warning"]
        command += ["--http", args.http]
        for _ in range(args.workers):
            workers.append(Server(APP, log_path=log_path, env=env, command=command, core=None))
        for worker in workers:
            worker.wait_ready(budget.left(60))
            backend = request(worker.port, "GET", STATS_PATH)["backend"]
            if backend.get("connected") != 1:
                raise RuntimeError(f"a worker is not connected to Redis: {backend}")
        rss_before = [rss_bytes(worker.pid) for worker in workers]
        kernel_before = kernel()
        gc_started = [request(worker.port, "GET", "/many/gc") for worker in workers]
        redis_before = rss_bytes(redis.pid)
        traced = args.heap
        ports = ",".join(str(worker.port) for worker in workers)
        share = math.ceil(args.connections / args.generators)
        shares = [
            min(share, args.connections - first) for first in range(0, args.connections, share)
        ]
        log(
            f"{args.workers} workers, {args.connections:,} clients from {len(shares)} "
            f"generators (open-file limit {hard:,} per process)"
        )
        for index, count in enumerate(shares):
            command = [sys.executable, "-m", "bench.many", "generate", "--ports", ports]
            command += ["--first", str(index * share), "--count", str(count)]
            command += ["--concurrency", str(args.concurrency)]
            generators.append(GeneratorProcess(command))
        waves = []
        if traced:
            # A first wave with the first worker traced, then the rest untraced.
            sample = min(args.connections, args.heap_sample * args.workers)
            firsts = [math.ceil(sample * count / args.connections) for count in shares]
            request(workers[0].port, "POST", "/many/trace")
            waves.append(connect_wave(generators, workers, firsts, budget, args))
            heap = request(workers[0].port, "GET", "/many/heap", timeout=budget.left(60))
            result["heap"] = heap_summary(heap)
            log(f"heap per connection {result['heap']['bytes_per_conn']}")
            rest = [count - first for count, first in zip(shares, firsts, strict=True)]
            waves.append(connect_wave(generators, workers, rest, budget, args))
        else:
            waves.append(connect_wave(generators, workers, shares, budget, args))
        connected = sum(wave["connected"] for wave in waves)
        seconds = sum(wave["seconds"] for wave in waves)
        errors: Counter[str] = Counter()
        for wave in waves:
            errors.update(wave["errors"])
        result["connect"] = {
            "connected": connected,
            "failed": args.connections - connected,
            "errors": dict(errors.most_common(5)),
            "seconds": round(seconds, 1),
            "per_s": round(connected / seconds) if seconds else None,
            "workers_cpu_s": round(sum(wave["workers_cpu_s"] for wave in waves), 1),
            "generators_cpu_s": round(sum(wave["generators_cpu_s"] for wave in waves), 1),
            "generator_rss_mib": waves[-1]["generator_rss_mib"],
            "waves": waves,
        }
        log(f"connected {connected:,} of {args.connections:,} in {seconds:.1f} s")
        counts, exact_after = wait_counts(workers, connected, budget.left(30))
        result["counts"] = {**counts, "expected": connected, "exact_after_s": exact_after}
        log(f"counts {counts} ({'exact' if exact_after is not None else 'NOT exact'})")
        rss_after = [rss_bytes(worker.pid) for worker in workers]
        kernel_after = kernel()
        result["kernel"] = {"before": kernel_before, "connected": kernel_after}
        per_worker = []
        for index in range(len(workers)):
            local = counts["registries"][index]
            per_worker.append(
                {
                    "connections": local,
                    "rss_before_mib": round(rss_before[index] / 2**20, 1),
                    "rss_after_mib": round(rss_after[index] / 2**20, 1),
                    "kib_per_conn": (
                        round((rss_after[index] - rss_before[index]) / local / 1024, 2)
                        if local
                        else None
                    ),
                    "traced": traced and index == 0,
                }
            )
        clean = [w["kib_per_conn"] for w in per_worker if not w["traced"] and w["kib_per_conn"]]
        result["memory"] = {
            "workers": per_worker,
            # The traced worker's RSS also holds tracemalloc's tables: left out.
            "kib_per_conn": round(sum(clean) / len(clean), 2) if clean else None,
            "redis_rss_mib": round(rss_bytes(redis.pid) / 2**20, 1),
            "redis_rss_before_mib": round(redis_before / 2**20, 1),
        }
        log(
            f"memory {result['memory']['kib_per_conn']} KiB per connection; heap "
            f"{result.get('heap', {}).get('bytes_per_conn')}"
        )
        # The broadcast.
        gc_before = [request(worker.port, "GET", "/many/gc") for worker in workers]
        result["connect"]["gc"] = [
            gc_delta(start, end) for start, end in zip(gc_started, gc_before, strict=True)
        ]
        cpu_before = [run_seconds(worker.pid) for worker in workers]
        trigger = time.perf_counter()
        sent = request(workers[0].port, "POST", "/broadcast-all?seq=1")["sent"]
        answered = time.perf_counter()
        for process in generators:
            process.tell(f"report {budget.left(args.broadcast_timeout):g}")
        received_events = [
            process.read_event(budget.left(args.broadcast_timeout + 30)) for process in generators
        ]
        by_worker = [
            [t for event in received_events for t in event["times"][index]]
            for index in range(len(workers))
        ]
        gc_after = [request(worker.port, "GET", "/many/gc") for worker in workers]
        result["broadcast"] = {
            **summarize_times([t for times in by_worker for t in times], trigger, connected),
            "workers": [
                {
                    **summarize_times(times, trigger, counts["registries"][index]),
                    "gc": gc_delta(gc_before[index], gc_after[index]),
                }
                for index, times in enumerate(by_worker)
            ],
            "trigger_answered_ms": round(1e3 * (answered - trigger), 1),
            "sent_by_first_worker": sent,
            "bad_frames": sum(event["bad"] for event in received_events),
            "disconnected_before": sum(event["disconnected"] for event in received_events),
            "workers_cpu_s": round(sum(run_seconds(w.pid) for w in workers) - sum(cpu_before), 2),
        }
        log(f"broadcast {result['broadcast']}")
        # Close everything; the counts must come back to 0 (if the budget allows: the
        # measurements above stand either way).
        try:
            for process in generators:
                process.tell("close")
            closed = [process.read_event(budget.left(40)) for process in generators]
            result["closed"] = {
                "opened": sum(event["opened"] for event in closed),
                "disconnected": sum(event["disconnected"] for event in closed),
            }
            after_counts, empty_after = wait_counts(workers, 0, budget.left(60))
            result["closed"].update({**after_counts, "empty_after_s": empty_after})
            result["kernel"]["closed"] = kernel()
            log(f"after closing: {after_counts}")
        except (TimeoutError, RuntimeError) as exc:
            result["closed"] = {"error": f"{type(exc).__name__}: {exc}"}
            log(f"closing not checked: {exc}")
    except Exception as exc:
        result["error"] = f"{type(exc).__name__}: {exc}"
        log(f"ERROR {result['error']}")
    finally:
        for process in generators:
            process.close_input()  # all at once: each takes up to 10 s to close its clients
        for process in generators:
            process.stop()
        for worker in workers:
            worker.stop()
        if redis is not None:
            redis.stop()
    result["duration_s"] = round(time.monotonic() - started, 1)
    result["loadavg_after"] = [round(value, 2) for value in os.getloadavg()]
    result["revision"] = revision()
    result["machine"] = machine()
    result["versions"] = {
        name: version
        for name, version in versions().items()
        if name in {"bocadillo", "uvicorn", "uvloop", "websockets", "picows", "redis"}
    }
    return result


# Results -----------------------------------------------------------------------------------


def keep(result: dict[str, Any], path: Path = MANY_RESULTS) -> dict[str, Any]:
    """Add ``result`` to ``many.json``: the last ``KEEP_RUNS`` runs of each configuration."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"runs": []}
    config = (result["workers"], result["connections"])
    same = [run for run in data["runs"] if (run["workers"], run["connections"]) == config]
    others = [run for run in data["runs"] if (run["workers"], run["connections"]) != config]
    data["runs"] = others + same[-(KEEP_RUNS - 1) :] + [result] if KEEP_RUNS > 1 else [result]
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def publish(data: dict[str, Any], docs: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace the section between the markers in ``docs/benchmarks.md`` (or add it)."""
    section = "\n".join(report.render_many(data))
    text = docs.read_text() if docs.exists() else ""
    start, end = text.find(report.MANY_START), text.find(report.MANY_END)
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(report.MANY_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    docs.write_text(text)


# Entry point -------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.many", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=2000)
    parser.add_argument(
        "--generators",
        type=int,
        default=None,
        help=f"load processes (default: one per {PER_GENERATOR:,} clients, at least 2)",
    )
    parser.add_argument("--concurrency", type=int, default=32, help="handshakes per generator")
    parser.add_argument(
        "--connect-timeout",
        type=float,
        default=None,
        help="seconds for connecting (default: what the budget leaves after --reserve)",
    )
    parser.add_argument("--broadcast-timeout", type=float, default=30)
    parser.add_argument("--budget", type=float, default=290, help="seconds for the whole run")
    parser.add_argument(
        "--reserve",
        type=float,
        default=100,
        help="seconds of the budget kept from connecting for the counts, broadcast, closing",
    )
    parser.add_argument(
        "--no-heap",
        dest="heap",
        action="store_false",
        help="no tracemalloc in the first worker (then every worker's RSS is counted)",
    )
    parser.add_argument(
        "--heap-sample",
        type=int,
        default=600,
        help="clients per worker in the first wave, traced in the first worker (600)",
    )
    parser.add_argument(
        "--http",
        choices=["h11", "httptools"],
        default="h11",
        help="bocadillo run's HTTP parser for the handshakes (its default: h11)",
    )
    parser.add_argument(
        "--publish",
        action="store_true",
        help="keep the run in bench/results/many.json and docs/benchmarks.md",
    )
    gen = sub.add_parser("generate", help="(internal) one load process")
    gen.add_argument("--ports", required=True)
    gen.add_argument("--first", type=int, required=True)
    gen.add_argument("--count", type=int, required=True)
    gen.add_argument("--concurrency", type=int, default=32)
    gen.add_argument("--handshake-timeout", type=float, default=60)
    args = parser.parse_args(argv)
    if args.command is None:
        if args.workers < 1 or args.connections < 1:
            parser.error("--workers and --connections must be at least 1")
        if args.generators is None:
            args.generators = max(2, math.ceil(args.connections / PER_GENERATOR))
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import uvloop

    if args.command == "generate":
        raise_nofile_limit()
        uvloop.run(generate(args))
        return 0
    # A SIGTERM (``timeout``, Ctrl-C's cousin) stops the run through its ``finally``:
    # every process it started is stopped by its PID.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    result = orchestrate(args)
    RAW.mkdir(parents=True, exist_ok=True)
    raw = RAW / f"many-{args.workers}x{args.connections}.json"
    raw.write_text(json.dumps(result, indent=1) + "\n")
    sys.stdout.write(json.dumps(result) + "\n")
    if args.publish and "error" not in result:
        publish(keep(result))
        log(f"kept in {MANY_RESULTS.relative_to(ROOT)}; docs/benchmarks.md updated")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
