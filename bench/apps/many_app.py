"""The Bocadillo bench app with what ``bench/many.py`` (many idle connections) needs.

Importing this module adds routes to ``bocadillo_app.app``; only the servers of
``bench.many`` import it, so the other scenarios' app is unchanged. Its clients are
those of ``/fanout`` (each joins the room ``fanout`` and then only reads). The routes:

- ``POST /broadcast-all?seq=N``: one ``app.hub.broadcast`` to every connection of every
  worker (no room), the frame the load generator reads ``seq`` back from;
- ``GET /many/counts``: the counts across workers (through the backend): connections
  (``hub.global_count()``) and members of ``fanout`` (``hub.global_members``);
- ``POST /many/trace``: start ``tracemalloc`` in this worker (one frame per trace);
- ``GET /many/heap``: what this worker allocated since then and still holds, by the
  package of the code that allocated it, then stop tracing (which frees its tables);
- ``GET /many/gc``: the garbage collections of this worker since it started, by
  generation: how many, and their CPU time (a full collection walks every object,
  and a worker holding tens of thousands of connections has millions).
"""

from __future__ import annotations

import gc
import sysconfig
import time
import tracemalloc
from collections import Counter
from pathlib import Path

from bocadillo.errors import BackendUnavailable

from .bocadillo_app import app
from .common import broadcast_text

ROOM = "fanout"
#: Bocadillo's allocation sites listed by ``/many/heap``.
LINES = 12

#: Where the standard library lives, to tell ``asyncio`` and friends from packages.
_STDLIB = sysconfig.get_paths()["stdlib"]


def package_of(filename: str) -> str:
    """The package an allocation's innermost Python frame belongs to: ``bocadillo``,
    ``uvicorn``, ``websockets``..., ``stdlib``, or ``<no Python frame>`` for memory that C
    code (uvloop, httptools) allocated outside any Python call."""
    if filename.startswith("<"):
        return "<no Python frame>"
    parts = Path(filename).parts
    if "site-packages" in parts:
        rest = parts[parts.index("site-packages") + 1 :]
        return rest[0].removesuffix(".py") if rest else "site-packages"
    if "bocadillo" in parts:  # the editable install: the repository's own package
        return "bocadillo"
    if filename.startswith(_STDLIB):
        return "stdlib"
    return "other"


class Collections:
    """``gc.callbacks``: the count and total CPU time (this thread's, so time spent
    waiting for a core is not counted) of each generation's collections."""

    def __init__(self) -> None:
        self.count = [0, 0, 0]
        self.seconds = [0.0, 0.0, 0.0]
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            self._started = time.thread_time()
            return
        took = time.thread_time() - self._started
        generation = info["generation"]
        self.count[generation] += 1
        self.seconds[generation] += took


collections = Collections()
gc.callbacks.append(collections)


@app.route("/many/gc")
async def collected(req, res):
    res.json = {
        "count": collections.count,
        "seconds": [round(value, 4) for value in collections.seconds],
    }


@app.route("/broadcast-all", methods=["POST"])
async def broadcast_all(req, res, seq: int = 0):
    """One broadcast to everybody; ``sent``: this worker's connections that took it."""
    res.json = {"sent": app.hub.broadcast(broadcast_text(seq))}


@app.route("/many/counts")
async def counts(req, res):
    """The counts across workers; 503 while Redis cannot answer (the harness asks again)."""
    try:
        members = await app.hub.global_members(ROOM)
        total = await app.hub.global_count()
    except BackendUnavailable as exc:
        res.status_code = 503
        res.json = {"error": str(exc)}
        return
    res.json = {
        "global_count": total,
        "room_members": len(members),
        "local": app.hub.stats()["connections"],
    }


@app.route("/many/trace", methods=["POST"])
async def trace(req, res):
    if not tracemalloc.is_tracing():
        tracemalloc.start(1)
    res.json = {"tracing": True}


@app.route("/many/heap")
async def heap(req, res):
    """Bytes still held of what was allocated since ``POST /many/trace``, by package."""
    if not tracemalloc.is_tracing():
        res.status_code = 409
        res.json = {"error": "POST /many/trace first"}
        return
    gc.collect()
    snapshot = tracemalloc.take_snapshot()
    overhead = tracemalloc.get_tracemalloc_memory()
    tracemalloc.stop()
    by_package: Counter[str] = Counter()
    blocks: Counter[str] = Counter()
    lines: list[tuple[str, int, int]] = []
    ours: list[tuple[str, int, int]] = []
    for stat in snapshot.statistics("lineno"):
        frame = stat.traceback[0]
        package = package_of(frame.filename)
        by_package[package] += stat.size
        blocks[package] += stat.count
        where = f"{package}: {Path(frame.filename).name}:{frame.lineno}"
        lines.append((where, stat.size, stat.count))
        if package == "bocadillo":
            ours.append((where, stat.size, stat.count))
    res.json = {
        "connections": app.hub.stats()["connections"],
        "bytes": dict(by_package.most_common()),
        "blocks": dict(blocks),
        # The biggest allocation sites, and Bocadillo's: (package: file:line, bytes, blocks)
        "top_lines": sorted(lines, key=lambda line: -line[1])[:LINES],
        "bocadillo_lines": sorted(ours, key=lambda line: -line[1])[:LINES],
        "tracemalloc_overhead": overhead,
    }
