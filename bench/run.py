"""Run the benchmarks: ``python -m bench.run [--quick]`` (``make bench`` runs the full set).

For every scenario and every repetition, each target gets a fresh server: uvicorn on
core 0 (``taskset -c 0``), the load generator on core 1 (``taskset -c 1``), loopback
only. Targets alternate (A B C D E, then E D C B A, ...) so that drift of the machine hits
them all alike. Each server is stopped by its PID once its load process has exited.

The ``fanout-redis`` scenario (Bocadillo only, issue #6) compares, in the same run and
alternating, one Bocadillo process with its in-memory hub against two Bocadillo workers
whose hub is on one ``redis-server`` (started and stopped here, by PID): both workers on
core 0, so that they get the single process's CPU budget, redis-server and the load
generator on core 1.

``fanout-history`` (Bocadillo only, issue #17) measures the fan-out on the message-type
endpoint into a room without history and into one with history, on one process and on
two workers on Redis, alternating; ``resume`` has 1,000 clients of a room with history
drop their connections, miss 100 publications and all resume at once, on one process and
on two workers on Redis.

Full mode writes ``bench/results/results.json``, ``docs/benchmarks.md``,
``docs/benchmarks.png`` and the summary in ``README.md``. A full run of only some
scenarios or targets (``--scenarios``, ``--targets``) replaces those measurements in
``results.json`` and keeps the others, and leaves ``README.md`` alone. Quick mode (small
sizes, short durations: it checks that the harness works) writes under
``bench/results/raw/`` only.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path
from typing import Any

from . import report
from .load import run_seconds
from .profile import Profiler

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
RAW = RESULTS / "raw"
SERVER_CORE, LOAD_CORE = "0", "1"
TARGETS = {
    "raw": "bench.apps.raw:app",
    "starlette": "bench.apps.starlette_app:app",
    "fastapi": "bench.apps.fastapi_app:app",
    "litestar": "bench.apps.litestar_app:app",
    "bocadillo": "bench.apps.bocadillo_app:app",
}
PACKAGES = [
    "bocadillo",
    "starlette",
    "fastapi",
    "litestar",
    "uvicorn",
    "uvloop",
    "httptools",
    "websockets",
    "picows",
    "redis",
]
SCENARIOS = ["echo", "http", "fanout", "fanout-redis", "fanout-history", "resume", "memory"]
#: The two setups of ``fanout-redis``, alternated like targets.
REDIS_VARIANTS = ["bocadillo", "bocadillo-redis"]
#: Set for both setups of ``fanout-redis`` only: the hub's counters, to check that the
#: single process runs the in-memory hub and that the workers talk through Redis.
STATS_PATH = "/hub-stats"
#: The setups of ``fanout-history``: a room without history and one with history (rooms
#: ``history:*`` keep it, see ``apps/bocadillo_app.py``), on one process and on two
#: workers on Redis; alternated like targets.
HISTORY_VARIANTS = [
    "bocadillo",
    "bocadillo-history",
    "bocadillo-redis",
    "bocadillo-redis-history",
]
HISTORY_ROOMS = {False: "plain:fanout", True: "history:fanout"}
#: The setups of ``resume``.
RESUME_VARIANTS = ["bocadillo", "bocadillo-redis"]
RESUME_ROOM = "history:resume"
#: The fan-out server's SO_SNDBUF (see ``serve.py``); the kernel doubles it.
FANOUT_SNDBUF = 128 * 1024


@dataclass
class Mode:
    name: str
    reps: int
    echo_clients: list[int]
    echo_duration: float
    echo_warmup: float
    http_duration: float
    http_warmup: float
    fanout_clients: list[int]
    fanout_stalled: list[float]
    broadcasts: int
    broadcast_timeout: float
    memory_clients: int
    #: fanout-redis: client counts, and repetitions (even: each setup goes first as often)
    redis_clients: list[int]
    redis_reps: int
    #: fanout-history: client counts and repetitions (of each of its four setups)
    history_clients: list[int]
    history_reps: int
    #: resume: clients, publications each one misses, repetitions, seconds allowed
    resume_clients: int
    resume_gap: int
    resume_reps: int
    resume_timeout: float
    scenarios: list[str] = field(default_factory=lambda: list(SCENARIOS))


FULL = Mode(
    name="full",
    reps=3,
    echo_clients=[1, 64],
    echo_duration=5,
    echo_warmup=1,
    http_duration=5,
    http_warmup=1,
    fanout_clients=[1000, 5000],
    fanout_stalled=[0.0, 0.1],
    broadcasts=20,
    broadcast_timeout=3,
    memory_clients=2000,
    redis_clients=[1000, 2000],
    redis_reps=6,
    history_clients=[1000],
    history_reps=10,
    resume_clients=1000,
    resume_gap=100,
    resume_reps=5,
    resume_timeout=60,
)
QUICK = Mode(
    name="quick",
    reps=1,
    echo_clients=[1, 64],
    echo_duration=1,
    echo_warmup=0.3,
    http_duration=1,
    http_warmup=0.3,
    fanout_clients=[200, 500],
    fanout_stalled=[0.0, 0.1],
    broadcasts=5,
    broadcast_timeout=2,
    memory_clients=300,
    redis_clients=[200],
    redis_reps=2,
    history_clients=[200],
    history_reps=2,
    resume_clients=200,
    resume_gap=20,
    resume_reps=2,
    resume_timeout=30,
)


def log(message: str) -> None:
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {message}\n")
    sys.stderr.flush()


# Server ------------------------------------------------------------------------------------


class Server:
    """One target on uvicorn, pinned to the server core, on a pre-bound loopback port.

    ``command``: serve ``target`` (then an import string) with this command line instead
    of ``bench.serve``, e.g. ``[python, "-m", "bocadillo.cli", "run"]``, the listening
    socket given as ``--fd``; ``core=None``: not pinned.
    """

    def __init__(
        self,
        target: str,
        *,
        sndbuf: int = 0,
        log_path: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        core: str | None = SERVER_CORE,
    ) -> None:
        self.target = target
        listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", 0))
        listener.listen(4096)
        self.port: int = listener.getsockname()[1]
        pin = ["taskset", "-c", core] if core is not None else []
        if command is None:
            command = [*pin, sys.executable, "-m", "bench.serve", TARGETS[target]]
            command += ["--fd", str(listener.fileno()), "--sndbuf", str(sndbuf)]
        else:
            command = [*pin, *command, target, "--fd", str(listener.fileno())]
        self._log = open(log_path, "ab")  # closed in stop()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            pass_fds=(listener.fileno(),),
            env=server_env(env or {}),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=self._log,
        )
        listener.close()  # the server holds its own copy
        self.pid = self.process.pid  # taskset execs the server: same PID

    def wait_ready(self, timeout: float = 30) -> None:
        """Wait until ``GET /json`` answers 200 (startup and lifespan done)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.target} exited with {self.process.returncode}")
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
        raise RuntimeError(f"{self.target} not ready after {timeout} s")

    def stop(self) -> None:
        """Stop the server by its PID: SIGTERM, then SIGKILL after 3 s (a graceful
        shutdown may wait for stalled clients)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self._log.close()

    def get_json(self, path: str) -> Any:
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=5)
        try:
            connection.request("GET", path)
            response = connection.getresponse()
            body = response.read()
            if response.status != 200:
                raise RuntimeError(f"GET {path} on {self.target}: {response.status}")
            return json.loads(body)
        finally:
            connection.close()


def server_env(extra: dict[str, str]) -> dict[str, str]:
    """The servers' environment: ours without any ``BOCADILLO_*`` setting (a
    ``BOCADILLO_HUB_URL`` in the shell must not put a benchmark on Redis), plus ``extra``."""
    env = {name: value for name, value in os.environ.items() if not name.startswith("BOCADILLO_")}
    env.update(extra)
    return env


class RedisServer:
    """One ``redis-server`` on a free loopback port, pinned to the load core, keeping
    nothing on disk (as ``tests/redis_server.py`` runs it); stopped by its PID."""

    def __init__(self, workdir: Path) -> None:
        executable = shutil.which("redis-server")
        if executable is None:
            raise RuntimeError("redis-server not found (apt-get install redis-server)")
        workdir.mkdir(parents=True, exist_ok=True)
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        for _ in range(3):  # a free port may be taken between the probe and the start
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
                probe.bind(("127.0.0.1", 0))
                self.port = probe.getsockname()[1]
            command = ["taskset", "-c", LOAD_CORE, executable, "--port", str(self.port)]
            command += ["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
            command += ["--dir", str(workdir), "--logfile", str(workdir / "redis.log")]
            self.process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.STDOUT,
            )
            if self._wait_ready(10):
                self.pid = self.process.pid  # taskset execs redis-server: same PID
                return
            self.stop()
        raise RuntimeError("redis-server did not start (see bench/results/raw/redis/redis.log)")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _wait_ready(self, timeout: float) -> bool:
        assert self.process is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                    sock.sendall(b"PING\r\n")
                    if sock.recv(16).startswith(b"+PONG"):
                        return True
            except OSError:
                pass
            time.sleep(0.05)
        return False

    def stop(self) -> None:
        """SIGTERM by PID, then SIGKILL after 5 s."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(5)


