"""In-process echo: the framework's own cost per WebSocket message, without sockets.

Each target's ``/echo`` app is driven through ASGI directly: ``receive`` hands out
``count`` text messages from memory (it only suspends once in ``batch`` calls, as a socket
read would), ``send`` counts them. What is left is what the framework does per message,
which the socket benchmarks (``bench.run``) drown in kernel time and noise. Use it to
compare a change to the receive/send path before and after; publish only ``bench.run``
figures.

    bench/.venv/bin/python -m bench.micro [--count N] [--reps R] [--targets ...]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib
import statistics
import time
from typing import Any

from .run import TARGETS

__all__ = ["echo_rate"]

TEXT = '{"type":"echo","seq":12345,"payload":"' + "x" * 60 + '"}'


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
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": "/echo",
        "raw_path": b"/echo",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"127.0.0.1")],
        "client": ("127.0.0.1", 40000),
        "server": ("127.0.0.1", 8000),
        "subprotocols": [],
        "state": {},
    }
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


async def _measure(target: str, count: int) -> float:
    module, _, name = TARGETS[target].partition(":")
    app = getattr(importlib.import_module(module), name)
    stop = await _lifespan(app)
    try:
        await echo_rate(app, count // 10)  # warm-up
        gc.collect()
        return await echo_rate(app, count)
    finally:
        await stop()


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m bench.micro", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--count", type=int, default=200_000, help="messages per measurement")
    parser.add_argument("--reps", type=int, default=5, help="alternated repetitions")
    parser.add_argument(
        "--targets", nargs="+", choices=list(TARGETS), default=["raw", "starlette", "bocadillo"]
    )
    args = parser.parse_args()
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
