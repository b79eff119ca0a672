"""In-process echo and fan-out: the framework's own cost, without sockets.

Each target's app is driven through ASGI directly, so what is left is what the framework
does per message, which the socket benchmarks (``bench.run``) drown in kernel time and
noise. Use it to compare a change to the receive/send or broadcast path before and after;
publish only ``bench.run`` figures.

- ``echo``: ``/echo`` gets ``count`` text messages from memory (``receive`` only suspends
  once in ``batch`` calls, as a socket read would) and ``send`` counts the replies:
  messages per second, and microseconds per message (one receive and one send).
- ``fanout``: ``clients`` in-memory connections to ``/fanout`` (their ``send`` completes
  without suspending, as a healthy client's does) get ``broadcasts`` broadcasts, each
  timed from the trigger (the body of the target's ``POST /broadcast``: Bocadillo's
  ``app.hub.broadcast(text, room="fanout")``, the peers' loops) until every client's
  ``send`` has run: microseconds per recipient, the median over the broadcasts.
- ``nats``: the NATS hub backend's own cost (``bocadillo/realtime/backends/nats.py``), on a
  real ``nats-server -js`` on loopback (``tests/nats_server.py``'s): one backend publishes
  ``frames`` frames of 100 bytes on one route (``everyone``, a ``room`` the other backend
  subscribes to, a ``conn``ection the other holds, or ``conns``: each frame to the next of
  1,000 connections the other holds), in chunks of 1,000 as a busy hub would, and a
  second backend in the same process receives and delivers them. Printed: microseconds
  per ``publish()`` call (what the hub's ``broadcast``/``send`` pays), and
  per frame the CPU time of this process (both backends: queueing, writing, reading,
  delivering; the server's own CPU is not in it) and the wall time until the last frame
  is delivered.

    bench/.venv/bin/python -m bench.micro [--scenario echo|fanout|nats] [--reps R] [--targets ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import inspect
import statistics
import time
import uuid
from collections.abc import Callable
from typing import Any

from .apps.common import broadcast_text

__all__ = ["echo_rate", "fanout_cost", "nats_cost"]

TEXT = '{"type":"echo","seq":12345,"payload":"' + "x" * 60 + '"}'
#: The targets whose ``POST /broadcast`` this module knows how to call directly.
FANOUT_TARGETS = ("raw", "starlette", "bocadillo")
#: The routes ``--scenario nats`` publishes on.
NATS_ROUTES = ("everyone", "room", "conn", "conns")
#: The connections the ``conns`` route cycles through (one frame to each in turn).
NATS_CONNS = 1000


def _scope(path: str) -> dict[str, Any]:
    return {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
        "state": {},
    }


async def _lifespan(app: Any) -> Any:
    """Start the app (some create their state on startup); return the shutdown step."""
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    done = asyncio.Event()

    async def receive() -> dict[str, Any]:
        return await queue.get()

    async def send(message: dict[str, Any]) -> None:
        if message["type"].endswith(".complete") or message["type"].endswith(".failed"):
            done.set()

    task = asyncio.ensure_future(
        app({"type": "lifespan", "asgi": {"version": "3.0"}}, receive, send)
    )
    await queue.put({"type": "lifespan.startup"})
    await asyncio.wait_for(done.wait(), 10)

    async def stop() -> None:
        done.clear()
        await queue.put({"type": "lifespan.shutdown"})
        await asyncio.wait_for(task, 10)

    return stop


async def echo_rate(app: Any, count: int, batch: int = 1) -> float:
    """Messages per second through ``app``'s ``/echo`` for ``count`` messages."""
    scope = _scope("/echo")
    message = {"type": "websocket.receive", "text": TEXT}
    received = 0
    sent = 0

    async def receive() -> dict[str, Any]:
        nonlocal received
        if received == 0:
            received = 1
            return {"type": "websocket.connect"}
        received += 1
        if received % batch == 0:
            await asyncio.sleep(0)
        if received > count + 1:
            return {"type": "websocket.disconnect", "code": 1000}
        return message

    async def send(event: dict[str, Any]) -> None:
        nonlocal sent
        if event["type"] == "websocket.send":
            sent += 1

    started = time.perf_counter()
    await app(scope, receive, send)
    elapsed = time.perf_counter() - started
    if sent != count:
        raise RuntimeError(f"echoed {sent} of {count} messages")
    return count / elapsed


