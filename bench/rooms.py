"""Per-room traffic on Redis (issue #19): W workers on one ``redis-server`` (or, with
``--cluster``, a Redis Cluster of 3 masters), R rooms of C clients each, every room
publishing at a fixed rate, stepped up until the setup cannot keep up.

Each worker is a separate ``bench.serve`` process of ``bench/apps/rooms_app.py`` with the
hub on a fresh ``redis-server`` (same prefix), or on a fresh cluster started with
``tests/redis_cluster.py``'s harness (``redis+cluster://``). The load generator connects
C clients to each room, each joins its room with a ``resume`` message (answered once its
worker receives the room), then one client per room sends ``say`` at ``--rate`` messages
per second; its worker broadcasts it to the room. Every client timestamps what it
receives against the sender's ``time.monotonic()`` (one clock for every process of the
machine). ``--generator`` picks the load generator (``bench/rooms_load.py``): ``c``,
``bench/loadgen/rooms-load`` (one epoll process in C, built here by ``make`` with gcc; a
few µs of CPU per delivery), or ``picows`` (one uvloop process with picows clients, like
``bench/load.py``; about 12 µs); ``auto`` (the default) takes ``c`` when it builds. Either
way the load process, ``python -m bench.rooms load``, does the stepping and the
measurements; with ``c`` it drives the C process over a pipe.

``--rate`` takes several rates: the load generator runs each for ``--warmup`` seconds,
then measures ``--duration`` seconds, and stops after a step (measured ``--retries`` + 1
times) delivered less than ``--min-delivery`` of what it offered or had a p99 over
``--p99-limit`` ms. The last step that passed is the setup's *sustained* rate.

``--placement room`` (the default) connects all of a room's clients to one worker (room
``r`` on worker ``r mod W``): a worker has members in 1/W of the rooms. ``--placement
spread`` connects the clients of every room to every worker in turn: each worker has
members in every room.

Measured per step: messages delivered per second (and what was offered), p50/p99 latency
from the ``say`` to each member, per worker the frames and bytes it read from Redis (the
bytes from ``ss``'s ``bytes_received`` of its connections to Redis, which works on any
version of the code; the frames from its backend counters when it has them), and the CPU
of every part: each worker, redis-server (every node of a cluster), the load generator,
and the rest of the machine.

Pinning (``--pin``): ``split`` (default) puts worker *i* on core *i* mod 2 and
redis-server and the load generator on core 1; ``spread`` puts worker *i* on core *i* mod
2 and lets redis-server and the load generator run on either core; ``server-core`` puts
every worker on core 0 (as ``bench.run``'s ``fanout-redis``) and redis-server and the
load generator on core 1. ``--quota F`` holds each worker to F of a core (a cgroup of the
v1 ``cpu`` controller, applied once every client has joined).

    bench/.venv/bin/python -m bench.rooms --workers 1 2 4 --pin spread --rate 1 1.5 2 3 4
    make bench-rooms ROOMS_ARGS="--workers 1 4 --pin spread --rate 1 2 3 4"
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import http.client
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path
from typing import Any

from . import report, rooms_load
from .rooms_load import schedstat_seconds
from .run import ROOT, RedisServer, Server, log

APP = "bench.apps.rooms_app:app"
STATS_PATH = "/hub-stats"
RAW = ROOT / "bench" / "results" / "raw"
ROOMS_RESULTS = report.ROOMS_RESULTS


# The harness --------------------------------------------------------------------------------


def start_worker(core: str, env: dict[str, str]) -> Server:
    """One worker process (``bench.serve`` of the rooms app) on ``core``, on a pre-bound
    loopback port."""
    command = [sys.executable, "-m", "bench.serve"]
    return Server(APP, command=command, core=core, env=env, log_path=RAW / "servers-rooms.log")


class Broker:
    """One fresh ``redis-server``, or with ``cluster`` a Redis Cluster of 3 masters
    without replicas (``tests/redis_cluster.py``'s harness, on reserved loopback ports);
    ``stop()`` stops every process of it."""

    def __init__(self, cluster: bool) -> None:
        self._workdir: Path | None = None
        if not cluster:
            self._single: RedisServer | None = RedisServer(RAW / "rooms-redis")
            self.url = self._single.url
            self.ports = [self._single.port]
            self.pids = [self._single.pid]
            return
        from tests.redis_cluster import LocalRedisCluster

        self._single = None
        self._workdir = Path(tempfile.mkdtemp(prefix="rooms-cluster-", dir=RAW))
        self._cluster = LocalRedisCluster(self._workdir, masters=3, replicas=0)
        try:
            self._cluster.start()
        except BaseException:
            self._cluster.close()
            raise
        self.url = self._cluster.url
        self.ports = [node.port for node in self._cluster.nodes]
        self.pids = [node.process.pid for node in self._cluster.nodes if node.process]

    def stop(self) -> None:
        if self._single is not None:
            self._single.stop()
            return
        self._cluster.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)


def cores(pin: str, workers: int) -> tuple[list[str], str]:
    """The cores of each worker, and those of redis-server and the load generator."""
    if pin == "server-core":
        return ["0"] * workers, "1"
    if pin == "spread":
        return [str(i % 2) for i in range(workers)], "0,1"
    return [str(i % 2) for i in range(workers)], "1"


CGROUP_CPU = Path("/sys/fs/cgroup/cpu")


class Quota:
    """A cgroup (v1 ``cpu`` controller) holding one worker to ``share`` of a core: a CFS
    quota of ``share`` × 10 ms per 10 ms period (short, so that a worker that has used
    its quota waits at most a few milliseconds). Removed in ``stop()``."""

    def __init__(self, pid: int, share: float) -> None:
        if not (CGROUP_CPU / "cpu.cfs_quota_us").exists():
            raise RuntimeError(f"--quota needs the cgroup v1 cpu controller at {CGROUP_CPU}")
        self.path = CGROUP_CPU / f"bocadillo-bench-rooms-{pid}"
        self.path.mkdir()
        (self.path / "cpu.cfs_period_us").write_text("10000")
        (self.path / "cpu.cfs_quota_us").write_text(str(round(share * 10000)))
        (self.path / "cgroup.procs").write_text(str(pid))

    def stop(self) -> None:
        # Its processes go back to the root group, and the group is removed.
        for pid in (self.path / "cgroup.procs").read_text().split():
            (CGROUP_CPU / "cgroup.procs").write_text(pid)
        self.path.rmdir()


def run_case(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    """One measurement with ``workers`` workers on a fresh redis-server."""
    result = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_before": [round(value, 2) for value in os.getloadavg()],
    }
    result.update(measure_case(args, workers))
    result["loadavg_after"] = [round(value, 2) for value in os.getloadavg()]
    return result


def commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() or "?"


def measure_case(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    RAW.mkdir(parents=True, exist_ok=True)
    worker_cores, load_core = cores(args.pin, workers)
    redis = Broker(args.cluster)
    for pid in redis.pids:
        subprocess.run(["taskset", "-pc", load_core, str(pid)], capture_output=True, check=True)
    started: list[Server] = []
    quotas: list[Quota] = []
    try:
        env = {
            "BOCADILLO_HUB_URL": redis.url,
            "BOCADILLO_HUB_PREFIX": f"rooms-{uuid.uuid4().hex[:8]}",
            "BOCADILLO_STATS_ENDPOINT": STATS_PATH,
        }
        for core in worker_cores:
            started.append(start_worker(core, env))
        for worker in started:
            worker.wait_ready()
        command = ["taskset", "-c", load_core, sys.executable, "-m", "bench.rooms", "load"]
        command += ["--generator", args.generator, "--max-seconds", str(args.timeout)]
        command += ["--batch-us", str(args.batch_us)]
        command += ["--ports", *(str(w.port) for w in started)]
        command += ["--pids", *(str(w.pid) for w in started)]
        command += ["--redis-ports", *(str(port) for port in redis.ports)]
        command += ["--redis-pids", *(str(pid) for pid in redis.pids)]
        for name in ("rooms", "clients", "duration", "warmup", "placement", "retries"):
            command += [f"--{name}", str(getattr(args, name))]
        command += ["--rate", *(str(rate) for rate in args.rate)]
        command += ["--p99-limit", str(args.p99_limit), "--min-delivery", str(args.min_delivery)]
        stderr_path = RAW / "rooms-load.err"
        with open(stderr_path, "wb") as stderr:
            load = subprocess.Popen(
                command, cwd=ROOT, stdout=subprocess.PIPE, stderr=stderr, text=True
            )
        # The load generator says "joined" once every client is in its room: the quotas
        # start then (connecting 10,000 clients to throttled workers would take minutes).
        timer = threading.Timer(args.timeout, load.kill)
        timer.start()
        try:
            assert load.stdout is not None
            lines = []
            for line in load.stdout:
                if line.strip() == "joined" and args.quota:
                    quotas.extend(Quota(worker.pid, args.quota) for worker in started)
                lines.append(line)
            code = load.wait()
        finally:
            timer.cancel()
            if load.poll() is None:
                load.kill()
                load.wait()
        if code != 0:
            tail = stderr_path.read_text().strip().splitlines()[-3:]
            return {"workers": workers, "error": " | ".join(tail) or f"exit {code}"}
        result: dict[str, Any] = json.loads(lines[-1])
        result["workers"] = workers
        result["cores"] = worker_cores
        result["load_core"] = load_core
        result["pin"] = args.pin
        result["quota"] = args.quota
        result["broker"] = "cluster" if args.cluster else "redis"
        if args.generator == "c":
            result["batch_us"] = args.batch_us
        result["commit"] = commit()
        return result
    finally:
        for quota in quotas:
            quota.stop()
        for worker in started:
            worker.stop()
        redis.stop()


def show_step(step: dict[str, Any]) -> str:
    per = step["per_worker"]
    return (
        f"  rate {step['rate']}/room/s: {'ok  ' if step['ok'] else 'FAIL'} "
        f"delivered={step['delivered_per_s']:,.0f}/s of {step['offered_per_s']:,.0f} "
        f"p50={step['p50_ms']} p99={step['p99_ms']} ms "
        f"from Redis KB/s {[round(w['bytes_from_redis_per_s'] / 1000) for w in per]} "
        f"cpu% workers {[w['cpu_pct'] for w in per]} redis {step['redis_cpu_pct']} "
        f"load {step['load_cpu_pct']} others {step['others_cpu_pct']}"
    )


def show(result: dict[str, Any]) -> str:
    if "error" in result:
        return f"workers={result['workers']}: ERROR {result['error']}"
    lines = [f"workers={result['workers']} cores={','.join(result['cores'])}"]
    lines += [show_step(step) for step in result["steps"]]
    best = result.get("sustained")
    lines.append(
        "  sustained: "
        + (f"{best['delivered_per_s']:,}/s at {best['rate']}/room/s" if best else "none")
    )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["load"]:
        return load_main(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m bench.rooms", description=__doc__)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--reps", type=int, default=1, help="repetitions (order alternates)")
    add_load_options(parser)
    parser.add_argument("--pin", choices=("split", "spread", "server-core"), default="split")
    parser.add_argument(
        "--cluster",
        action="store_true",
        help="the hub on a Redis Cluster of 3 masters (redis+cluster://), not one redis-server",
    )
    parser.add_argument(
        "--quota",
        type=float,
        default=0.0,
        help="hold each worker to this share of a core (a cgroup CPU quota; 0: none)",
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="per measurement")
    parser.add_argument(
        "--generator",
        choices=("auto", "c", "picows"),
        default="auto",
        help="the load generator: c (bench/loadgen/, built here with make and gcc), "
        "picows (Python), auto: c if it builds, else picows",
    )
    parser.add_argument("--json", type=Path, help="also write every result to this file")
    parser.add_argument(
        "--publish",
        action="store_true",
        help="keep the runs in bench/results/rooms.json and docs/benchmarks.md",
    )
    args = parser.parse_args(argv)
    if args.generator != "picows":
        why = rooms_load.build_c()
        if why is not None and args.generator == "c":
            parser.error(f"the C load generator did not build: {why}")
        if why is not None:
            log(f"rooms: the C load generator did not build ({why}): using picows")
        args.generator = "picows" if why is not None else "c"
    log(f"rooms: load generator {args.generator}")
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
    failed = [r for r in results if "error" in r]
    if args.publish and not failed:
        publish(keep(results))
        log(f"kept in {ROOMS_RESULTS.relative_to(ROOT)}; docs/benchmarks.md updated")
    return 0 if not failed else 1


def keep(results: list[dict[str, Any]], path: Path = ROOMS_RESULTS) -> dict[str, Any]:
    """Put ``results`` in ``rooms.json`` in place of the runs with the same pinning and
    quota (the runs of one invocation are compared with each other)."""
    data: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {"runs": []}

    def group(run: dict[str, Any]) -> tuple[str, float, str]:
        return run["pin"], run["quota"], run.get("broker", "redis")

    groups = {group(r) for r in results}
    data["runs"] = [r for r in data["runs"] if group(r) not in groups] + results
    path.write_text(json.dumps(data, indent=1) + "\n")
    return data


def publish(data: dict[str, Any], docs: Path = ROOT / "docs" / "benchmarks.md") -> None:
    """Replace the section between the rooms markers in ``docs/benchmarks.md`` (or add
    it after the many-connection section)."""
    section = "\n".join(report.render_rooms(data))
    text = docs.read_text() if docs.exists() else ""
    start, end = text.find(report.ROOMS_START), text.find(report.ROOMS_END)
    if start >= 0 and end > start:
        text = text[:start] + section + text[end + len(report.ROOMS_END) :]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    docs.write_text(text)


def add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rooms", type=int, default=1000)
    parser.add_argument("--clients", type=int, default=10, help="clients per room")
    parser.add_argument(
        "--rate",
        type=float,
        nargs="+",
        default=[2.0],
        help="publications per room per s; several: stepped up, until a step fails",
    )
    parser.add_argument(
        "--p99-limit", type=float, default=100.0, help="ms: a step whose p99 passes it fails"
    )
    parser.add_argument(
        "--retries",
        type=int,
        default=1,
        help="measure a failed step again this many times before stopping (a burst of "
        "other work on a shared machine fails a step without a backlog)",
    )
    parser.add_argument(
        "--min-delivery",
        type=float,
        default=0.98,
        help="a step delivering less than this share of what it offered fails",
    )
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds before measuring")
    parser.add_argument("--placement", choices=("room", "spread"), default="room")
    parser.add_argument(
        "--batch-us",
        type=int,
        default=1000,
        help="the C generator naps this long between reads while publishing, so that one "
        "wakeup serves many frames (frames are timed up to this late); 0: no nap",
    )


# The load generator -------------------------------------------------------------------------

_SS_LINE = re.compile(r"pid=(\d+),")
_SS_BYTES = re.compile(r"bytes_received:(\d+)")


def bytes_from_redis(redis_ports: list[int]) -> dict[int, int]:
    """Bytes each process has received on its connections to redis-server (``ss``), every
    node of a cluster counted."""
    where: list[str] = []
    for port in redis_ports:
        where += ["or", "dst", f"127.0.0.1:{port}"] if where else ["dst", f"127.0.0.1:{port}"]
    done = subprocess.run(
        ["ss", "-tinpH", "state", "established", *where],
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


def load_main(argv: list[str]) -> int:
    import uvloop

    parser = argparse.ArgumentParser(prog="python -m bench.rooms load")
    parser.add_argument("--ports", type=int, nargs="+", required=True)
    parser.add_argument("--pids", type=int, nargs="+", required=True)
    parser.add_argument("--redis-ports", type=int, nargs="+", required=True)
    parser.add_argument("--redis-pids", type=int, nargs="+", required=True)
    parser.add_argument("--generator", choices=("c", "picows"), default="picows")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="the whole run")
    add_load_options(parser)
    args = parser.parse_args(argv)
    result = uvloop.run(load(args))
    print(json.dumps(result))
    return 0


async def load(args: argparse.Namespace) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    generator = rooms_load.create(args.generator, args)
    steps = []
    try:
        await generator.open()
        print("joined", flush=True)
        for step_rate in args.rate:
            generator.set_rate(step_rate)
            for attempt in range(1 + args.retries):
                await asyncio.sleep(args.warmup)
                step = await measure(args, generator, step_rate)
                step["attempt"] = attempt + 1
                steps.append(step)
                if step["ok"]:
                    break
            if not step["ok"]:
                break
    finally:
        await generator.close()
    passed = [step for step in steps if step["ok"]]
    return {
        "rooms": args.rooms,
        "clients_per_room": args.clients,
        "placement": args.placement,
        "p99_limit_ms": args.p99_limit,
        "min_delivery": args.min_delivery,
        "generator": generator.name,
        "steps": steps,
        "sustained": passed[-1] if passed else None,
    }


def machine_busy_seconds() -> float:
    """CPU seconds every core of the machine has spent busy (``/proc/stat``)."""
    with open("/proc/stat") as stat:
        fields = [int(x) for x in stat.readline().split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


async def measure(
    args: argparse.Namespace, generator: rooms_load.Generator, rate: float
) -> dict[str, Any]:
    """One window of ``--duration`` seconds at ``rate``: deliveries, latency, and what
    each part (workers, redis-server, the load generator, everything else) spent."""
    monotonic = time.monotonic

    def probe() -> tuple[list[dict[str, Any]], dict[int, int], float, list[float], float]:
        # In a thread: ``ss`` walks every process's descriptors, which takes a while with
        # 10,000 sockets, and the event loop must go on reading meanwhile.
        stats = [hub_stats(port) for port in args.ports]
        at = monotonic()
        received = bytes_from_redis(args.redis_ports)
        cpu = [schedstat_seconds(pid) for pid in args.pids]
        return stats, received, at, cpu, sum(map(schedstat_seconds, args.redis_pids))

    before_stats, before_bytes, before_at, before_cpu, before_redis = await asyncio.to_thread(probe)
    before_own = generator.cpu_seconds()
    before_busy = machine_busy_seconds()
    await generator.start()
    await asyncio.sleep(args.duration)
    window = await generator.stop()
    after_busy = machine_busy_seconds()
    own = generator.cpu_seconds() - before_own
    wall = window["seconds"]
    after_stats, after_bytes, after_at, after_cpu, after_redis = await asyncio.to_thread(probe)
    probed = after_at - before_at  # the window of the byte counts and CPU times

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
                "bytes_from_redis_per_s": round(received / probed),
                "frames_from_redis": frames,
                "frames_from_redis_per_s": round(frames / probed),
                "cpu_s": round(after_cpu[index] - before_cpu[index], 3),
                "cpu_pct": round(100 * (after_cpu[index] - before_cpu[index]) / probed, 1),
                "rooms_subscribed": backend_after.get("rooms_subscribed"),
                "publish_failed": backend_after.get("publish_failed", 0)
                - backend_before.get("publish_failed", 0),
                "reconnects": backend_after.get("reconnects", 0),
                "queued": backend_after.get("queued"),
                "connections": after_stats[index].get("connections"),
            }
        )
    # CPU as cores busy: the workers' and redis-server's over the probes' window, this
    # process's and the machine's over the measured one (the same seconds, give or take
    # the probes' own time).
    workers_cpu = sum(w["cpu_s"] for w in per_worker) / probed
    redis_cpu = (after_redis - before_redis) / probed
    load_cpu = own / wall
    others = (after_busy - before_busy) / wall - workers_cpu - redis_cpu - load_cpu
    offered = window["sent"] * args.clients / wall
    delivered = window["delivered"] / wall
    p99 = window["p99_ms"]
    ok = delivered >= args.min_delivery * offered and p99 is not None and p99 <= args.p99_limit
    per_delivery = 1e6 / max(1.0, delivered)
    return {
        "rate": rate,
        "ok": ok,
        "seconds": round(wall, 2),
        "offered_per_s": round(offered),
        "delivered_per_s": round(delivered),
        "p50_ms": window["p50_ms"],
        "p99_ms": p99,
        "max_ms": window["max_ms"],
        "bad_frames": window["bad"],
        "lost_connections": window.get("lost", 0),
        "per_worker": per_worker,
        "workers_cpu_pct": round(100 * workers_cpu, 1),
        "redis_cpu_pct": round(100 * redis_cpu, 1),
        "load_cpu_pct": round(100 * load_cpu, 1),
        "others_cpu_pct": round(100 * others, 1),
        "cpu_us_per_delivery": {
            "workers": round(workers_cpu * per_delivery, 1),
            "redis": round(redis_cpu * per_delivery, 1),
            "load": round(load_cpu * per_delivery, 1),
        },
        # The C generator's own process; load_cpu_pct adds this (Python) process's.
        **(
            {"generator_cpu_pct": round(100 * window["cpu_s"] / wall, 1)}
            if "cpu_s" in window
            else {}
        ),
    }


if __name__ == "__main__":
    sys.exit(main())
