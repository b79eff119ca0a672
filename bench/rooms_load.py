"""The load generators of ``bench/rooms.py`` (issue #19), behind one interface.

- ``c`` (:class:`CGenerator`): ``bench/loadgen/rooms-load``, one C process with epoll
  (``make bench/loadgen/rooms-load`` builds it with gcc), driven over its stdin and stdout
  by the load process;
- ``picows`` (:class:`PicowsGenerator`): picows clients on this process's uvloop event
  loop, as ``bench/load.py``'s.

Both do the same: ``--rooms`` × ``--clients`` WebSockets to the workers' ``/ws`` (all of
room *r*'s clients on worker *r* mod W, or with ``--placement spread`` client *i* on
worker *i* mod W), at most 200 handshakes at a time; once every client is connected, each
joins its room with ``{"type":"resume","id":1,"data":{"rooms":{"rN":null}}}`` and waits
for its ``response``. Then the sender of each room (its member *r* mod C) sends
``{"type":"say","data":{"r","t","p"}}`` at the current rate, spread over 10 ms ticks,
``t`` being its ``CLOCK_MONOTONIC`` (``time.monotonic()``), and each ``said`` frame
received is a delivery, timed against that clock. ``start()``/``stop()`` bound a measured
window and ``stop()`` returns its counts and nearest-rank percentiles; ``cpu_seconds()`` is
what the generator has used so far. The C one also spreads its clients over the source
addresses 127.0.0.2 to 127.0.0.254 (as ``bench/many.py``); picows connects from
127.0.0.1, which is enough for 10,000 clients.

The C one costs a few µs of CPU per delivery where picows costs about 12: with 4 workers
on 2 cores the load generator shares the cores with the workers, so its cost is part of
what is measured.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import json
import resource
import subprocess
import time
from pathlib import Path
from typing import Any, Protocol

from .run import ROOT

#: The C generator, and the make rule that builds it (the Makefile's ``LOADGEN``).
C_BINARY = ROOT / "bench" / "loadgen" / "rooms-load"

_SAID = b'{"type":"said"'
_T = b'"t":'
_RESPONSE = b'{"type":"response"'


class Generator(Protocol):
    name: str

    async def open(self) -> None:
        """Connect every client, join every room, start publishing (returns once joined)."""

    def set_rate(self, rate: float) -> None: ...

    async def start(self) -> None:
        """Start a measured window."""

    async def stop(self) -> dict[str, Any]:
        """End it: ``seconds``, ``delivered``, ``sent``, ``bad``, ``p50_ms``, ``p99_ms``,
        ``max_ms``."""

    def cpu_seconds(self) -> float: ...

    async def close(self) -> None: ...


def build_c() -> str | None:
    """Build the C generator if it is missing or older than its source; None when built,
    else why not (no gcc, a compile error)."""
    try:
        done = subprocess.run(
            ["make", "-s", str(C_BINARY.relative_to(ROOT))],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    if done.returncode != 0 or not C_BINARY.exists():
        return (done.stderr.strip().splitlines() or [f"make exited with {done.returncode}"])[-1]
    return None


def create(name: str, args: argparse.Namespace) -> Generator:
    return CGenerator(args) if name == "c" else PicowsGenerator(args)


def schedstat_seconds(pid: int) -> float:
    """CPU seconds of every thread of ``pid`` (``/proc/PID/task/*/schedstat``, in ns)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


def own_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def percentile(values: array.array[float], q: float) -> float | None:
    """The nearest-rank percentile of ``values`` (seconds), in ms to 0.01."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return round(ordered[rank - 1] * 1000, 2)


class CGenerator:
    """``bench/loadgen/rooms-load`` as a child process: commands on its stdin (``rate R``,
    ``start``, ``stop``, ``quit``), one line back for ``stop`` (JSON) and ``joined``. Its
    CPU is read from its schedstat, plus this process's own (the probes, the pipe)."""

    name = "c"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.process: asyncio.subprocess.Process | None = None

    async def open(self) -> None:
        args = self.args
        command = [str(C_BINARY), "--ports", *(str(port) for port in args.ports)]
        command += ["--rooms", str(args.rooms), "--clients", str(args.clients)]
        command += ["--rate", str(args.rate[0]), "--placement", args.placement]
        command += ["--max-seconds", str(args.max_seconds), "--batch-us", str(args.batch_us)]
        # Its stderr is this process's: the harness shows its last lines on a failure.
        self.process = await asyncio.create_subprocess_exec(
            *command, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE
        )
        line = await self._line(300)  # it gives up by itself after 120 s + 120 s
        if line != "joined":
            raise RuntimeError(f"rooms-load: {line or 'exited before joining'}")

    async def _line(self, timeout: float) -> str:
        assert self.process is not None and self.process.stdout is not None
        raw = await asyncio.wait_for(self.process.stdout.readline(), timeout)
        return raw.decode().strip()

    async def _tell(self, command: str) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"{command}\n".encode())
        await self.process.stdin.drain()

    def set_rate(self, rate: float) -> None:
        assert self.process is not None and self.process.stdin is not None
        self.process.stdin.write(f"rate {rate!r}\n".encode())

    async def start(self) -> None:
        await self._tell("start")

    async def stop(self) -> dict[str, Any]:
        await self._tell("stop")
        line = await self._line(30)
        if not line:
            raise RuntimeError("rooms-load exited during a window")
        window: dict[str, Any] = json.loads(line)
        return window

    def cpu_seconds(self) -> float:
        assert self.process is not None
        return own_cpu_seconds() + schedstat_seconds(self.process.pid)

    async def close(self) -> None:
        process = self.process
        if process is None or process.returncode is not None:
            return
        try:
            await self._tell("quit")
            await asyncio.wait_for(process.wait(), 10)  # up to 2 s of closing handshakes
        except (OSError, asyncio.TimeoutError):
            process.kill()
            await process.wait()


class PicowsGenerator:
    """picows clients in this process (``bench/load.py``'s client, one uvloop loop)."""

    name = "picows"

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rate = args.rate[0]  # the current step's publications per room per second
        self.recording = False
        self.delivered = 0
        self.latencies: array.array[float] = array.array("d")
        self.joined = 0
        self.bad = 0
        self.sent = 0
        self._window_sent = 0
        self._window_start = 0.0
        self._stop = asyncio.Event()
        self._connections: list[Any] = []
        self._publisher: asyncio.Task[None] | None = None

    async def open(self) -> None:
        from picows import WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

        args = self.args
        monotonic = time.monotonic
        run = self

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
        self._connections = connections
        # Welcome envelopes are not sent by this app; join every room with a resume.
        for index, (transport, _) in enumerate(connections):
            name = f"r{index // args.clients}"
            body = {"type": "resume", "id": 1, "data": {"rooms": {name: None}}}
            transport.send(WSMsgType.TEXT, json.dumps(body, separators=(",", ":")).encode())
        deadline = monotonic() + 120
        while self.joined < len(connections):
            if monotonic() > deadline:
                raise RuntimeError(f"only {self.joined} of {len(connections)} clients joined")
            await asyncio.sleep(0.05)

        # The sender of each room: its members in turn, so that with ``spread`` the senders
        # are on every worker.
        senders = [
            connections[room * args.clients + room % args.clients][0] for room in range(args.rooms)
        ]
        pad = "x" * 40

        async def publish() -> None:
            """Every room ``rate`` times a second, spread over 10 ms ticks."""
            owed = 0.0
            room = 0
            tick = monotonic()
            while not self._stop.is_set():
                owed += self.rate * args.rooms / 100
                while owed >= 1:
                    owed -= 1
                    data = (
                        f'{{"type":"say","data":{{"r":"r{room}","t":{monotonic()!r},"p":"{pad}"}}}}'
                    )
                    senders[room].send(WSMsgType.TEXT, data.encode())
                    self.sent += 1
                    room = (room + 1) % args.rooms
                tick += 0.01
                await asyncio.sleep(max(0.0, tick - monotonic()))

        self._publisher = asyncio.get_running_loop().create_task(publish())

    def set_rate(self, rate: float) -> None:
        self.rate = rate

    async def start(self) -> None:
        self.latencies = array.array("d")
        self.delivered = 0
        self._window_sent = self.sent
        self._window_start = time.monotonic()
        self.recording = True

    async def stop(self) -> dict[str, Any]:
        self.recording = False
        return {
            "seconds": time.monotonic() - self._window_start,
            "delivered": self.delivered,
            "sent": self.sent - self._window_sent,
            "bad": self.bad,
            "p50_ms": percentile(self.latencies, 50),
            "p99_ms": percentile(self.latencies, 99),
            "max_ms": percentile(self.latencies, 100),
        }

    def cpu_seconds(self) -> float:
        return own_cpu_seconds()

    async def close(self) -> None:
        self._stop.set()
        if self._publisher is not None:
            await self._publisher
        for transport, _ in self._connections:
            transport.disconnect()