class _Fleet:
    """``size`` in-memory connections to ``/fanout``, counting what is sent to them."""

    def __init__(self, size: int) -> None:
        loop = asyncio.get_running_loop()
        self.size = size
        self.waiting = 0  # connections whose app waits for a message (joined, listening)
        self.sent = 0
        self.expected = 0
        self.listening = loop.create_future()
        self.delivered = loop.create_future()
        self.gone = loop.create_future()  # resolved: every connection disconnects

    def connection(self) -> tuple[Callable[[], Any], Callable[[Any], Any]]:
        fleet = self
        calls = 0

        async def receive() -> dict[str, Any]:
            nonlocal calls
            calls += 1
            if calls == 1:
                return {"type": "websocket.connect"}
            if calls == 2:
                fleet.waiting += 1
                if fleet.waiting == fleet.size:
                    fleet.listening.set_result(None)
            await fleet.gone
            return {"type": "websocket.disconnect", "code": 1000}

        async def send(event: dict[str, Any]) -> None:
            if event["type"] == "websocket.send":
                fleet.sent += 1
                if fleet.sent == fleet.expected:
                    fleet.delivered.set_result(None)

        return receive, send


def _trigger(target: str, app: Any) -> Callable[[str], Any]:
    """What the target's ``POST /broadcast`` does, called directly."""
    if target == "bocadillo":
        hub = app.hub
        return lambda text: hub.broadcast(text, room="fanout")
    if target == "starlette":
        from .apps import starlette_app

        async def starlette_broadcast(text: str) -> None:
            for ws in list(starlette_app.clients):
                await ws.send_text(text)

        return starlette_broadcast
    if target == "raw":
        from .apps import raw

        async def raw_broadcast(text: str) -> None:
            message = {"type": "websocket.send", "text": text}
            for client in list(raw.clients):
                await client(message)

        return raw_broadcast
    raise ValueError(f"no fan-out trigger for {target}")


async def fanout_cost(app: Any, target: str, clients: int, broadcasts: int) -> float:
    """Microseconds per recipient of a broadcast to ``clients`` connections (the median
    over ``broadcasts``, after 3 warm-up ones)."""
    fleet = _Fleet(clients)
    scope = _scope("/fanout")
    tasks = []
    for _ in range(clients):
        receive, send = fleet.connection()
        tasks.append(asyncio.ensure_future(app(dict(scope, state={}), receive, send)))
    try:
        await asyncio.wait_for(asyncio.shield(fleet.listening), 60)
        trigger = _trigger(target, app)
        costs = []
        for seq in range(broadcasts + 3):
            text = broadcast_text(seq)
            loop = asyncio.get_running_loop()
            fleet.delivered = loop.create_future()
            fleet.expected = fleet.sent + clients
            if seq == 3:
                gc.collect()
            started = time.perf_counter()
            result = trigger(text)
            if inspect.isawaitable(result):
                await result
            if not fleet.delivered.done():
                await asyncio.wait_for(fleet.delivered, 10)
            elapsed = time.perf_counter() - started
            if fleet.sent != fleet.expected:
                raise RuntimeError(f"sent {fleet.sent} of {fleet.expected} messages")
            if seq >= 3:
                costs.append(elapsed * 1e6 / clients)
            await asyncio.sleep(0)
        return statistics.median(costs)
    finally:
        fleet.gone.set_result(None)
        await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 60)


def _targets() -> dict[str, str]:
    # Imported when used: ``bench.run`` needs the bench's own virtualenv (psutil,
    # picows), which ``--scenario nats`` does not.
    from .run import TARGETS

    return TARGETS


def _app(target: str) -> Any:
    module, _, name = _targets()[target].partition(":")
    return getattr(importlib.import_module(module), name)


