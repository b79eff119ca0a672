"""The load generator: one process, one uvloop event loop, picows WebSocket clients.

Run by ``bench/run.py`` on its own core (``taskset -c 1``), against a server on the
other core. Each subcommand prints one JSON object on stdout:

- ``echo``: ``--clients`` clients do sequential round trips of a ~100-byte JSON text
  frame for ``--duration`` seconds (after ``--warmup``): messages/s, p50/p99 latency;
- ``fanout``: ``--clients`` clients on ``/fanout`` (a ``--stalled`` fraction of them raw
  sockets with a small receive buffer that never read); for each broadcast, the time
  from sending the ``POST /broadcast`` trigger to the last healthy client receiving it.
  With ``--peer-port`` (two Bocadillo workers on one Redis), the clients alternate
  between the two servers and so do the triggers (``--trigger``): the last client may be
  on either process, and every time is still read on this process's one clock.
  With ``--room`` (Bocadillo only), the clients are on the message-type endpoint
  ``/ws`` and join that room with a ``resume`` message, and the trigger is
  ``POST /publish?room=...`` (a room ``history:...`` keeps history: ``fanout-history``);
- ``resume``: ``--clients`` clients of ``/ws`` in one room with history drop their
  connections (no close frame), ``--gap`` publications are made, then they all come back
  and resume at once: the time until each has its gap and its ``response``, and whether
  the gap is exactly right (on one server, or split between two workers on one Redis);
- ``memory``: server RSS per idle ``/echo`` connection;
- ``http``: requests/s on ``GET /json`` (used only when ``wrk`` is not installed).

Every phase is bounded in time and in count, and the process exits by itself. It also
reports its own CPU use over the measured window (and the server's, by PID), so a
saturated load generator is visible in the results.
"""

from __future__ import annotations

import argparse
import array
import asyncio
import base64
import fcntl
import json
import os
import resource
import socket
import sys
import termios
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import psutil
import uvloop
from picows import WSCloseCode, WSFrame, WSListener, WSMsgType, WSTransport, ws_connect

from .profile import Profiler

_ECHO_EMPTY = b'{"type":"echo","seq":0,"text":""}'
#: The echo message: exactly 100 bytes of JSON.
ECHO_MESSAGE = _ECHO_EMPTY[:-2] + b"a" * (100 - len(_ECHO_EMPTY)) + _ECHO_EMPTY[-2:]
_SEQ_PREFIX = b'{"seq":'