# Load --------------------------------------------------------------------------------------


def run_load(
    server: Server,
    scenario: str,
    options: list[str],
    timeout: float,
    profile: Path | None = None,
    common: list[str] | None = None,
) -> dict[str, Any]:
    """Run ``bench.load`` on the load core and return its JSON result (``common``: more
    options before the scenario's name)."""
    command = ["taskset", "-c", LOAD_CORE, sys.executable, "-m", "bench.load"]
    command += ["--port", str(server.port), "--server-pid", str(server.pid)]
    if profile is not None:
        command += ["--profile", str(profile)]
    command += [*(common or []), scenario, *options]
    try:
        done = subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired:
        return {"error": f"load generator timed out after {timeout:.0f} s"}
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "?"}
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def run_wrk(server: Server, duration: float, connections: int = 64) -> dict[str, Any]:
    """``wrk`` on the load core; its CPU use comes from the kernel's rusage of the child."""
    url = f"http://127.0.0.1:{server.port}/json"
    command = ["taskset", "-c", LOAD_CORE, "wrk", "-t1", f"-c{connections}"]
    command += [f"-d{duration:g}s", "--latency", url]
    started = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    watchdog = threading.Timer(duration + 30, process.kill)
    watchdog.start()
    try:
        assert process.stdout is not None
        output = process.stdout.read().decode(errors="replace")
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    finally:
        watchdog.cancel()
    elapsed = time.perf_counter() - started
    match = re.search(r"Requests/sec:\s+([\d.]+)", output)
    if process.returncode != 0 or match is None:
        return {"error": f"wrk failed: {output.strip()[-200:]}"}
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", output)
    return {
        "tool": "wrk",
        "clients": connections,
        "requests_per_s": float(match.group(1)),
        "p50_ms": _wrk_latency(output, "50%"),
        "p99_ms": _wrk_latency(output, "99%"),
        "errors": errors.group(0) if errors else None,
        "load_cpu_pct": round(100 * (usage.ru_utime + usage.ru_stime) / elapsed, 1),
    }