async def _measure(target: str, count: int) -> float:
    app = _app(target)
    stop = await _lifespan(app)
    try:
        await echo_rate(app, count // 10)  # warm-up
        gc.collect()
        return await echo_rate(app, count)
    finally:
        await stop()


async def _measure_fanout(target: str, clients: int, broadcasts: int) -> float:
    app = _app(target)
    stop = await _lifespan(app)
    try:
        return await fanout_cost(app, target, clients, broadcasts)
    finally:
        await stop()


async def nats_cost(url: str, route_name: str, frames: int) -> tuple[float, float, float]:
    """Publish ``frames`` frames on ``route_name`` from one NATS backend to another, both
    in this process: microseconds per ``publish()`` call, and CPU and wall microseconds
    per frame until the last one is delivered."""
    from bocadillo.realtime.backends import EVERYONE, Route
    from bocadillo.realtime.backends.nats import NatsBackend

    prefix = f"bench{uuid.uuid4().hex[:8]}"
    chunk = 1000
    # A queue that never drops: every frame is measured.
    sender = NatsBackend(url, prefix=prefix, publish_queue=frames + chunk)
    receiver = NatsBackend(url, prefix=prefix)
    delivered = 0
    done = asyncio.Event()

    def deliver(frame: bytes) -> None:
        nonlocal delivered
        delivered += 1
        if delivered == frames:
            done.set()

    await sender.start(lambda frame: None)
    await receiver.start(deliver)
    try:
        conn_ids = [f"c{n}" for n in range(NATS_CONNS)]
        for conn_id in conn_ids:
            receiver.connection_added(conn_id)
        receiver.subscribe("r")
        await receiver.wait_subscribed(["r"])
        for _ in range(10_000):  # until the holders are written (10 s at most)
            if not receiver.stats()["queued"]:
                break
            await asyncio.sleep(0.001)
        route = {"everyone": EVERYONE, "room": Route(room="r"), "conn": Route(conns=("c0",))}
        # ``conns``: each frame to another connection, as many sends to many clients.
        routes = [Route(conns=(c,)) for c in conn_ids] if route_name == "conns" else []
        chosen = route.get(route_name, EVERYONE)
        frame = b"x" * 100
        gc.collect()
        calls = 0.0
        cpu, wall = time.process_time(), time.perf_counter()
        for _ in range(frames // chunk):
            started = time.perf_counter()
            if routes:
                for n in range(chunk):
                    sender.publish(frame, routes[n % NATS_CONNS])
            else:
                for _ in range(chunk):
                    sender.publish(frame, chosen)
            calls += time.perf_counter() - started
            await asyncio.sleep(0)  # the writer and the reader run between chunks
        await asyncio.wait_for(done.wait(), 120)
        cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
        return calls * 1e6 / frames, cpu * 1e6 / frames, wall * 1e6 / frames
    finally:
        await sender.stop()
        await receiver.stop()


def _nats(routes: list[str], frames: int, reps: int) -> None:
    import tempfile
    from pathlib import Path

    from tests.nats_server import NatsServer

    with tempfile.TemporaryDirectory(prefix="bench-nats-") as workdir:
        server = NatsServer(Path(workdir))
        server.start()
        try:
            asyncio.run(nats_cost(server.url, "everyone", frames // 10))  # warm-up
            costs: dict[str, list[tuple[float, float, float]]] = {r: [] for r in routes}
            for rep in range(reps):
                for route in routes if rep % 2 == 0 else routes[::-1]:
                    costs[route].append(asyncio.run(nats_cost(server.url, route, frames)))
        finally:
            server.close()
    for route, values in costs.items():
        call, cpu, wall = (statistics.median(column) for column in zip(*values, strict=True))
        print(
            f"nats {route:8} publish() {call:5.2f} us/call  cpu {cpu:6.2f} us/frame  "
            f"wall {wall:6.2f} us/frame  (cpu {_spread([v[1] for v in values], digits=2)})"
        )


def _spread(values: list[float], digits: int) -> str:
    return ", ".join(f"{value:.{digits}f}" for value in values)


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.micro", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--scenario", choices=["echo", "fanout", "nats"], default="echo")
    parser.add_argument("--count", type=int, default=200_000, help="echo: messages per run")
    parser.add_argument(
        "--clients", type=int, nargs="+", default=[1000, 5000], help="fanout: connections"
    )
    parser.add_argument("--broadcasts", type=int, default=20, help="fanout: per measurement")
    parser.add_argument("--reps", type=int, default=5, help="alternated repetitions")
    parser.add_argument("--targets", nargs="+", default=["raw", "starlette", "bocadillo"])
    parser.add_argument("--frames", type=int, default=50_000, help="nats: frames per run")
    parser.add_argument(
        "--routes", nargs="+", choices=NATS_ROUTES, default=list(NATS_ROUTES), help="nats"
    )
    args = parser.parse_args()
    if args.scenario == "nats":
        _nats(args.routes, args.frames, args.reps)
        return
    unknown = sorted(set(args.targets) - set(_targets()))
    if unknown:
        parser.error(f"unknown targets: {', '.join(unknown)}")
    if args.scenario == "fanout":
        targets = [target for target in args.targets if target in FANOUT_TARGETS]
        for clients in args.clients:
            costs: dict[str, list[float]] = {target: [] for target in targets}
            for rep in range(args.reps):
                for target in targets if rep % 2 == 0 else targets[::-1]:
                    costs[target].append(
                        asyncio.run(_measure_fanout(target, clients, args.broadcasts))
                    )
            raw_cost = statistics.median(costs["raw"]) if "raw" in costs else None
            for target, values in costs.items():
                median = statistics.median(values)
                ratio = f"  {median / raw_cost:.2f} of raw" if raw_cost else ""
                print(
                    f"fanout {clients:5} {target:10} {median:6.3f} us/recipient{ratio}"
                    f"  ({_spread(values, digits=3)})"
                )
        return
    rates: dict[str, list[float]] = {target: [] for target in args.targets}
    for rep in range(args.reps):
        order = args.targets if rep % 2 == 0 else args.targets[::-1]
        for target in order:
            rates[target].append(asyncio.run(_measure(target, args.count)))
    raw = statistics.median(rates["raw"]) if "raw" in rates else None
    for target, values in rates.items():
        median = statistics.median(values)
        per_message = 1e6 / median
        ratio = f"  {median / raw:.2f} of raw" if raw else ""
        spread = ", ".join(f"{value / 1000:.0f}k" for value in values)
        print(
            f"{target:10} {median / 1000:7.1f}k msg/s  {per_message:5.2f} us/msg{ratio}  ({spread})"
        )


if __name__ == "__main__":
    main()