def raise_nofile_limit() -> int:
    """Raise the soft open-files limit to the hard one (5,000 clients need it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


def start_profiler(args: argparse.Namespace) -> Profiler | None:
    """py-spy on the server over the measured window, when ``--profile FILE`` is given
    (on ``--profile-pid`` if given: with two workers, the one that receives from Redis)."""
    pid = args.profile_pid or args.server_pid
    if not args.profile or not pid:
        return None
    return Profiler(pid, Path(args.profile), core=None, log=sys.stderr.buffer)


def stop_profiler(profiler: Profiler | None) -> None:
    if profiler is not None:
        profiler.stop()


def percentile(values: list[float], q: float) -> float | None:
    """The nearest-rank percentile (``q`` in 0..100) of ``values``, or None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, min(len(ordered), int(-(-q * len(ordered) // 100))))
    return ordered[rank - 1]


def run_seconds(pid: int) -> float:
    """CPU time of every thread of ``pid``, in ns precision (``/proc/PID/task/*/schedstat``):
    redis-server works a few hundred microseconds per broadcast, far below the 10 ms
    ticks of ``cpu_times``."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        with open(task / "schedstat") as stat:
            total += int(stat.read().split()[0])
    return total / 1e9


class CPUMeter:
    """CPU use of this process and of the server process(es), in percent of one core,
    over one or more measured windows (``start()`` ... ``pause()``). The servers' comes
    from ``/proc/PID/task/*/schedstat`` (nanoseconds): a broadcast costs a few
    milliseconds, below the 10 ms ticks of the usual counters.

    With two workers, ``server_cpu_pct`` is their sum (they share one core) and
    ``server_cpu_pcts`` gives each; ``redis_pid``: redis-server's use too.
    """

    def __init__(
        self, server_pid: int | None, peer_pid: int | None = None, redis_pid: int | None = None
    ) -> None:
        pids = [pid for pid in (server_pid, peer_pid) if pid]
        self._servers = [psutil.Process(pid) for pid in pids]  # raises if one is gone
        self._redis = redis_pid
        # wall, this process, redis-server, then each server
        self._start = [0.0] * (3 + len(self._servers))
        self._total = [0.0] * (3 + len(self._servers))

    def _now(self) -> list[float]:
        usage = resource.getrusage(resource.RUSAGE_SELF)
        redis = run_seconds(self._redis) if self._redis is not None else 0.0
        servers = [run_seconds(server.pid) for server in self._servers]
        return [time.perf_counter(), usage.ru_utime + usage.ru_stime, redis, *servers]

    def start(self) -> None:
        self._start = self._now()

    def pause(self) -> None:
        now = self._now()
        for index, value in enumerate(now):
            self._total[index] += value - self._start[index]

    def stop(self) -> dict[str, Any]:
        self.pause()
        return self.result()

    def result(self) -> dict[str, Any]:
        wall, own, redis, *servers = self._total
        if wall <= 0:
            return {"load_cpu_pct": None, "server_cpu_pct": None}
        result: dict[str, Any] = {
            "load_cpu_pct": round(100 * own / wall, 1),
            "server_cpu_pct": round(100 * sum(servers) / wall, 1) if servers else None,
        }
        if len(servers) > 1:
            result["server_cpu_pcts"] = [round(100 * value / wall, 1) for value in servers]
        if self._redis is not None:
            result["redis_cpu_pct"] = round(100 * redis / wall, 2)
        return result

    @property
    def redis_seconds(self) -> float:
        return self._total[2]

    @property
    def server_seconds(self) -> float:
        """Server CPU seconds over the measured windows (every worker's): unlike
        throughput, barely moved by other processes competing for the core."""
        return sum(self._total[3:])


async def connect_many(
    url: str,
    count: int,
    factory: Callable[[], WSListener],
    *,
    concurrency: int,
    timeout: float,
) -> list[tuple[WSTransport, WSListener]]:
    """Open ``count`` picows connections, ``concurrency`` at a time, within ``timeout``."""
    gate = asyncio.Semaphore(concurrency)

    async def one() -> tuple[WSTransport, WSListener]:
        async with gate:
            return await ws_connect(factory, url, websocket_handshake_timeout=30)

    return await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout)


def close_all(connections: list[tuple[WSTransport, WSListener]]) -> None:
    """Close every connection with 1000 (so no server logs an abnormal closure)."""
    for transport, _ in connections:
        try:
            transport.send_close(WSCloseCode.OK)
            transport.disconnect()
        except Exception:  # already gone
            pass


# Echo -------------------------------------------------------------------------------------


class EchoRun:
    def __init__(self, clients: int) -> None:
        self.clients = clients
        self.running = False
        self.recording = False
        self.latencies = array.array("d")
        self.count = 0
        self.errors = 0
        self.stopped = 0
        self.all_stopped = asyncio.get_running_loop().create_future()

    def client_stopped(self) -> None:
        self.stopped += 1
        if self.stopped == self.clients and not self.all_stopped.done():
            self.all_stopped.set_result(None)


class EchoClient(WSListener):  # type: ignore[misc]
    def __init__(self, run: EchoRun) -> None:
        super().__init__()
        self.run = run
        self.transport: WSTransport | None = None
        self.sent_at = 0.0

    def on_ws_connected(self, transport: WSTransport) -> None:
        self.transport = transport

    def fire(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.send(WSMsgType.TEXT, ECHO_MESSAGE)

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        now = time.perf_counter()
        run = self.run
        if frame.payload_size != len(ECHO_MESSAGE):
            run.errors += 1
        if run.recording:
            run.latencies.append(now - self.sent_at)
            run.count += 1
        if run.running:
            self.sent_at = now
            transport.send(WSMsgType.TEXT, ECHO_MESSAGE)
        else:
            run.client_stopped()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.run.running:
            self.run.errors += 1


async def echo(args: argparse.Namespace) -> dict[str, Any]:
    run = EchoRun(args.clients)
    connections = await connect_many(
        args.url + "/echo",
        args.clients,
        lambda: EchoClient(run),
        concurrency=64,
        timeout=args.connect_timeout,
    )
    meter = CPUMeter(args.server_pid)
    run.running = True
    for _, listener in connections:
        assert isinstance(listener, EchoClient)
        listener.fire()
    await asyncio.sleep(args.warmup)
    profiler = start_profiler(args)
    run.recording = True
    meter.start()
    started = time.perf_counter()
    await asyncio.sleep(args.duration)
    elapsed = time.perf_counter() - started
    run.recording = False
    cpu = meter.stop()
    stop_profiler(profiler)
    count = run.count
    run.running = False
    try:
        await asyncio.wait_for(asyncio.shield(run.all_stopped), 5)
    except asyncio.TimeoutError:
        run.errors += 1
    close_all(connections)
    latencies = list(run.latencies)
    return {
        "clients": args.clients,
        "duration_s": round(elapsed, 3),
        "messages": count,
        "msgs_per_s": round(count / elapsed, 1),
        "server_us_per_msg": round(1e6 * meter.server_seconds / count, 2) if count else None,
        "p50_ms": _ms(percentile(latencies, 50)),
        "p99_ms": _ms(percentile(latencies, 99)),
        "errors": run.errors,
        **cpu,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


# Fan-out ----------------------------------------------------------------------------------


class FanoutRun:
    def __init__(self) -> None:
        self.expected = 0
        self.counts: dict[int, int] = {}
        self.waiters: dict[int, asyncio.Future[float]] = {}
        self.bad_frames = 0
        #: With two workers: healthy clients on each, and when each one's last client
        #: got broadcast ``seq``.
        self.expected_on: list[int] = []
        self.counts_on: dict[tuple[int, int], int] = {}
        self.done_on: dict[tuple[int, int], float] = {}

    def expect(self, seq: int) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[seq] = future
        return future

    def received(self, seq: int) -> None:
        count = self.counts.get(seq, 0) + 1
        self.counts[seq] = count
        if count == self.expected:
            future = self.waiters.get(seq)
            if future is not None and not future.done():
                future.set_result(time.perf_counter())

    def received_on(self, seq: int, server: int) -> None:
        key = (seq, server)
        count = self.counts_on.get(key, 0) + 1
        self.counts_on[key] = count
        if count == self.expected_on[server]:
            self.done_on[key] = time.perf_counter()
        self.received(seq)


class FanoutClient(WSListener):  # type: ignore[misc]
    def __init__(self, run: FanoutRun) -> None:
        super().__init__()
        self.run = run

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_bytes()
        if not payload.startswith(_SEQ_PREFIX):
            self.run.bad_frames += 1
            return
        self.run.received(int(payload[len(_SEQ_PREFIX) : payload.index(b",")]))


class WorkerClient(FanoutClient):
    """A fan-out client of one of two workers: the run also times each worker's last."""

    def __init__(self, run: FanoutRun, server: int) -> None:
        super().__init__(run)
        self.server = server

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_bytes()
        if not payload.startswith(_SEQ_PREFIX):
            self.run.bad_frames += 1
            return
        seq = int(payload[len(_SEQ_PREFIX) : payload.index(b",")])
        self.run.received_on(seq, self.server)


_RESPONSE_PREFIX = b'{"type":"response"'
_SEQ_KEY = b'"seq":'
_OFFSET_KEY = b'"offset":'
_EPOCH_KEY = b'"epoch":"'


def join_message(room: str, position: tuple[str, int] | None = None, request: int = 1) -> bytes:
    """The ``resume`` message that joins ``room`` (from ``position``, if given)."""
    where = None if position is None else {"epoch": position[0], "offset": position[1]}
    body = {"type": "resume", "id": request, "data": {"rooms": {room: where}}}
    return json.dumps(body, separators=(",", ":")).encode()


class EnvelopeClient(WSListener):  # type: ignore[misc]
    """A fan-out client of the message-type endpoint: its broadcasts come in envelopes
    (with ``room``/``offset``/``epoch`` in a room with history)."""

    def __init__(self, run: FanoutRun, server: int | None, joined: Callable[[], None]) -> None:
        super().__init__()
        self.run = run
        self.server = server
        self.joined = joined

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        payload = frame.get_payload_as_bytes()
        if payload.startswith(_RESPONSE_PREFIX):
            self.joined()
            return
        at = payload.find(_SEQ_KEY)
        if at < 0:
            self.run.bad_frames += 1
            return
        seq = int(payload[at + len(_SEQ_KEY) : payload.index(b",", at)])
        if self.server is None:
            self.run.received(seq)
        else:
            self.run.received_on(seq, self.server)


async def open_stalled(host: str, port: int, rcvbuf: int) -> socket.socket:
    """A WebSocket client that completes the handshake and then never reads."""
    loop = asyncio.get_running_loop()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # Before connect(), so that the advertised window stays small.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.setblocking(False)
    await loop.sock_connect(sock, (host, port))
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET /fanout?stalled=1 HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    await loop.sock_sendall(sock, request.encode())
    response = b""
    while b"\r\n\r\n" not in response and len(response) < 65536:
        chunk = await loop.sock_recv(sock, 4096)
        if not chunk:
            raise ConnectionError("the server closed the stalled client's handshake")
        response += chunk
    if not response.startswith(b"HTTP/1.1 101"):
        raise ConnectionError(f"handshake refused: {response[:40]!r}")
    return sock


def close_stalled(sock: socket.socket) -> None:
    """Send a masked close frame (1000) and close, so no server logs an abnormal closure."""
    try:
        sock.send(b"\x88\x82\x00\x00\x00\x00\x03\xe8")  # a zero mask leaves the code as is
    except OSError:  # the send buffer is full or the server is gone: just close
        pass
    sock.close()


def queued_bytes(sock: socket.socket) -> int:
    """Bytes waiting in the socket's receive queue (``FIONREAD``)."""
    buf = bytearray(4)
    fcntl.ioctl(sock.fileno(), termios.FIONREAD, buf)
    return int.from_bytes(buf, sys.byteorder)


async def http_post(host: str, port: int, path: str, timeout: float) -> bytes:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(
            f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\n"
            "Connection: close\r\n\r\n".encode()
        )
        return await asyncio.wait_for(reader.read(65536), timeout)
    finally:
        writer.close()


async def fanout(args: argparse.Namespace) -> dict[str, Any]:
    host = args.host
    # One server, or two workers on one Redis: clients alternate between them.
    ports = [args.port] if args.peer_port is None else [args.port, args.peer_port]
    stalled_count = int(round(args.clients * args.stalled))
    healthy_count = args.clients - stalled_count
    run = FanoutRun()
    run.expected = healthy_count
    started = time.perf_counter()
    # Stalled clients are spread evenly among the healthy ones, in connection order.
    plan = [
        (index + 1) * stalled_count // args.clients > index * stalled_count // args.clients
        for index in range(args.clients)
    ]
    stalled_socks: list[socket.socket] = []
    connections: list[tuple[WSTransport, WSListener]] = []
    per_port = dict.fromkeys(ports, 0)
    run.expected_on = [0] * len(ports)

    joined = [0]

    def one_joined() -> None:
        joined[0] += 1

    def client_factory(server: int) -> Callable[[], WSListener]:
        if args.room is not None:
            where = None if len(ports) == 1 else server
            return lambda: EnvelopeClient(run, where, one_joined)
        if len(ports) == 1:
            return lambda: FanoutClient(run)
        return lambda: WorkerClient(run, server)

    path = "/fanout" if args.room is None else "/ws"
    if args.room is not None and stalled_count:
        raise SystemExit("--room takes healthy clients only (--stalled 0)")

    for first in range(0, args.clients, 500):  # bounded: clients / 500 batches
        waits = []
        for offset, port in enumerate(ports):
            # Client i goes to ports[i % len(ports)]: half and half with two workers.
            batch = [
                stalled
                for index, stalled in enumerate(plan[first : first + 500], first)
                if index % len(ports) == offset
            ]
            per_port[port] += len(batch)
            run.expected_on[offset] += batch.count(False)
            waits.append(
                connect_many(
                    f"ws://{host}:{port}{path}",
                    batch.count(False),
                    client_factory(offset),
                    concurrency=128 // len(ports),
                    timeout=args.connect_timeout,
                )
            )
            waits.append(
                asyncio.wait_for(
                    asyncio.gather(
                        *(open_stalled(host, port, args.rcvbuf) for _ in range(batch.count(True)))
                    ),
                    args.connect_timeout,
                )
            )
        opened = await asyncio.gather(*waits)
        for healthy, stalled in zip(opened[::2], opened[1::2], strict=True):
            connections += healthy
            stalled_socks += stalled
    if args.room is not None:  # every client joins the room, and is told so (bounded)
        message = join_message(args.room)
        for transport, _ in connections:
            transport.send(WSMsgType.TEXT, message)
        total = len(connections)
        await wait_until(lambda: joined[0] >= total, args.connect_timeout, "joining the room")
    connect_s = time.perf_counter() - started
    trigger_path = "/broadcast?" if args.room is None else f"/publish?room={args.room}&"
    triggers = dict.fromkeys(ports, 0)  # measured broadcasts triggered on each server
    sent: dict[int, float] = {}  # when each broadcast was triggered

    def trigger_port(seq: int) -> int:
        if args.trigger == "first":
            return ports[0]
        return ports[seq % len(ports)]

    async def one_broadcast(seq: int) -> tuple[float | None, int]:
        """Trigger broadcast ``seq``; the seconds until the last healthy client got it."""
        port = trigger_port(seq)
        reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 10)
        request = (
            f"POST {trigger_path}seq={seq} HTTP/1.1\r\nHost: {host}\r\n"
            "Content-Length: 0\r\nConnection: close\r\n\r\n"
        ).encode()
        done = run.expect(seq)
        sent_at = sent[seq] = time.perf_counter()
        writer.write(request)
        try:
            last = await asyncio.wait_for(done, args.timeout)
            elapsed: float | None = last - sent_at
            await asyncio.wait_for(reader.read(65536), args.timeout)
        except asyncio.TimeoutError:
            elapsed = None
        finally:
            writer.close()
        return elapsed, run.counts.get(seq, 0)

    # Every client is registered once one broadcast reaches them all (bounded retries).
    registered = False
    for attempt in range(20):
        elapsed, _ = await one_broadcast(-1 - attempt)
        if elapsed is not None:
            registered = True
            break
        await asyncio.sleep(0.25)
    fill: dict[str, Any] = {}
    if stalled_socks and registered:
        for port in ports:
            await http_post(
                host, port, f"/fill?size={args.fill_size}&count={args.fill_count}", args.timeout
            )
        # Wait until every stalled client's receive queue is full (the server has written
        # all it could and its buffers for that client are filling up), and the total
        # has stopped growing for 0.3 s; bounded to 20 s.
        full = args.rcvbuf  # the kernel doubles SO_RCVBUF; it keeps a quarter for itself
        previous, steady, deadline = -1, 0, time.perf_counter() + 20
        queued = [0]
        while steady < 3 and time.perf_counter() < deadline:
            await asyncio.sleep(0.1)
            queued = [queued_bytes(sock) for sock in stalled_socks]
            total = sum(queued)
            steady = steady + 1 if total == previous and min(queued) >= full else 0
            previous = total
        fill = {
            "stalled_queued_kib_min": round(min(queued) / 1024, 1),
            "fill_settled": steady >= 3,
        }
    times: list[float] = []
    reached: list[int] = []
    timeouts = 0
    # CPU is measured over the broadcasts only, the gaps between them excluded.
    meter = CPUMeter(args.server_pid, args.peer_pid, args.redis_pid)
    stuck = 0  # broadcasts that timed out, warm-up included
    profiler = start_profiler(args) if registered else None
    if registered:
        for seq in range(args.warmup):
            elapsed, _ = await one_broadcast(100_000 + seq)
            if elapsed is None:
                stuck += 1
                break
            await asyncio.sleep(args.gap)
        for seq in range(args.broadcasts):
            meter.start()
            elapsed, count = await one_broadcast(seq)
            meter.pause()
            triggers[trigger_port(seq)] += 1
            reached.append(count)
            if elapsed is None:
                timeouts += 1
                stuck += 1
                if stuck >= 2:  # the server is stuck: later broadcasts would be too
                    break
            else:
                times.append(elapsed)
            await asyncio.sleep(args.gap)
    cpu = meter.result()
    stop_profiler(profiler)
    close_all(connections)
    for sock in stalled_socks:
        close_stalled(sock)
    two = {}
    if len(ports) > 1:
        # For each measured broadcast: when the last client of the triggered worker got
        # it, and when the last client of the other one (through Redis) did.
        local, remote = [], []
        for seq in range(len(reached)):
            here = ports.index(trigger_port(seq))
            ends = run.done_on.get((seq, here)), run.done_on.get((seq, 1 - here))
            if ends[0] is not None and ends[1] is not None:
                local.append(ends[0] - sent[seq])
                remote.append(ends[1] - sent[seq])
        two = {
            "clients_per_server": list(per_port.values()),
            "triggers_per_server": list(triggers.values()),
            "triggered_worker_p50_ms": _ms(percentile(local, 50)),
            "other_worker_p50_ms": _ms(percentile(remote, 50)),
            # broadcasts whose last client was on the worker that got them from Redis
            "other_worker_last": sum(1 for a, b in zip(local, remote, strict=True) if b > a),
        }
    return {
        "clients": args.clients,
        "healthy": healthy_count,
        "stalled": stalled_count,
        **({"room": args.room, "joined": joined[0]} if args.room is not None else {}),
        **two,
        "connect_s": round(connect_s, 2),
        "registered": registered,
        "broadcasts": len(reached),
        "timeouts": timeouts,
        "timeout_s": args.timeout,
        "min_reached": min(reached) if reached else 0,
        "p50_ms": _ms(percentile(times, 50)) if not timeouts else None,
        "p99_ms": _ms(percentile(times, 99)) if not timeouts else None,
        "max_ms": _ms(max(times)) if times and not timeouts else None,
        "times_ms": [_ms(value) for value in times],
        "bad_frames": run.bad_frames,
        "server_ms_per_broadcast": (
            round(1e3 * meter.server_seconds / len(reached), 3)
            if reached and not timeouts
            else None
        ),
        **(
            {"redis_ms_per_broadcast": round(1e3 * meter.redis_seconds / len(reached), 3)}
            if args.redis_pid and reached
            else {}
        ),
        **fill,
        **cpu,
    }


# Resume -----------------------------------------------------------------------------------


class ResumeRun:
    """Every client of the ``resume`` scenario, and how far they are."""

    def __init__(self, clients: int, gap: int) -> None:
        self.clients = clients
        self.gap = gap
        self.phase = "join"  # join, live, resume, over
        self.joined = 0
        self.caught_up = 0  # clients that have seen the live publications
        self.live_offset = 0  # the offset every client must reach while live
        self.done = 0
        self.bad_frames = 0
        self.errors: list[str] = []
        self.all_done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def finished(self) -> None:
        self.done += 1
        if self.done == self.clients and not self.all_done.done():
            self.all_done.set_result(None)


class ResumeClient(WSListener):  # type: ignore[misc]
    """A client of ``/ws`` in one room with history: it keeps the last position it saw,
    and after a ``resume`` checks that it got exactly the gap, in order, then the
    ``response`` (``recovered: true`` at the room's last position)."""

    def __init__(self, run: ResumeRun, room: str, previous: ResumeClient | None = None) -> None:
        super().__init__()
        self.run = run
        self.room = room
        self.epoch = previous.epoch if previous is not None else ""
        self.offset = previous.offset if previous is not None else 0
        self.seq_delta: int | None = previous.seq_delta if previous is not None else None
        self.missed = 0  # publications received after the resume was sent
        self.disorder = 0  # publications out of order, doubled, or from another epoch
        self.recovered = False
        self.sent_at = 0.0
        self.done_at = 0.0

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is not WSMsgType.TEXT:
            return
        run = self.run
        payload = frame.get_payload_as_bytes()
        if payload.startswith(_RESPONSE_PREFIX):
            self.answered(json.loads(payload))
            return
        try:
            at = payload.rindex(_OFFSET_KEY) + len(_OFFSET_KEY)
            offset = int(payload[at : payload.index(b",", at)])
            at = payload.rindex(_EPOCH_KEY) + len(_EPOCH_KEY)
            epoch = payload[at : payload.index(b'"', at)].decode()
            at = payload.index(_SEQ_KEY) + len(_SEQ_KEY)
            seq = int(payload[at : payload.index(b",", at)])
        except ValueError:
            run.bad_frames += 1
            return
        # In order, nothing doubled or skipped, each offset carrying its own publication.
        if self.epoch and (epoch != self.epoch or offset != self.offset + 1):
            self.disorder += 1
        if self.seq_delta is not None and offset - seq != self.seq_delta:
            self.disorder += 1
        self.epoch, self.offset, self.seq_delta = epoch, offset, offset - seq
        if run.phase == "resume":
            self.missed += 1
        elif offset == run.live_offset:
            run.caught_up += 1

    def answered(self, message: dict[str, Any]) -> None:
        run = self.run
        if run.phase == "join":
            run.joined += 1
            return
        if run.phase != "resume" or self.done_at:
            run.bad_frames += 1
            return
        self.done_at = time.perf_counter()
        state = message.get("data", {}).get("rooms", {}).get(self.room, {})
        self.recovered = (
            state.get("recovered") is True
            and state.get("epoch") == self.epoch
            and state.get("offset") == self.offset
        )
        run.finished()

    def on_ws_disconnected(self, transport: WSTransport) -> None:
        if self.run.phase == "resume" and not self.done_at:
            self.run.errors.append("a client was disconnected before its response")
            self.done_at = time.perf_counter()
            self.run.finished()

    @property
    def correct(self) -> bool:
        return self.recovered and self.missed == self.run.gap and not self.disorder


async def http_get_json(host: str, port: int, path: str, timeout: float) -> Any:
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        response = await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()
    head, _, body = response.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200"):
        raise RuntimeError(f"GET {path}: {head[:40]!r}")
    return json.loads(body)


async def wait_until(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` every 10 ms until it holds; RuntimeError after ``timeout`` seconds."""
    deadline = time.perf_counter() + timeout
    while not check():
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{what}: not after {timeout:g} s")
        await asyncio.sleep(0.01)


async def resume(args: argparse.Namespace) -> dict[str, Any]:
    host, room = args.host, args.room
    # One server, or two workers on one Redis: client i on ports[i % 2] first, and on the
    # other worker when it comes back (its gap is read from Redis there).
    ports = [args.port] if args.peer_port is None else [args.port, args.peer_port]
    run = ResumeRun(args.clients, args.gap)
    started = time.perf_counter()

    async def connect(
        listeners: list[ResumeClient], shift: int
    ) -> list[tuple[WSTransport, WSListener]]:
        """Connect listener i to ``ports[(i + shift) % len(ports)]``."""
        waits = []
        for index, port in enumerate(ports):
            mine = [c for i, c in enumerate(listeners) if (i + shift) % len(ports) == index]
            waits.append(
                connect_many(
                    f"ws://{host}:{port}/ws",
                    len(mine),
                    iter(mine).__next__,
                    concurrency=128 // len(ports),
                    timeout=args.connect_timeout,
                )
            )
        return [pair for opened in await asyncio.gather(*waits) for pair in opened]

    # 1. Join, and see a few live publications (every client then has a position).
    previous = [ResumeClient(run, room) for _ in range(args.clients)]
    first = await connect(previous, 0)
    for transport, _ in first:
        transport.send(WSMsgType.TEXT, join_message(room))
    await wait_until(lambda: run.joined == args.clients, 30, "joining")
    run.phase = "live"
    before = await http_get_json(host, ports[0], f"/position?room={room}", 5)
    base = before["offset"] if before else 0
    run.live_offset = base + args.live
    await http_post(host, ports[0], f"/publish?room={room}&seq=0&count={args.live}", 5)
    await wait_until(lambda: run.caught_up == args.clients, 30, "live publications")
    # 2. Every client drops its connection (no close frame); the servers see them go.
    for transport, _ in first:
        transport.disconnect(graceful=False)
    for port in ports:
        await wait_until_empty(host, port, args.stats_path)
    # 3. The gap: published while nobody is connected, kept in the room's history.
    await http_post(host, ports[0], f"/publish?room={room}&seq={args.live}&count={args.gap}", 10)
    target = run.live_offset + args.gap
    for port in ports:
        await wait_until_position(host, port, room, target)
    # 4. Everyone comes back, then every resume is sent at once.
    run.phase = "resume"
    back = await connect([ResumeClient(run, room, client) for client in previous], 1)
    connect_s = time.perf_counter() - started
    meter = CPUMeter(args.server_pid, args.peer_pid, args.redis_pid)
    profiler = start_profiler(args)
    messages = []
    for _, listener in back:
        assert isinstance(listener, ResumeClient)
        messages.append(join_message(room, (listener.epoch, listener.offset)))
    meter.start()
    first_sent = time.perf_counter()
    for (transport, listener), message in zip(back, messages, strict=True):
        listener.sent_at = time.perf_counter()
        transport.send(WSMsgType.TEXT, message)
    all_sent = time.perf_counter()
    timed_out = False
    try:
        await asyncio.wait_for(asyncio.shield(run.all_done), args.timeout)
    except asyncio.TimeoutError:
        timed_out = True
    cpu = meter.stop()
    stop_profiler(profiler)
    run.phase = "over"
    close_all(back)
    clients = [listener for _, listener in back if isinstance(listener, ResumeClient)]
    per_server = [0] * len(ports)
    for i in range(args.clients):
        per_server[(i + 1) % len(ports)] += 1
    finished = [client for client in clients if client.done_at]
    own = [client.done_at - client.sent_at for client in finished]
    since_first = [client.done_at - first_sent for client in finished]
    replayed = sum(client.missed for client in clients)
    return {
        "clients": args.clients,
        "gap": args.gap,
        "clients_per_server": per_server,
        "connect_s": round(connect_s, 2),
        "timed_out": timed_out,
        "timeout_s": args.timeout,
        "answered": len(finished),
        "correct": sum(1 for client in clients if client.correct),
        "recovered": sum(1 for client in clients if client.recovered),
        "disorder": sum(client.disorder for client in clients),
        "replayed": replayed,
        "send_ms": _ms(all_sent - first_sent),
        # from a client's own resume to its response (its whole gap before it)
        "p50_ms": _ms(percentile(own, 50)),
        "p99_ms": _ms(percentile(own, 99)),
        # from the first resume sent until this client had everything
        "done_p50_ms": _ms(percentile(since_first, 50)),
        "total_ms": _ms(max(since_first)) if since_first and not timed_out else None,
        "server_ms": round(1e3 * meter.server_seconds, 1),
        "server_us_per_message": (
            round(1e6 * meter.server_seconds / replayed, 2) if replayed else None
        ),
        **({"redis_ms": round(1e3 * meter.redis_seconds, 2)} if args.redis_pid else {}),
        "bad_frames": run.bad_frames,
        "incorrect": args.clients - sum(1 for client in clients if client.correct),
        "errors": len(run.errors),
        **cpu,
    }


async def wait_until_empty(host: str, port: int, stats_path: str) -> None:
    """Until the server has no connection left (its hub's counters; bounded)."""
    deadline = time.perf_counter() + 30
    while (await http_get_json(host, port, stats_path, 5))["connections"]:
        if time.perf_counter() > deadline:
            raise RuntimeError("the server still has connections after 30 s")
        await asyncio.sleep(0.05)


async def wait_until_position(host: str, port: int, room: str, offset: int) -> None:
    """Until the room's history on this server reaches ``offset`` (bounded)."""
    deadline = time.perf_counter() + 30
    while True:
        position = await http_get_json(host, port, f"/position?room={room}", 5)
        if position and position["offset"] >= offset:
            return
        if time.perf_counter() > deadline:
            raise RuntimeError(f"room {room} not at offset {offset} after 30 s: {position}")
        await asyncio.sleep(0.02)


# Memory -----------------------------------------------------------------------------------


class IdleRun:
    def __init__(self) -> None:
        self.replies = 0
        self.expected = 0
        self.all_replied = asyncio.get_running_loop().create_future()

    def replied(self) -> None:
        self.replies += 1
        if self.replies == self.expected and not self.all_replied.done():
            self.all_replied.set_result(None)


class IdleClient(WSListener):  # type: ignore[misc]
    def __init__(self, run: IdleRun) -> None:
        super().__init__()
        self.run = run

    def on_ws_frame(self, transport: WSTransport, frame: WSFrame) -> None:
        if frame.msg_type is WSMsgType.TEXT:
            self.run.replied()


async def memory(args: argparse.Namespace) -> dict[str, Any]:
    server = psutil.Process(args.server_pid)
    # Warm the server up (lazy imports, first-connection allocations), then measure.
    warm_run = IdleRun()
    warm = await connect_many(
        args.url + "/echo", 10, lambda: IdleClient(warm_run), concurrency=10, timeout=30
    )
    for transport, _ in warm:
        transport.send(WSMsgType.TEXT, ECHO_MESSAGE)
    await asyncio.sleep(0.5)
    close_all(warm)
    await asyncio.sleep(args.settle)
    before = server.memory_info().rss
    run = IdleRun()
    run.expected = args.clients
    connections = await connect_many(
        args.url + "/echo",
        args.clients,
        lambda: IdleClient(run),
        concurrency=128,
        timeout=args.connect_timeout,
    )
    for transport, _ in connections:  # one round trip each: the handler is running
        transport.send(WSMsgType.TEXT, ECHO_MESSAGE)
    try:
        await asyncio.wait_for(asyncio.shield(run.all_replied), 30)
    except asyncio.TimeoutError:
        pass
    await asyncio.sleep(args.settle)
    after = server.memory_info().rss
    close_all(connections)
    return {
        "clients": args.clients,
        "echoed": run.replies,
        "rss_before_mib": round(before / 2**20, 1),
        "rss_after_mib": round(after / 2**20, 1),
        "kib_per_conn": round((after - before) / args.clients / 1024, 2),
    }


# HTTP (fallback when wrk is missing) ------------------------------------------------------


class _HTTPClient(asyncio.Protocol):
    def __init__(self, request: bytes, state: dict[str, Any]) -> None:
        self.request = request
        self.state = state
        self.buffer = b""
        self.transport: asyncio.Transport | None = None
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def fire(self) -> None:
        assert self.transport is not None
        self.sent_at = time.perf_counter()
        self.transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            head_end = self.buffer.find(b"\r\n\r\n")
            if head_end < 0:
                return
            length = 0
            for line in self.buffer[:head_end].split(b"\r\n")[1:]:
                name, _, value = line.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            end = head_end + 4 + length
            if len(self.buffer) < end:
                return
            self.buffer = self.buffer[end:]
            state = self.state
            if state["recording"]:
                state["count"] += 1
                state["latencies"].append(time.perf_counter() - self.sent_at)
            if state["running"]:
                self.fire()


async def http(args: argparse.Namespace) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    request = f"GET /json HTTP/1.1\r\nHost: {args.host}\r\n\r\n".encode()
    state: dict[str, Any] = {"running": True, "recording": False, "count": 0, "latencies": []}
    clients = []
    for _ in range(args.clients):
        _, protocol = await asyncio.wait_for(
            loop.create_connection(lambda: _HTTPClient(request, state), args.host, args.port), 10
        )
        clients.append(protocol)
    for protocol in clients:
        protocol.fire()
    await asyncio.sleep(args.warmup)
    meter = CPUMeter(args.server_pid)
    state["recording"] = True
    meter.start()
    started = time.perf_counter()
    await asyncio.sleep(args.duration)
    elapsed = time.perf_counter() - started
    state["recording"] = False
    cpu = meter.stop()
    state["running"] = False
    for protocol in clients:
        if protocol.transport is not None:
            protocol.transport.close()
    return {
        "clients": args.clients,
        "tool": "bench.load http",
        "requests_per_s": round(state["count"] / elapsed, 1),
        "server_us_per_req": (
            round(1e6 * meter.server_seconds / state["count"], 2) if state["count"] else None
        ),
        "p50_ms": _ms(percentile(state["latencies"], 50)),
        "p99_ms": _ms(percentile(state["latencies"], 99)),
        **cpu,
    }


# Entry point ------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.load", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--server-pid", type=int, default=None)
    parser.add_argument("--connect-timeout", type=float, default=60)
    parser.add_argument("--profile", help="record the server with py-spy into this file")
    parser.add_argument("--profile-pid", type=int, help="the process to record (default: server)")
    parser.add_argument("--peer-port", type=int, help="fanout: a second worker (same Redis)")
    parser.add_argument("--peer-pid", type=int, help="the second worker's PID (its CPU use)")
    parser.add_argument("--redis-pid", type=int, help="redis-server's PID (its CPU use)")
    sub = parser.add_subparsers(dest="scenario", required=True)
    p = sub.add_parser("echo")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=1)
    p = sub.add_parser("fanout")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--stalled", type=float, default=0.0, help="fraction of stalled clients")
    p.add_argument("--broadcasts", type=int, default=20)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--gap", type=float, default=0.02, help="seconds between broadcasts")
    p.add_argument("--timeout", type=float, default=5, help="seconds a broadcast may take")
    p.add_argument("--rcvbuf", type=int, default=4096, help="SO_RCVBUF of stalled clients")
    p.add_argument("--fill-size", type=int, default=65536)
    p.add_argument("--fill-count", type=int, default=16)
    p.add_argument(
        "--trigger",
        choices=["alternate", "first"],
        default="alternate",
        help="with --peer-port: on which worker to send POST /broadcast",
    )
    p.add_argument("--room", help="clients on /ws in this room, triggers on /publish")
    p = sub.add_parser("resume")
    p.add_argument("--clients", type=int, default=1000)
    p.add_argument("--gap", type=int, default=100, help="publications missed by each")
    p.add_argument("--live", type=int, default=3, help="publications seen before leaving")
    p.add_argument("--room", default="history:resume")
    p.add_argument("--timeout", type=float, default=60, help="seconds the resume may take")
    p.add_argument("--stats-path", default="/hub-stats", help="the hub's counters")
    p = sub.add_parser("memory")
    p.add_argument("--clients", type=int, default=2000)
    p.add_argument("--settle", type=float, default=1.0)
    p = sub.add_parser("http")
    p.add_argument("--clients", type=int, default=64)
    p.add_argument("--duration", type=float, default=5)
    p.add_argument("--warmup", type=float, default=1)
    args = parser.parse_args(argv)
    args.url = f"ws://{args.host}:{args.port}"
    return args


SCENARIOS: dict[str, Callable[[argparse.Namespace], Coroutine[Any, Any, dict[str, Any]]]] = {
    "echo": echo,
    "fanout": fanout,
    "resume": resume,
    "memory": memory,
    "http": http,
}


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    raise_nofile_limit()
    result = uvloop.run(SCENARIOS[args.scenario](args))
    sys.stdout.write(json.dumps(result) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