def _wrk_latency(output: str, label: str) -> float | None:
    match = re.search(rf"^\s*{re.escape(label)}\s+([\d.]+)(us|ms|s)\s*$", output, re.MULTILINE)
    if match is None:
        return None
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match.group(2)]
    return round(float(match.group(1)) * scale, 3)


def server_cpu(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as stat:
        fields = stat.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# Scenarios ---------------------------------------------------------------------------------


@dataclass
class Case:
    """One measurement: a scenario with its parameters, for every target."""

    scenario: str
    key: str
    params: dict[str, Any]
    sndbuf: int = 0


def cases(mode: Mode) -> list[Case]:
    plan: list[Case] = []
    if "echo" in mode.scenarios:
        for clients in mode.echo_clients:
            plan.append(Case("echo", f"echo-{clients}", {"clients": clients}))
    if "http" in mode.scenarios:
        plan.append(Case("http", "http", {"clients": 64}))
    if "fanout" in mode.scenarios:
        for clients in mode.fanout_clients:
            for stalled in mode.fanout_stalled:
                key = f"fanout-{clients}" + (f"-stalled{int(stalled * 100)}" if stalled else "")
                params = {"clients": clients, "stalled": stalled}
                plan.append(Case("fanout", key, params, sndbuf=FANOUT_SNDBUF))
    if "fanout-redis" in mode.scenarios:
        for clients in mode.redis_clients:
            params = {"clients": clients, "stalled": 0.0}
            key = f"fanout-redis-{clients}"
            plan.append(Case("fanout-redis", key, params, sndbuf=FANOUT_SNDBUF))
    if "fanout-history" in mode.scenarios:
        for clients in mode.history_clients:
            params = {"clients": clients, "stalled": 0.0}
            key = f"fanout-history-{clients}"
            plan.append(Case("fanout-history", key, params, sndbuf=FANOUT_SNDBUF))
    if "resume" in mode.scenarios:
        params = {"clients": mode.resume_clients, "gap": mode.resume_gap}
        plan.append(Case("resume", f"resume-{mode.resume_clients}", params))
    if "memory" in mode.scenarios:
        plan.append(Case("memory", "memory", {"clients": mode.memory_clients}))
    return plan


def case_targets(case: Case, targets: list[str]) -> list[str]:
    """What a case compares: the chosen targets, or for ``fanout-redis`` (Bocadillo only)
    one process against two workers on Redis."""
    variants = {
        "fanout-redis": REDIS_VARIANTS,
        "fanout-history": HISTORY_VARIANTS,
        "resume": RESUME_VARIANTS,
    }.get(case.scenario)
    if variants is not None:
        return list(variants) if "bocadillo" in targets else []
    return targets


def case_reps(case: Case, mode: Mode) -> int:
    return {
        "fanout-redis": mode.redis_reps,
        "fanout-history": mode.history_reps,
        "resume": mode.resume_reps,
    }.get(case.scenario, mode.reps)


def measure(
    case: Case, target: str, mode: Mode, log_path: Path, profile: Path | None = None
) -> dict[str, Any]:
    """One measurement on a fresh server; ``profile``: record the server with py-spy over
    the measured window into that file."""
    if case.scenario == "fanout-redis":
        return measure_redis(case, target, mode, log_path, profile)
    if case.scenario == "fanout-history":
        return measure_history(case, target, mode, log_path, profile)
    if case.scenario == "resume":
        return measure_resume(case, target, mode, log_path, profile)
    server = Server(target, sndbuf=case.sndbuf, log_path=log_path)
    try:
        server.wait_ready()
        clients = str(case.params["clients"])
        if case.scenario == "echo":
            options = ["--clients", clients, "--duration", f"{mode.echo_duration:g}"]
            options += ["--warmup", f"{mode.echo_warmup:g}"]
            return run_load(
                server, "echo", options, timeout=mode.echo_duration + 60, profile=profile
            )
        if case.scenario == "http":
            if shutil.which("wrk"):
                run_wrk(server, mode.http_warmup)  # warm-up, not recorded
                with open(log_path, "ab") as log_file:
                    profiler = (
                        Profiler(server.pid, profile, core=LOAD_CORE, log=log_file)
                        if profile
                        else None
                    )
                    cpu_before = server_cpu(server.pid)
                    started = time.perf_counter()
                    result = run_wrk(server, mode.http_duration)
                    elapsed = time.perf_counter() - started
                    if profiler is not None:
                        profiler.stop()
                used = server_cpu(server.pid) - cpu_before
                result["server_cpu_pct"] = round(100 * used / elapsed, 1)
                if "requests_per_s" in result:
                    requests = result["requests_per_s"] * mode.http_duration
                    result["server_us_per_req"] = round(1e6 * used / requests, 2)
                return result
            options = ["--clients", clients, "--duration", f"{mode.http_duration:g}"]
            options += ["--warmup", f"{mode.http_warmup:g}"]
            return run_load(server, "http", options, timeout=mode.http_duration + 60)
        if case.scenario == "fanout":
            options = ["--clients", clients, "--stalled", f"{case.params['stalled']:g}"]
            options += ["--broadcasts", str(mode.broadcasts)]
            options += ["--timeout", f"{mode.broadcast_timeout:g}"]
            return run_load(server, "fanout", options, timeout=240, profile=profile)
        options = ["--clients", clients]
        return run_load(server, "memory", options, timeout=120)
    except Exception as exc:  # a broken target is reported, and the run goes on
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        server.stop()


def fanout_options(case: Case, mode: Mode) -> list[str]:
    options = ["--clients", str(case.params["clients"])]
    options += ["--stalled", f"{case.params['stalled']:g}"]
    options += ["--broadcasts", str(mode.broadcasts)]
    options += ["--timeout", f"{mode.broadcast_timeout:g}"]
    return options


def hub_stats(server: Server) -> dict[str, Any]:
    stats: dict[str, Any] = server.get_json(STATS_PATH)
    return stats


def measure_redis(
    case: Case, variant: str, mode: Mode, log_path: Path, profile: Path | None = None
) -> dict[str, Any]:
    """``fanout-redis``: the fan-out on one Bocadillo process (in-memory hub), or on two
    workers of the same app whose hub is on one fresh redis-server, with the clients
    split between them and the triggers alternating. Both workers run on the server
    core, redis-server on the load core. ``profile``: record the second worker (the one
    that receives the frames from Redis), every broadcast being triggered on the first.
    """
    env = {"BOCADILLO_STATS_ENDPOINT": STATS_PATH}
    options = fanout_options(case, mode)
    if variant == "bocadillo":
        server = Server("bocadillo", sndbuf=case.sndbuf, log_path=log_path, env=env)
        try:
            server.wait_ready()
            backend = hub_stats(server)["backend"]
            if backend:  # the in-memory hub has no backend counters
                raise RuntimeError(f"the single process is not on the in-memory hub: {backend}")
            return run_load(server, "fanout", options, timeout=240, profile=profile)
        except Exception as exc:
            return {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            server.stop()
    redis: RedisServer | None = None
    workers: list[Server] = []
    try:
        redis = RedisServer(RAW / "redis")
        env["BOCADILLO_HUB_URL"] = redis.url
        env["BOCADILLO_HUB_PREFIX"] = f"bench-{secrets.token_hex(4)}"
        for _ in range(2):
            workers.append(Server("bocadillo", sndbuf=case.sndbuf, log_path=log_path, env=env))
        for worker in workers:
            worker.wait_ready()
            backend = hub_stats(worker)["backend"]
            if backend.get("connected") != 1:
                raise RuntimeError(f"a worker is not connected to Redis: {backend}")
        first, second = workers
        common = ["--peer-port", str(second.port), "--peer-pid", str(second.pid)]
        common += ["--redis-pid", str(redis.pid)]
        if profile is not None:
            common += ["--profile-pid", str(second.pid)]
            options += ["--trigger", "first"]
        before = [hub_stats(worker)["backend"] for worker in workers]
        redis_before = run_seconds(redis.pid)
        result = run_load(first, "fanout", options, timeout=240, profile=profile, common=common)
        # redis-server over the whole load run: connections' presence writes included.
        result["redis_cpu_ms_run"] = round(1e3 * (run_seconds(redis.pid) - redis_before), 1)
        after = [hub_stats(worker)["backend"] for worker in workers]
        result["redis"] = {
            name: [
                end.get(name, 0) - start.get(name, 0)
                for start, end in zip(before, after, strict=True)
            ]
            for name in ("published", "received", "publish_failed")
        }
        return result
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        for worker in workers:
            worker.stop()
        if redis is not None:
            redis.stop()


class Setup:
    """One Bocadillo process (in-memory hub), or two workers of it on a fresh
    redis-server (both workers on the server core, redis-server on the load core), as in
    ``fanout-redis``; every server serves the hub's counters on ``STATS_PATH``, checked
    here: no backend for the single process, connected to Redis for the workers."""

    def __init__(self, workers: int, *, sndbuf: int, log_path: Path) -> None:
        self.redis: RedisServer | None = None
        self.servers: list[Server] = []
        env = {"BOCADILLO_STATS_ENDPOINT": STATS_PATH}
        try:
            if workers > 1:
                self.redis = RedisServer(RAW / "redis")
                env["BOCADILLO_HUB_URL"] = self.redis.url
                env["BOCADILLO_HUB_PREFIX"] = f"bench-{secrets.token_hex(4)}"
            for _ in range(workers):
                self.servers.append(Server("bocadillo", sndbuf=sndbuf, log_path=log_path, env=env))
            for server in self.servers:
                server.wait_ready()
                backend = hub_stats(server)["backend"]
                if self.redis is None and backend:
                    raise RuntimeError(f"the single process is not on the in-memory hub: {backend}")
                if self.redis is not None and backend.get("connected") != 1:
                    raise RuntimeError(f"a worker is not connected to Redis: {backend}")
        except BaseException:
            self.stop()
            raise

    def common(self, profile: Path | None) -> list[str]:
        """``bench.load``'s options for the second worker and redis-server; profiled, the
        second worker is recorded (the first one is the one the load triggers)."""
        if len(self.servers) < 2 or self.redis is None:
            return []
        second = self.servers[1]
        common = ["--peer-port", str(second.port), "--peer-pid", str(second.pid)]
        common += ["--redis-pid", str(self.redis.pid)]
        if profile is not None:
            common += ["--profile-pid", str(second.pid)]
        return common

    def stop(self) -> None:
        for server in self.servers:
            server.stop()
        if self.redis is not None:
            self.redis.stop()


def measure_history(
    case: Case, variant: str, mode: Mode, log_path: Path, profile: Path | None = None
) -> dict[str, Any]:
    """``fanout-history``: the fan-out to clients of the message-type endpoint, into a
    room without history or into one with history (``variant``), on one process or on
    two workers on Redis."""
    setup: Setup | None = None
    try:
        setup = Setup(2 if "redis" in variant else 1, sndbuf=case.sndbuf, log_path=log_path)
        options = fanout_options(case, mode)
        options += ["--room", HISTORY_ROOMS[variant.endswith("history")]]
        if profile is not None and len(setup.servers) > 1:
            options += ["--trigger", "first"]
        return run_load(
            setup.servers[0],
            "fanout",
            options,
            timeout=240,
            profile=profile,
            common=setup.common(profile),
        )
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if setup is not None:
            setup.stop()


def measure_resume(
    case: Case, variant: str, mode: Mode, log_path: Path, profile: Path | None = None
) -> dict[str, Any]:
    """``resume``: clients of a room with history drop their connections, miss
    ``gap`` publications and resume at once, on one process or on two workers on Redis
    (each client coming back on the other worker)."""
    setup: Setup | None = None
    try:
        setup = Setup(2 if variant == "bocadillo-redis" else 1, sndbuf=0, log_path=log_path)
        options = ["--clients", str(case.params["clients"]), "--gap", str(case.params["gap"])]
        options += ["--room", RESUME_ROOM, "--timeout", f"{mode.resume_timeout:g}"]
        options += ["--stats-path", STATS_PATH]
        return run_load(
            setup.servers[0],
            "resume",
            options,
            timeout=mode.resume_timeout + 180,
            profile=profile,
            common=setup.common(profile),
        )
    except Exception as exc:
        return {"error": f"{type(exc).__name__}: {exc}"}
    finally:
        if setup is not None:
            setup.stop()


# Results -----------------------------------------------------------------------------------


def merge(previous: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """``data``'s runs replace ``previous``'s for the same (key, target); the others stay.

    The header (date, load average...) stays the previous run's; this run is recorded
    under ``meta["updates"]``, which the report lists.
    """
    measured = {(run["key"], run["target"]) for run in data["runs"]}
    kept = [run for run in previous["runs"] if (run["key"], run["target"]) not in measured]
    meta = dict(previous["meta"])
    meta["settings"] = {**meta.get("settings", {}), **data["meta"]["settings"]}
    update = {
        name: data["meta"][name]
        for name in ("date", "reps", "duration_s", "loadavg_before", "loadavg_after", "revision")
    }
    update["keys"] = sorted({run["key"] for run in data["runs"]})
    update["reps"] = max((run["rep"] + 1 for run in data["runs"]), default=0)
    update["versions"] = data["meta"]["versions"]
    # An earlier update whose measurements this run all replaces is no longer shown.
    earlier = [u for u in meta.get("updates", []) if not set(u["keys"]) <= set(update["keys"])]
    meta["updates"] = [*earlier, update]
    # Packages this run added (such as redis) join the list; the others keep their values.
    meta["versions"] = {**data["meta"]["versions"], **meta["versions"]}
    return {"meta": meta, "runs": kept + data["runs"]}


# Machine -----------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    model = "unknown"
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    model = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    memory_gib = None
    try:
        with open("/proc/meminfo") as meminfo:
            memory_gib = round(int(meminfo.readline().split()[1]) / 2**20, 1)
    except (OSError, ValueError, IndexError):
        pass
    return {
        "nproc": os.cpu_count(),
        "cpu": model,
        "memory_gib": memory_gib,
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "missing"
    wrk = shutil.which("wrk")
    if wrk:
        output = subprocess.run([wrk, "--version"], capture_output=True, text=True, check=False)
        first = (output.stdout or output.stderr).strip().splitlines()
        found["wrk"] = first[0].split()[1] if first and len(first[0].split()) > 1 else "?"
    return found


def revision() -> str:
    """The commit measured, and whether ``bocadillo/`` had uncommitted changes (the bench
    venv installs this tree in editable mode: the servers import it as it is)."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "bocadillo"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except OSError:
        return "unknown"
    return f"{head or 'unknown'}{' (bocadillo/ modified)' if dirty else ''}"


# Main --------------------------------------------------------------------------------------


def order(targets: list[str], rep: int) -> list[str]:
    """A B C ... on even repetitions, ... C B A on odd ones."""
    return targets if rep % 2 == 0 else list(reversed(targets))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, short durations")
    parser.add_argument("--reps", type=int, help="repetitions (default: 3 full, 1 quick)")
    parser.add_argument("--targets", nargs="+", choices=list(TARGETS), default=list(TARGETS))
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=None)
    parser.add_argument("--no-publish", action="store_true", help="do not write docs/")
    parser.add_argument(
        "--profile",
        nargs="+",
        choices=list(TARGETS),
        default=[],
        help="record these targets with py-spy while measured (bench/results/raw/profile-*)",
    )
    args = parser.parse_args(argv)
    mode = QUICK if args.quick else FULL
    if args.reps:
        mode.reps = mode.redis_reps = mode.history_reps = mode.resume_reps = args.reps
    if args.scenarios:
        mode.scenarios = args.scenarios
    if not shutil.which("taskset"):
        log("taskset is missing (util-linux): it pins the server and the load generator")
        return 2
    if (os.cpu_count() or 1) < 2:
        log("two cores are needed: one for the server, one for the load generator")
        return 2
    if not shutil.which("wrk"):
        log("wrk not found (apt-get install wrk): HTTP uses bench.load's own client")
    redis_scenarios = {"fanout-redis", "fanout-history", "resume"} & set(mode.scenarios)
    if redis_scenarios and not shutil.which("redis-server"):
        log(
            "redis-server not found (apt-get install redis-server): the two-worker setups "
            f"of {', '.join(sorted(redis_scenarios))} will fail"
        )
    RAW.mkdir(parents=True, exist_ok=True)
    stamp = datetime.datetime.now(datetime.timezone.utc)
    log_path = RAW / f"servers-{mode.name}.log"
    log_path.write_bytes(b"")
    plan = cases(mode)
    total = sum(case_reps(case, mode) * len(case_targets(case, args.targets)) for case in plan)
    log(f"{mode.name} mode: {total} measurements; server logs in {log_path.relative_to(ROOT)}")
    runs: list[dict[str, Any]] = []
    started = time.monotonic()
    done = 0
    load_before = os.getloadavg()
    measured_revision = revision()
    for case in plan:
        for rep in range(case_reps(case, mode)):
            for target in order(case_targets(case, args.targets), rep):
                done += 1
                t0 = time.monotonic()
                profile = (
                    RAW / f"profile-{case.key}-{target}-{rep + 1}.txt"
                    if target.split("-")[0] in args.profile and case.scenario != "memory"
                    else None
                )
                result = measure(case, target, mode, log_path, profile)
                runs.append(
                    {
                        "scenario": case.scenario,
                        "key": case.key,
                        "params": case.params,
                        "target": target,
                        "rep": rep,
                        "result": result,
                    }
                )
                log(
                    f"[{done}/{total}] {case.key} {target} rep {rep + 1}: "
                    f"{report.one_line(case.scenario, result)} ({time.monotonic() - t0:.1f} s)"
                )
    data = {
        "meta": {
            "date": stamp.strftime("%Y-%m-%d %H:%M UTC"),
            "mode": mode.name,
            "reps": mode.reps,
            "duration_s": round(time.monotonic() - started, 1),
            "revision": measured_revision,
            "loadavg_before": [round(value, 2) for value in load_before],
            "loadavg_after": [round(value, 2) for value in os.getloadavg()],
            "machine": machine(),
            "versions": versions(),
            "settings": {
                "server": "uvicorn --loop uvloop --http httptools --ws websockets-sansio "
                "--workers 1 --no-access-log --log-level warning, ws pings off",
                "server_core": SERVER_CORE,
                "load_core": LOAD_CORE,
                "echo_duration_s": mode.echo_duration,
                "http_duration_s": mode.http_duration,
                "broadcasts": mode.broadcasts,
                "broadcast_timeout_s": mode.broadcast_timeout,
                "fanout_sndbuf": FANOUT_SNDBUF,
                "memory_clients": mode.memory_clients,
                "redis_reps": mode.redis_reps,
                "history_reps": mode.history_reps,
                "resume_reps": mode.resume_reps,
                "resume_timeout_s": mode.resume_timeout,
                "redis": "two workers (each: the server line above) on core "
                f"{SERVER_CORE}, one redis-server (--save '' --appendonly no) on core "
                f"{LOAD_CORE} with the load generator",
            },
        },
        "runs": runs,
    }
    if mode.name == "full" and not args.no_publish and not args.profile:
        results_path = RESULTS / "results.json"
        docs = ROOT / "docs"
        readme: Path | None = ROOT / "README.md"
        partial = set(mode.scenarios) != set(SCENARIOS) or set(args.targets) != set(TARGETS)
        if partial and results_path.exists():
            data = merge(json.loads(results_path.read_text()), data)
            readme = None
            log("partial run: merged into results.json; README.md left alone")
    else:
        results_path = RAW / f"results-{mode.name}.json"
        docs = RAW
        readme = None
    results_path.write_text(json.dumps(data, indent=1) + "\n")
    report.publish(data, docs_dir=docs, readme=readme)
    log(f"done in {time.monotonic() - started:.0f} s: {results_path.relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
