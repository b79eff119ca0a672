"""Turn ``results.json`` into ``docs/benchmarks.md``, ``docs/benchmarks.png`` and the
README summary: medians over repetitions, and ratios to raw ASGI from the same run.

``python -m bench.report [results.json]`` regenerates them without measuring again.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
TARGET_ORDER = ["raw", "starlette", "fastapi", "litestar", "bocadillo"]
LABELS = {
    "raw": "raw ASGI",
    "starlette": "Starlette",
    "fastapi": "FastAPI",
    "litestar": "Litestar",
    "bocadillo": "Bocadillo",
    "bocadillo-redis": "Bocadillo, 2 workers + Redis",
    "bocadillo-history": "Bocadillo, room with history",
    "bocadillo-redis-history": "Bocadillo, 2 workers + Redis, room with history",
}
#: ``fanout-redis``: the two setups compared, and their labels there.
REDIS_LABELS = {
    "bocadillo": "1 process, in-memory hub",
    "bocadillo-redis": "2 workers + 1 redis-server",
}
#: Issue #6: two workers on Redis within this factor of one process, at 2,000 clients.
REDIS_GOAL = 1.5
REDIS_GOAL_CLIENTS = 2000
#: Issue #17: publishing to a room with history within this factor of publishing to one
#: without (fan-out to 1,000 clients, p50).
HISTORY_GOAL = 1.2
HISTORY_GOAL_CLIENTS = 1000
#: ``fanout-history``: (label, setup without history, setup with history).
HISTORY_PAIRS = [
    ("1 process, in-memory hub", "bocadillo", "bocadillo-history"),
    ("2 workers + 1 redis-server", "bocadillo-redis", "bocadillo-redis-history"),
]
#: ``resume``: the setups and their labels.
RESUME_LABELS = REDIS_LABELS
#: ``bench/many.py``'s runs, rendered at the end of ``docs/benchmarks.md`` between markers
#: (``many.py --publish`` rewrites only that part).
MANY_RESULTS = ROOT / "bench" / "results" / "many.json"
MANY_START = "<!-- many:start -->"
MANY_END = "<!-- many:end -->"
#: ``bench/rooms.py``'s sustained-rate runs, rendered after them between their own markers
#: (``rooms.py --publish`` rewrites only that part).
ROOMS_RESULTS = ROOT / "bench" / "results" / "rooms.json"
ROOMS_START = "<!-- rooms:start -->"
ROOMS_END = "<!-- rooms:end -->"
README_START = "<!-- bench:start -->"
README_END = "<!-- bench:end -->"
TIMED_OUT = "timed out"


def one_line(scenario: str, result: dict[str, Any]) -> str:
    """A short progress line for one measurement."""
    if "error" in result:
        return f"ERROR {result['error']}"
    cpu = f"load CPU {result.get('load_cpu_pct')}%, server CPU {result.get('server_cpu_pct')}%"
    if scenario == "echo":
        return (
            f"{result['msgs_per_s']:.0f} msg/s, p50 {result['p50_ms']} ms, "
            f"p99 {result['p99_ms']} ms, {cpu}"
        )
    if scenario == "http":
        return f"{result['requests_per_s']:.0f} req/s, p99 {result['p99_ms']} ms, {cpu}"
    if scenario == "resume":
        return (
            f"{result['correct']}/{result['clients']} clients got exactly their "
            f"{result['gap']} missed, p50 {result['p50_ms']} ms per client, all in "
            f"{result['total_ms']} ms, {cpu}"
        )
    if scenario in ("fanout", "fanout-redis", "fanout-history"):
        if "redis_cpu_pct" in result:
            cpu += f", redis CPU {result['redis_cpu_pct']}%"
        if result.get("timeouts"):
            return (
                f"{TIMED_OUT} ({result['timeouts']} of {result['broadcasts']} broadcasts "
                f"> {result['timeout_s']} s; {result['min_reached']}/{result['healthy']} "
                f"reached), {cpu}"
            )
        return f"p50 {result['p50_ms']} ms, p99 {result['p99_ms']} ms, {cpu}"
    return (
        f"{result['kib_per_conn']} KiB/conn "
        f"({result['rss_before_mib']} -> {result['rss_after_mib']} MiB)"
    )


# Aggregation -------------------------------------------------------------------------------


def _median(values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    return statistics.median(present) if present else None


def aggregate(data: dict[str, Any]) -> dict[str, dict[str, dict[str, Any]]]:
    """``{key: {target: {metric: median over repetitions}}}``.

    A fan-out cell where most repetitions timed out is marked ``timed_out``.
    """
    grouped: dict[str, dict[str, list[dict[str, Any]]]] = {}
    for run in data["runs"]:
        grouped.setdefault(run["key"], {}).setdefault(run["target"], []).append(run["result"])
    table: dict[str, dict[str, dict[str, Any]]] = {}
    for key, by_target in grouped.items():
        for target, results in by_target.items():
            good = [result for result in results if "error" not in result]
            cell: dict[str, Any] = {"reps": len(results), "errors": len(results) - len(good)}
            if good:
                metrics = {name for result in good for name in result}
                for name in metrics:
                    values = [result.get(name) for result in good]
                    numbers = [
                        value
                        for value in values
                        if isinstance(value, (int, float)) and not isinstance(value, bool)
                    ]
                    if numbers:
                        cell[name] = _median(list(numbers))
                if key.startswith("fanout"):
                    timed_out = sum(1 for result in good if result.get("timeouts"))
                    cell["timed_out_reps"] = timed_out
                    cell["timed_out"] = timed_out * 2 > len(good)
                    reached = [r["min_reached"] for r in good if r.get("timeouts")]
                    if reached:
                        cell["min_reached"] = min(reached)
                    if cell["timed_out"]:
                        cell["p50_ms"] = cell["p99_ms"] = None
            else:
                cell["error"] = results[-1]["error"]
            table.setdefault(key, {})[target] = cell
    return table


def ratio(value: float | None, base: float | None) -> float | None:
    if value is None or base is None or base == 0:
        return None
    return value / base


# Formatting --------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0) -> str:
    if value is None:
        return "–"
    return f"{value:,.{digits}f}"


def _ratio(value: float | None) -> str:
    return "–" if value is None else f"{value:.2f}×"


def _targets(table: dict[str, dict[str, dict[str, Any]]]) -> list[str]:
    present = {target for cells in table.values() for target in cells}
    return [target for target in TARGET_ORDER if target in present]


def _fanout_sizes(table: dict[str, dict[str, dict[str, Any]]]) -> list[int]:
    sizes = {int(key.split("-")[1]) for key in table if re.fullmatch(r"fanout-\d+", key)}
    return sorted(sizes)


def _redis_sizes(table: dict[str, dict[str, dict[str, Any]]]) -> list[int]:
    sizes = {int(key.split("-")[2]) for key in table if re.fullmatch(r"fanout-redis-\d+", key)}
    return sorted(sizes)


def _history_sizes(table: dict[str, dict[str, dict[str, Any]]]) -> list[int]:
    sizes = {int(key.split("-")[2]) for key in table if re.fullmatch(r"fanout-history-\d+", key)}
    return sorted(sizes)


def redis_ratios(
    data: dict[str, Any],
    key: str,
    metric: str,
    base: str = "bocadillo",
    other: str = "bocadillo-redis",
) -> list[float]:
    """Per repetition: ``other``'s ``metric`` over ``base``'s (by default the two
    workers' over the single process's), measured next to each other (the alternation
    makes each pair adjacent in time)."""
    by_rep: dict[int, dict[str, Any]] = {}
    for run in data["runs"]:
        if run["key"] == key:
            by_rep.setdefault(run["rep"], {})[run["target"]] = run["result"]
    ratios = []
    for pair in by_rep.values():
        single, two = pair.get(base, {}), pair.get(other, {})
        value = ratio(two.get(metric), single.get(metric))
        if value is not None:
            ratios.append(value)
    return ratios


def _stalled_key(table: dict[str, dict[str, dict[str, Any]]], size: int) -> str | None:
    for key in sorted(table):
        if key.startswith(f"fanout-{size}-stalled"):
            return key
    return None


def _fanout_cell(cell: dict[str, Any] | None, healthy: int | None = None) -> tuple[str, str]:
    if cell is None:
        return "–", "–"
    if "error" in cell:
        return "error", "error"
    if cell.get("timed_out"):
        reached = cell.get("min_reached")
        detail = f" ({reached:,}/{healthy:,} reached)" if reached is not None and healthy else ""
        return f"{TIMED_OUT}{detail}", "–"
    return _num(cell.get("p50_ms"), 1), _num(cell.get("p99_ms"), 1)


def goals(table: dict[str, dict[str, dict[str, Any]]]) -> list[tuple[str, str, str, str]]:
    """``(goal, value, target, status)`` rows for the issue's goals, same run."""
    rows: list[tuple[str, str, str, str]] = []

    def get(key: str, target: str, metric: str) -> float | None:
        cell = table.get(key, {}).get(target, {})
        value = cell.get(metric)
        return value if isinstance(value, (int, float)) else None

    def row(goal: str, value: float | None, limit: float, at_least: bool, what: str) -> None:
        if value is None:
            rows.append((goal, "–", what, "not measured"))
            return
        met = value >= limit if at_least else value <= limit
        rows.append((goal, f"{value:.2f}", what, "met" if met else "**missed**"))

    echo = "echo-64" if "echo-64" in table else None
    if echo:
        row(
            "WebSocket echo, 64 clients: messages/s vs raw ASGI",
            ratio(get(echo, "bocadillo", "msgs_per_s"), get(echo, "raw", "msgs_per_s")),
            0.95,
            True,
            "≥ 0.95",
        )
    if echo:
        row(
            "… the same, by server CPU per message (raw ASGI's ÷ Bocadillo's)",
            ratio(
                get(echo, "raw", "server_us_per_msg"), get(echo, "bocadillo", "server_us_per_msg")
            ),
            0.95,
            True,
            "≥ 0.95",
        )
    if "http" in table:
        row(
            "HTTP JSON: requests/s vs raw ASGI",
            ratio(get("http", "bocadillo", "requests_per_s"), get("http", "raw", "requests_per_s")),
            0.75,
            True,
            "≥ 0.75",
        )
        row(
            "… the same, by server CPU per request (raw ASGI's ÷ Bocadillo's)",
            ratio(
                get("http", "raw", "server_us_per_req"),
                get("http", "bocadillo", "server_us_per_req"),
            ),
            0.75,
            True,
            "≥ 0.75",
        )
    sizes = _fanout_sizes(table)
    if sizes:
        size = sizes[-1]
        healthy_key = f"fanout-{size}"
        stalled_key = _stalled_key(table, size)
        raw_healthy = get(healthy_key, "raw", "p50_ms")
        boc_healthy = get(healthy_key, "bocadillo", "p50_ms")
        row(
            f"Broadcast to {size:,} healthy clients: p50 vs raw ASGI",
            ratio(boc_healthy, raw_healthy),
            1.0,
            False,
            "≤ 1.0",
        )
        if stalled_key:
            raw_stalled = get(stalled_key, "raw", "p50_ms")
            base = raw_stalled if raw_stalled is not None else raw_healthy
            which = "raw ASGI stalled" if raw_stalled is not None else "raw ASGI healthy"
            row(
                f"Broadcast, 10% stalled: p50 vs {which}",
                ratio(get(stalled_key, "bocadillo", "p50_ms"), base),
                1.5,
                False,
                "≤ 1.5",
            )
        row(
            f"Hub: broadcast to {size:,} healthy, p50 vs plain Starlette loop",
            ratio(boc_healthy, get(healthy_key, "starlette", "p50_ms")),
            1.1,
            False,
            "≤ 1.1",
        )
        if stalled_key:
            row(
                "Hub: 10% stalled, p50 vs Bocadillo's own healthy p50",
                ratio(get(stalled_key, "bocadillo", "p50_ms"), boc_healthy),
                1.5,
                False,
                "≤ 1.5",
            )
    redis_key = f"fanout-redis-{REDIS_GOAL_CLIENTS}"
    if redis_key in table:
        for metric in ("p50_ms", "p99_ms"):
            row(
                f"Two workers on Redis: broadcast to {REDIS_GOAL_CLIENTS:,}, "
                f"{metric[:3]} vs one process",
                ratio(
                    get(redis_key, "bocadillo-redis", metric), get(redis_key, "bocadillo", metric)
                ),
                REDIS_GOAL,
                False,
                f"≤ {REDIS_GOAL:g}",
            )
    history_key = f"fanout-history-{HISTORY_GOAL_CLIENTS}"
    if history_key in table:
        for label, plain, kept in HISTORY_PAIRS:
            if plain not in table[history_key]:
                continue
            row(
                f"History: publish to {HISTORY_GOAL_CLIENTS:,} in a room with history, "
                f"p50 vs without ({label})",
                ratio(get(history_key, kept, "p50_ms"), get(history_key, plain, "p50_ms")),
                HISTORY_GOAL,
                False,
                f"≤ {HISTORY_GOAL:g}",
            )
    if "memory" in table:
        row(
            "Idle memory per connection vs Starlette",
            ratio(
                get("memory", "bocadillo", "kib_per_conn"),
                get("memory", "starlette", "kib_per_conn"),
            ),
            1.0,
            False,
            "≤ 1.0",
        )
    return rows


def load_peak(data: dict[str, Any]) -> tuple[float, str] | None:
    """The highest CPU use of the load generator in any measurement, and where."""
    best: tuple[float, str] | None = None
    for run in data["runs"]:
        value = run["result"].get("load_cpu_pct")
        if isinstance(value, (int, float)) and (best is None or value > best[0]):
            best = (value, f"{run['key']}, {LABELS.get(run['target'], run['target'])}")
    return best


def notes(data: dict[str, Any]) -> list[str]:
    """Anomalies worth a line: failed measurements, echo errors, unsettled fills."""
    found = []
    for run in data["runs"]:
        result, where = run["result"], f"{run['key']} {run['target']} rep {run['rep'] + 1}"
        if "error" in result:
            found.append(f"{where} failed: {result['error']}")
        elif result.get("errors"):
            found.append(f"{where}: {result['errors']} error(s)")
        if result.get("fill_settled") is False:
            found.append(f"{where}: the stalled clients' buffers were not full in time")
        if result.get("incorrect"):
            found.append(f"{where}: {result['incorrect']} client(s) did not get exactly their gap")
        if result.get("timed_out") is True:
            found.append(f"{where}: the resume was not over in {result['timeout_s']} s")
        if result.get("bad_frames"):
            found.append(f"{where}: {result['bad_frames']} unexpected frame(s)")
        failed = sum(result.get("redis", {}).get("publish_failed", []))
        if failed:
            found.append(f"{where}: {failed} frame(s) not published on Redis")
    return found


def render_markdown(data: dict[str, Any], table: dict[str, dict[str, dict[str, Any]]]) -> str:
    meta = data["meta"]
    settings = meta["settings"]
    host = meta["machine"]
    targets = _targets(table)
    out: list[str] = []
    add = out.append
    add("# Benchmarks")
    add("")
    add(
        "Generated by `make bench` (`bench/run.py`); do not edit by hand. How to run it and "
        "what each scenario means: `bench/README.md` in the repository."
    )
    add("")
    add(
        f"- **Date:** {meta['date']}; {meta['mode']} mode, {meta['reps']} repetition(s) per "
        f"target, run took {meta['duration_s'] / 60:.1f} min."
    )
    add(
        f"- **Machine:** {host['nproc']} cores ({host['cpu']}), {host['memory_gib']} GiB, "
        f"Linux {host['kernel']}, Python {host['python']}. Server on core "
        f"{settings['server_core']}, load generator on core {settings['load_core']}."
    )
    add(
        f"- **Load average** before/after: {', '.join(map(str, meta['loadavg_before']))} / "
        f"{', '.join(map(str, meta['loadavg_after']))} (anything else running on the machine "
        "shows here; ratios to raw ASGI are more stable than absolute numbers)."
    )
    for update in meta.get("updates", []):
        add(
            f"- **Updated** {update['date']}: {', '.join(update['keys'])} from a later run "
            f"({update['reps']} repetition(s), {update['duration_s'] / 60:.1f} min, load "
            f"average before/after {', '.join(map(str, update['loadavg_before']))} / "
            f"{', '.join(map(str, update['loadavg_after']))}, commit "
            f"{update.get('revision', 'unknown')}); everything else is from the date above."
        )
    versions = ", ".join(f"{name} {version}" for name, version in meta["versions"].items())
    add(f"- **Versions:** {versions}.")
    if "revision" in meta:
        add(f"- **Commit:** {meta['revision']}.")
    add(f"- **Server:** {settings['server']}.")
    add("")
    add(
        "Cells are medians over the repetitions; ratios are to raw ASGI in the same run. "
        "*Server CPU per message/request/broadcast* is the server's CPU time divided by the "
        "work done: when other processes compete for the server's core, throughput drops "
        "while this cost moves less (cache pressure still moves it), so it is the better "
        "comparison on a busy machine."
    )
    add("")
    peak = load_peak(data)
    if peak is not None:
        value, where = peak
        add(
            f"The load generator's CPU use peaked at {value:.0f}% of its core ({where}), so "
            + (
                "it was not the bottleneck."
                if value < 90
                else "**it may have been the bottleneck there**."
            )
        )
        add("")
    for note in notes(data):
        add(f"- Note: {note}")
    if notes(data):
        add("")
    add("![Benchmark results](benchmarks.png)")
    add("")
    add("## Goals")
    add("")
    add("| goal | Bocadillo | target | status |")
    add("| --- | ---: | --- | --- |")
    for goal, value, limit, status in goals(table):
        add(f"| {goal} | {value} | {limit} | {status} |")
    add("")

    echo_keys = sorted(
        (key for key in table if key.startswith("echo-")), key=lambda k: int(k.split("-")[1])
    )
    if echo_keys:
        add("## WebSocket echo")
        add("")
        add(
            "Clients doing sequential round trips of a 100-byte JSON text frame for "
            f"{settings['echo_duration_s']:g} s: messages/s (higher is better), round-trip "
            "latency in ms."
        )
        add("")
        for key in echo_keys:
            clients = int(key.split("-")[1])
            add(f"**{clients} client{'s' if clients > 1 else ''}**")
            add("")
            add(
                "| target | messages/s | vs raw | p50 ms | p99 ms | load CPU % | server CPU % "
                "| server CPU µs/msg | vs raw |"
            )
            add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
            base = table[key].get("raw", {}).get("msgs_per_s")
            base_cost = table[key].get("raw", {}).get("server_us_per_msg")
            for target in targets:
                cell = table[key].get(target)
                if cell is None:
                    continue
                if "error" in cell:
                    add(f"| {LABELS[target]} | error: {cell['error']} | | | | | | | |")
                    continue
                add(
                    f"| {LABELS[target]} | {_num(cell.get('msgs_per_s'))} | "
                    f"{_ratio(ratio(cell.get('msgs_per_s'), base))} | "
                    f"{_num(cell.get('p50_ms'), 2)} | {_num(cell.get('p99_ms'), 2)} | "
                    f"{_num(cell.get('load_cpu_pct'))} | {_num(cell.get('server_cpu_pct'))} | "
                    f"{_num(cell.get('server_us_per_msg'), 1)} | "
                    f"{_ratio(ratio(cell.get('server_us_per_msg'), base_cost))} |"
                )
            add("")

    if "http" in table:
        add("## HTTP JSON")
        add("")
        tool = next((c.get("tool") for c in table["http"].values() if c.get("tool")), "wrk")
        add(
            f'`GET /json` returning `{{"message": "Hello, world!"}}`, 64 keep-alive '
            f"connections, {settings['http_duration_s']:g} s, load from {tool or 'wrk'} "
            "(one thread)."
        )
        add("")
        add(
            "| target | requests/s | vs raw | p50 ms | p99 ms | load CPU % | server CPU % "
            "| server CPU µs/request | vs raw |"
        )
        add("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
        base = table["http"].get("raw", {}).get("requests_per_s")
        base_cost = table["http"].get("raw", {}).get("server_us_per_req")
        for target in targets:
            cell = table["http"].get(target)
            if cell is None:
                continue
            if "error" in cell:
                add(f"| {LABELS[target]} | error: {cell['error']} | | | | | | | |")
                continue
            add(
                f"| {LABELS[target]} | {_num(cell.get('requests_per_s'))} | "
                f"{_ratio(ratio(cell.get('requests_per_s'), base))} | "
                f"{_num(cell.get('p50_ms'), 2)} | {_num(cell.get('p99_ms'), 2)} | "
                f"{_num(cell.get('load_cpu_pct'))} | {_num(cell.get('server_cpu_pct'))} | "
                f"{_num(cell.get('server_us_per_req'), 1)} | "
                f"{_ratio(ratio(cell.get('server_us_per_req'), base_cost))} |"
            )
        add("")

    sizes = _fanout_sizes(table)
    if sizes:
        add("## Broadcast fan-out")
        add("")
        add(
            "Time from the `POST /broadcast` trigger to the last healthy client receiving the "
            f"~100-byte frame, over {settings['broadcasts']} broadcasts (ms, lower is better). "
            "Stalled: 10% of the clients are connected but never read, and their buffers are "
            "full before the first measured broadcast. A broadcast that has not reached every "
            f"healthy client after {settings['broadcast_timeout_s']:g} s is reported as "
            f"*{TIMED_OUT}* (with how many healthy clients it reached): a plain loop blocks on "
            "the first stalled client, until the connection dies. Stalled ratios are to raw "
            "ASGI's healthy p50 when raw ASGI timed out."
        )
        add("")
        for size in sizes:
            healthy_key = f"fanout-{size}"
            stalled_key = _stalled_key(table, size)
            add(f"**{size:,} clients**")
            add("")
            header = "| target | p50 ms | p99 ms | vs raw | server CPU ms/broadcast | load CPU % |"
            rule = "| --- | ---: | ---: | ---: | ---: | ---: |"
            if stalled_key:
                header += " 10% stalled: p50 ms | p99 ms | vs raw |"
                rule += " ---: | ---: | ---: |"
            add(header)
            add(rule)
            raw_healthy = table[healthy_key].get("raw", {}).get("p50_ms")
            raw_stalled = table[stalled_key].get("raw", {}).get("p50_ms") if stalled_key else None
            for target in targets:
                cell = table[healthy_key].get(target)
                p50, p99 = _fanout_cell(cell)
                line = (
                    f"| {LABELS[target]} | {p50} | {p99} | "
                    f"{_ratio(ratio((cell or {}).get('p50_ms'), raw_healthy))} | "
                    f"{_num((cell or {}).get('server_ms_per_broadcast'), 1)} | "
                    f"{_num((cell or {}).get('load_cpu_pct'))} |"
                )
                if stalled_key:
                    stalled = table[stalled_key].get(target)
                    healthy = (stalled or {}).get("healthy")
                    s50, s99 = _fanout_cell(stalled, int(healthy) if healthy else None)
                    base = raw_stalled if raw_stalled is not None else raw_healthy
                    line += (
                        f" {s50} | {s99} | {_ratio(ratio((stalled or {}).get('p50_ms'), base))} |"
                    )
                add(line)
            add("")

    redis_sizes = _redis_sizes(table)
    if redis_sizes:
        out += render_redis(data, table, redis_sizes)
    history_sizes = _history_sizes(table)
    if history_sizes:
        out += render_history(data, table, history_sizes)
    resume_keys = sorted(key for key in table if re.fullmatch(r"resume-\d+", key))
    if resume_keys:
        out += render_resume(data, table, resume_keys)

    if "memory" in table:
        add("## Memory per idle connection")
        add("")
        add(
            f"Server RSS growth with {settings['memory_clients']:,} idle `/echo` connections "
            "(after one round trip each), divided by the number of connections."
        )
        add("")
        add("| target | KiB per connection | vs raw | vs Starlette | RSS before → after MiB |")
        add("| --- | ---: | ---: | ---: | --- |")
        base = table["memory"].get("raw", {}).get("kib_per_conn")
        starlette = table["memory"].get("starlette", {}).get("kib_per_conn")
        for target in targets:
            cell = table["memory"].get(target)
            if cell is None:
                continue
            if "error" in cell:
                add(f"| {LABELS[target]} | error: {cell['error']} | | | |")
                continue
            add(
                f"| {LABELS[target]} | {_num(cell.get('kib_per_conn'), 1)} | "
                f"{_ratio(ratio(cell.get('kib_per_conn'), base))} | "
                f"{_ratio(ratio(cell.get('kib_per_conn'), starlette))} | "
                f"{_num(cell.get('rss_before_mib'), 1)} → {_num(cell.get('rss_after_mib'), 1)} |"
            )
        add("")
    if MANY_RESULTS.exists():
        out += render_many(json.loads(MANY_RESULTS.read_text()))
    if ROOMS_RESULTS.exists():
        out += ["", *render_rooms(json.loads(ROOMS_RESULTS.read_text()))]
    return "\n".join(out)


#: Issue #19: 4 workers deliver at least this many times what 1 worker delivers.
ROOMS_GOAL = 1.8

_PIN_TEXT = {
    "spread": "worker *i* pinned to core *i* mod 2; redis-server and the load generator "
    "free to run on either core (the kernel places them)",
    "split": "worker *i* pinned to core *i* mod 2; redis-server and the load generator on core 1",
    "server-core": "every worker on core 0; redis-server and the load generator on core 1",
}


def render_rooms(data: dict[str, Any]) -> list[str]:
    """The section of ``bench/rooms.py``'s sustained-rate runs (issue #19)."""
    out = [ROOMS_START, "## Per-room fan-out on 1, 2 and 4 workers", ""]
    add = out.append
    add(
        "The fan-out of many small rooms, from `bench/rooms.py` (run separately from `make "
        "bench`: `bench/README.md` says how). W workers (`bench.serve` processes of the "
        "bench's rooms app) with their hub on one `redis-server`; 1,000 rooms of 10 "
        "clients (10,000 WebSockets from one load generator process, named for each "
        "setup below), all of a room's clients on "
        "one worker (room *r* on worker *r* mod W), so a worker has members in 1,000/W "
        "rooms. One client per room sends a `say` at a fixed rate; its worker broadcasts it "
        "to the room (10 deliveries) and publishes it on the room's Redis channel. "
        "Latency: from the sender's clock to each member's. Each configuration is stepped "
        "up in per-room rate (2 s to settle, then a measured window) until a step delivers "
        "less than the share of what it offered or its p99 passes the limit given below: "
        "the *sustained* rate is the last step that passed. Every part's CPU is read over "
        "the window (`/proc/PID/task/*/schedstat`, `getrusage`), and *others* is what the "
        "rest of the machine used (`/proc/stat` busy time minus those): the machine is "
        "shared with other jobs."
    )
    add("")
    groups: dict[tuple[str, float, str], list[dict[str, Any]]] = {}
    for run in data["runs"]:
        key = (run["pin"], run.get("quota") or 0.0, run.get("broker", "redis"))
        groups.setdefault(key, []).append(run)
    order = sorted(groups.items(), key=lambda item: (item[0][:2], item[0][2] != "redis"))
    for (pin, quota, broker), runs in order:
        out += _rooms_group(pin, quota, broker, runs)
    for (pin, quota, broker), runs in groups.items():
        single = groups.get((pin, quota, "redis"))
        if broker != "cluster" or not single:
            continue
        pairs = []
        for workers in sorted({run["workers"] for run in runs}):
            on_cluster = _rooms_median(runs, workers)
            on_single = _rooms_median(single, workers)
            if on_cluster is not None and on_single:
                label = "1 worker" if workers == 1 else f"{workers} workers"
                pairs.append(f"{label} {on_cluster / on_single:.2f}×")
        if pairs:
            worst = min(float(pair.split()[-1].rstrip("×")) for pair in pairs)
            status = "met" if worst >= CLUSTER_GOAL else "**missed**"
            add(
                f"Goal: on a Redis Cluster of 3 masters, at least {CLUSTER_GOAL}× the sustained "
                f"delivery on one redis-server ({_PIN_NAME.get(pin, pin)}"
                + (f", quota {quota:g}" if quota else "")
                + f"): {', '.join(pairs)}; {status}."
            )
            add("")
    add(ROOMS_END)
    return out


#: Issue #19: a Redis Cluster delivers at least this share of what one redis-server does.
CLUSTER_GOAL = 0.9
_PIN_NAME = {"spread": "workers spread", "split": "split", "server-core": "workers on core 0"}


def _rooms_median(runs: list[dict[str, Any]], workers: int) -> float | None:
    rates = sorted(
        run["sustained"]["delivered_per_s"] if run.get("sustained") else 0
        for run in runs
        if run["workers"] == workers
    )
    return rates[(len(rates) - 1) // 2] if rates else None


def _rooms_generator(runs: list[dict[str, Any]]) -> str:
    """Which load generator measured ``runs`` (before there was a choice: picows)."""
    names = []
    for run in runs:
        if run.get("generator", "picows") == "c":
            name = "load generator in C (`bench/loadgen/`"
            name += f", reads {run['batch_us']} µs apart)" if run.get("batch_us") else ")"
        else:
            name = "load generator in Python (picows)"
        if name not in names:
            names.append(name)
    return " and ".join(names)


def _rooms_group(pin: str, quota: float, broker: str, runs: list[dict[str, Any]]) -> list[str]:
    out: list[str] = []
    add = out.append
    first = runs[0]
    limit = f"p99 over {first['p99_limit_ms']:g} ms or under {first['min_delivery']:.0%} delivered"
    held = (
        f"; each worker held to {quota:.0%} of a core by a CPU quota (a cgroup), "
        "as if each had a core of that size"
        if quota
        else ""
    )
    dates = sorted({run["date"] for run in runs})
    loads = [run["loadavg_before"][0] for run in runs] + [run["loadavg_after"][0] for run in runs]
    where = (
        "On a Redis Cluster of 3 masters (no replicas, `redis+cluster://`); "
        if broker == "cluster"
        else "On one redis-server; "
    )
    add(
        f"**{where}{_PIN_TEXT.get(pin, pin)}{held}; {_rooms_generator(runs)}.** "
        f"A step fails at {limit}. "
        f"{len(runs)} runs, {dates[0]} to {dates[-1]}, commit {first['commit']}, load "
        f"average {min(loads):g} to {max(loads):g}. Delivered: the median over the "
        "repetitions of each worker count (of two, the lower), each run's in brackets; the "
        "other columns are that run's sustained step:"
    )
    add("")
    add(
        "| workers | sustained per room /s | delivered /s (each run) | vs 1 worker | p50 ms "
        "| p99 ms | from Redis per worker KB/s | frames from Redis per worker, share of the "
        "publications | CPU %: workers, redis, load gen, others | CPU µs per delivery: "
        "workers, load gen |"
    )
    add("| ---: | ---: | --- | ---: | ---: | ---: | --- | --- | --- | --- |")
    by_workers: dict[int, list[dict[str, Any]]] = {}
    for run in runs:
        by_workers.setdefault(run["workers"], []).append(run)
    base: float | None = None
    for workers in sorted(by_workers):
        tried = by_workers[workers]
        rates = [
            run["sustained"]["delivered_per_s"] if run.get("sustained") else 0 for run in tried
        ]
        ordered = sorted(zip(rates, range(len(tried)), strict=True))
        rate, index = ordered[(len(ordered) - 1) // 2]
        step = tried[index].get("sustained")
        if workers == 1:
            base = rate
        each = ", ".join(f"{value:,}" for value in rates)
        if not step:
            add(f"| {workers} | none | {each} | | | | | | | |")
            continue
        per = step["per_worker"]
        publications = step["offered_per_s"] / first["clients_per_room"]
        shares = ", ".join(f"{w['frames_from_redis_per_s'] / publications:.2f}" for w in per)
        cost = step["cpu_us_per_delivery"]
        add(
            f"| {workers} | {step['rate']:g} | {rate:,} ({each}) "
            f"| {_ratio(ratio(rate, base))} | {_num(step['p50_ms'], 1)} "
            f"| {_num(step['p99_ms'], 1)} "
            f"| {', '.join(str(round(w['bytes_from_redis_per_s'] / 1000)) for w in per)} "
            f"| {shares} "
            f"| {step['workers_cpu_pct']:g}, {step['redis_cpu_pct']:g}, "
            f"{step['load_cpu_pct']:g}, {step['others_cpu_pct']:g} "
            f"| {cost['workers']:g}, {cost['load']:g} |"
        )
    add("")
    steps = [run["sustained"] for run in runs if run.get("sustained")]
    if steps:
        worker_us = _median([step["cpu_us_per_delivery"]["workers"] for step in steps])
        load_us = _median([step["cpu_us_per_delivery"]["load"] for step in steps])
        redis_us = _median([step["cpu_us_per_delivery"]["redis"] for step in steps])
        others = _median([step["others_cpu_pct"] for step in steps])
        assert worker_us and load_us and redis_us is not None and others is not None
        whole = worker_us + load_us + redis_us
        one = (quota or 1.0) * 1e6 / worker_us
        cores = (
            2.0 if not quota else min(2.0, 4 * quota + 4 * quota * (load_us + redis_us) / worker_us)
        )
        ceiling = min(cores * 1e6 / whole, 4 * one)
        add(
            f"**What limits it.** Over the sustained steps, a delivery cost the workers "
            f"{worker_us:.0f} µs of CPU (median), the load generator {load_us:.0f} µs and "
            f"redis-server {redis_us:.1f} µs: {whole:.0f} µs in all. One worker can then "
            f"deliver at most {one:,.0f}/s ({'its quota' if quota else 'one core'} ÷ its "
            f"cost), and four at most {ceiling:,.0f}/s "
            + (
                f"(four quotas, if the load generator and redis-server get the "
                f"{4 * quota * (load_us + redis_us) / worker_us:.2f} of a core they need "
                "beside them)"
                if quota
                else "(both cores ÷ the whole cost, since the load generator and "
                "redis-server share them)"
            )
            + f": {ceiling / one:.2f}× at best"
            + ("" if quota else " on this machine with nothing else running")
            + ". "
            f"Other jobs used a median {others:.0f}% of a core during those steps."
        )
        add("")
    four = [r for w, rs in by_workers.items() if w == 4 for r in rs]
    if base and four:
        values = sorted(
            r["sustained"]["delivered_per_s"] if r.get("sustained") else 0 for r in four
        )
        got = values[(len(values) - 1) // 2] / base
        status = "met" if got >= ROOMS_GOAL else "**missed**"
        add(
            f"Goal: 4 workers deliver at least {ROOMS_GOAL}× what 1 worker does: "
            f"{got:.2f}×, {status}."
        )
        add("")
    return out


#: Issue #19: server RSS per idle connection, uvicorn included, under 20 KB (compared in
#: KiB, as every memory figure here).
MANY_GOAL_KIB = 20


def render_many(data: dict[str, Any]) -> list[str]:
    """The section of ``bench/many.py``'s runs (issue #19), between the markers."""
    runs = sorted(data["runs"], key=lambda run: (run["workers"], run["connections"]))
    out = [MANY_START, "## 100,000 idle connections", ""]
    add = out.append
    add(
        "From `bench/many.py` (run separately from `make bench`: "
        "`bench/README.md` says how). W workers, each a `bocadillo run` of the bench app "
        "on its own loopback port, with their hub on one `redis-server`; load generators "
        "(picows, each a process under the open-file limit) open idle WebSockets to "
        "`/fanout` (each joins the room `fanout`), spread evenly over the workers and "
        "over the source addresses 127.0.0.2 to 127.0.0.254. Once all are connected, "
        "the counts are read until exact: each worker's registry, the connections across "
        "workers (`hub.global_count()`) and the members of the room (`hub.global_members`), "
        "with nothing left queued for Redis. Then one `hub.broadcast` to everybody, "
        "triggered on the first worker (which delivers to its own clients and publishes "
        "once through Redis for the others); every client timestamps the frame on the "
        "machine's monotonic clock. Finally every client closes, and the counts must "
        "fall back to 0."
    )
    add("")
    add(
        "*RSS per connection* is each worker's resident memory growth from before the "
        "first connection to after the last, divided by its connections, averaged over "
        "the workers that were not traced; it includes uvicorn, the WebSocket protocol, "
        "asyncio and Bocadillo, not the kernel's socket buffers. *Heap by package*: the "
        "first worker runs `tracemalloc` during a first wave of clients (`--heap-sample` "
        "per worker), and each block still held is charged to the package of the Python "
        "code that allocated it (its innermost frame); that worker's RSS is then left out "
        "of the average. The machine is shared: the load average is given with each run. "
        "The limits to raise for more connections per process, and how: "
        "[Deployment](deployment.md#many-connections)."
    )
    add("")
    add(
        "| workers | clients connected | connecting | counts (registries, global, room) "
        "| RSS KiB per connection | heap B per connection: all, Bocadillo "
        "| broadcast ms: first, p50, p99, last | load average before / after | date |"
    )
    add("| ---: | ---: | --- | --- | ---: | --- | --- | --- | --- |")
    for run in runs:
        head = f"| {run['workers']} | "
        if "error" in run:
            add(head + f"error: {run['error']} | | | | | | | {run['date']} |")
            continue
        connect, counts, memory = run["connect"], run["counts"], run["memory"]
        heap, broadcast = run.get("heap") or {}, run["broadcast"]
        exact = "exact" if counts.get("exact_after_s") is not None else "**not exact**"
        closed = run.get("closed", {})
        if "error" in closed:
            empty = "closing not checked (budget spent)"
        elif closed.get("empty_after_s") is not None:
            empty = "0 after closing"
        else:
            empty = "**not 0** after closing"
        times = ", ".join(
            _num(broadcast.get(key), 0) for key in ("first_ms", "p50_ms", "p99_ms", "last_ms")
        )
        add(
            head + f"{connect['connected']:,} of {run['connections']:,} "
            f"| {connect['seconds']:.0f} s ({connect['per_s']:,}/s) "
            f"| {counts['registry_total']:,}, {counts['global_count']:,}, "
            f"{counts['room_members']:,}: {exact}; {empty} "
            f"| {_num(memory.get('kib_per_conn'), 1)} "
            f"| {_num(heap.get('total_per_conn'))}, {_num(heap.get('bocadillo_per_conn'))} "
            f"| {times} ({broadcast['received']:,} received) "
            f"| {run['loadavg_before'][0]} / {run['loadavg_after'][0]} | {run['date']} |"
        )
    add("")
    for run in runs:
        if run.get("note"):
            add(f"*{run['workers']} workers, {run['date']}:* {run['note']}")
            add("")
    latest = {}
    for run in runs:  # the latest complete run of each configuration
        if "error" not in run and run["broadcast"].get("workers"):
            latest[(run["workers"], run["connections"])] = run
    if latest:
        add(
            "**The broadcast, worker by worker** (the latest run of each setup): the first "
            "worker is the one triggered; the time is from the trigger to that worker's "
            "clients. *GC* is the worker's garbage collections while connecting and "
            "during the broadcast (generation 2 ones walk every object the worker holds): "
            "how many of each generation, and their CPU time in ms (*wall*: timed on the "
            "wall clock, waiting for a core included, in the first runs)."
        )
        add("")
        add(
            "| setup | worker | clients | first ms | p50 ms | last ms "
            "| GC while connecting: gen 0/1/2, ms | GC during the broadcast: gen 0/1/2, ms |"
        )
        add("| --- | ---: | ---: | ---: | ---: | ---: | --- | --- |")
        for (workers, connections), run in latest.items():
            gcs = run["connect"].get("gc") or [None] * workers
            wall = run.get("gc_clock") != "cpu"
            for index, worker in enumerate(run["broadcast"]["workers"]):
                add(
                    f"| {workers} workers, {connections:,} | {index + 1} "
                    f"| {run['counts']['registries'][index]:,} "
                    f"| {_num(worker.get('first_ms'))} | {_num(worker.get('p50_ms'))} "
                    f"| {_num(worker.get('last_ms'))} | {_gc(gcs[index], wall)} "
                    f"| {_gc(worker.get('gc'), wall)} |"
                )
        add("")
        for run in latest.values():
            out += _many_reading(run)
    traced = [run for run in runs if run.get("heap")]
    if traced:
        latest = traced[-1]
        heap = latest["heap"]
        add(
            f"**Heap by package** ({latest['workers']} workers, {latest['connections']:,} "
            f"clients; the traced worker held {heap['connections']:,}), bytes per "
            "connection:"
        )
        add("")
        add("| package | bytes per connection |")
        add("| --- | ---: |")
        for package, size in heap["bytes_per_conn"].items():
            if size >= 10:
                add(f"| {package} | {size:,} |")
        add(f"| all | {heap['total_per_conn']:,} |")
        add("")
        add("Bocadillo's biggest allocation sites, bytes (and blocks) per connection:")
        add("")
        add("| where | bytes | blocks |")
        add("| --- | ---: | ---: |")
        for where, size, count in heap["bocadillo_lines"][:8]:
            add(f"| `{where.removeprefix('bocadillo: ')}` | {size:,} | {count:g} |")
        add("")
    hard = min((run["nofile_hard"] for run in runs), default=None)
    if hard is not None:
        add(
            f"**What limited this machine.** A process may open at most {hard:,} files here "
            "(the hard `RLIMIT_NOFILE`), and not even root can raise it (`ulimit -n 250000`: "
            "*Operation not permitted*, although `fs.nr_open` is 1,048,576); `bocadillo "
            f"run` keeps 64 of them free. So two workers hold at most about 2 × {hard - 100:,} "
            "connections, the two-worker runs stop below that, and 100,000 connections take "
            f"six workers of 16,667 (the load generators, each under {hard:,} clients too). "
            "On a host where the limit can be raised, `ulimit -n 65536` (or "
            "`LimitNOFILE=65536`) and `--workers 2 --connections 100000` is the issue's "
            "setup; the other limits to raise, and how, are in "
            "[Deployment](deployment.md#many-connections). The load generators spread their "
            "source addresses over 127.0.0.2–254, so no address needs more than about 400 "
            "ports."
        )
        add("")
    measured = [run["memory"]["kib_per_conn"] for run in runs if run.get("memory")]
    if measured:
        worst = max(value for value in measured if value is not None)
        status = "met" if worst < MANY_GOAL_KIB else "**missed**"
        add(
            f"Goal: under {MANY_GOAL_KIB} KiB of server RSS per idle connection, uvicorn "
            f"included: {worst:.1f} KiB at worst, {status}."
        )
        add("")
    add(MANY_END)
    return out


def _many_reading(run: dict[str, Any]) -> list[str]:
    """What the latest run of a setup shows, in sentences computed from it."""
    out: list[str] = []
    setup = f"{run['workers']} workers, {run['connections']:,}"
    gcs = run["connect"].get("gc")
    if gcs:
        full = [gc["count"][2] for gc in gcs]
        gc_s = sum(sum(gc["ms"]) for gc in gcs) / 1e3
        full_s = sum(gc["ms"][2] for gc in gcs) / 1e3
        fulls = f"{min(full)}" if min(full) == max(full) else f"{min(full)} to {max(full)}"
        cpu = run["connect"]["workers_cpu_s"]
        out.append(
            f"*{setup}:* while connecting, the workers spent {gc_s:.1f} s in garbage "
            f"collection, {full_s:.1f} s of it in full collections ({fulls} per worker), "
            f"out of {cpu:.1f} s of CPU in all"
            + (
                f" ({_pct(gc_s, cpu)})."
                if run.get("gc_clock") == "cpu"
                else " (this run timed the collections on the wall clock, waiting for a "
                "core included, so the share is an upper bound)."
            )
            + " A full collection walks every object the worker holds, and one comes each "
            "time the number of objects has grown by a quarter."
        )
    kernel, memory = run.get("kernel") or {}, run["memory"]
    if "before" in kernel and "connected" in kernel:
        before, after = kernel["before"], kernel["connected"]
        sockets = after["tcp_inuse"] - before["tcp_inuse"]
        slab = after["slab_kib"] - before["slab_kib"]
        clients = run["counts"]["registry_total"]
        redis = (memory["redis_rss_mib"] - memory["redis_rss_before_mib"]) * 2**20
        if sockets > 0 and clients:
            out.append(
                f"*{setup}:* the kernel's slab memory grew by {slab / 1024:,.0f} MiB for "
                f"{sockets:,} more TCP sockets (both ends of each connection are on this "
                f"machine), about {slab / sockets:.1f} KiB per socket (a machine-wide "
                "figure: other processes move it too); the TCP buffer memory "
                f"(`net.ipv4.tcp_mem`) went from {before['tcp_mem_pages']:,} to "
                f"{after['tcp_mem_pages']:,} pages (other processes' traffic: an idle socket "
                "holds no buffered data). redis-server "
                f"grew by {redis / 2**20:,.0f} MiB, {redis / clients:,.0f} bytes per "
                "connection (presence: the connection and its room)."
            )
    per_worker = run["broadcast"].get("workers") or []
    if len(per_worker) > 1 and per_worker[0].get("last_ms") is not None:
        others = [w["first_ms"] for w in per_worker[1:] if w.get("first_ms") is not None]
        if others and min(others) >= per_worker[0]["last_ms"]:
            out.append(
                f"*{setup}:* the other workers' first clients got the broadcast at "
                f"{min(others):,.0f} ms or later, after the triggered worker's last one "
                f"({per_worker[0]['last_ms']:,.0f} ms): the hub hands the frame to Redis "
                "from its writer task, which runs only once `broadcast()` has delivered to "
                "the local connections and the handler has returned to the event loop."
            )
    return [line for sentence in out for line in (sentence, "")]


def _pct(part: float, whole: float) -> str:
    return f"{100 * part / whole:.0f}%" if whole else "–"


def _gc(delta: dict[str, Any] | None, wall: bool = False) -> str:
    """``3/1/0, 12 ms``: collections of each generation and their total time."""
    if not delta:
        return "–"
    counts = "/".join(str(count) for count in delta["count"])
    return f"{counts}, {sum(delta['ms']):,.0f} ms" + (" *wall*" if wall else "")


def render_redis(
    data: dict[str, Any], table: dict[str, dict[str, dict[str, Any]]], sizes: list[int]
) -> list[str]:
    """The ``fanout-redis`` section: one process against two workers on Redis."""
    settings = data["meta"]["settings"]
    out = ["## Broadcast fan-out on two workers and Redis", ""]
    add = out.append
    add(
        "The same fan-out (healthy clients only, no stalled ones), on one Bocadillo "
        "process with its in-memory hub, and on two Bocadillo workers of the same app whose "
        "hub is on one `redis-server` (`BOCADILLO_HUB_URL`, the same `BOCADILLO_HUB_PREFIX`). "
        "The clients are split half and half between the workers; the `POST /broadcast` "
        "triggers alternate between them. The worker that is triggered delivers to its own "
        "clients and publishes the frame once on Redis; the other receives it from Redis and "
        "delivers to its clients. The time is from the trigger to the last client, on either "
        f"worker, over {settings['broadcasts']} broadcasts. "
        f"**Pinning:** both workers on core {settings['server_core']} (together they get the "
        "single process's CPU budget, so the comparison shows what Redis costs, not what a "
        f"second core buys), redis-server and the load generator on core "
        f"{settings['load_core']}. The two setups alternate (A B, B A, …) over "
        f"{settings.get('redis_reps', data['meta']['reps'])} repetitions, each on fresh "
        "processes and a fresh redis-server; cells are medians. *Server CPU* is the sum of "
        "both workers. Goal: two workers within "
        f"{REDIS_GOAL:g}× of one process at {REDIS_GOAL_CLIENTS:,} clients."
    )
    add("")
    add(
        "| clients | setup | p50 ms | p99 ms | server CPU ms/broadcast | server CPU % "
        "| load CPU % | redis-server CPU % | redis-server CPU ms/broadcast |"
    )
    add("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for size in sizes:
        key = f"fanout-redis-{size}"
        for variant, label in REDIS_LABELS.items():
            cell = table[key].get(variant)
            if cell is None:
                continue
            if "error" in cell:
                add(f"| {size:,} | {label} | error: {cell['error']} | | | | | | |")
                continue
            p50, p99 = _fanout_cell(cell, size)
            add(
                f"| {size:,} | {label} | {p50} | {p99} | "
                f"{_num(cell.get('server_ms_per_broadcast'), 1)} | "
                f"{_num(cell.get('server_cpu_pct'))} | {_num(cell.get('load_cpu_pct'))} | "
                f"{_num(cell.get('redis_cpu_pct'), 1)} | "
                f"{_num(cell.get('redis_ms_per_broadcast'), 2)} |"
            )
    add("")
    for size in sizes:
        cell = table[f"fanout-redis-{size}"].get("bocadillo-redis", {})
        local, remote = cell.get("triggered_worker_p50_ms"), cell.get("other_worker_p50_ms")
        if local is None or remote is None:
            continue
        last = cell.get("other_worker_last")
        add(
            f"- {size:,} clients, two workers: the triggered worker's last client had the "
            f"broadcast after {local:.1f} ms (p50), the other worker's (through Redis) after "
            f"{remote:.1f} ms"
            + (
                f"; the last client overall was on the other worker in {last:.0f} of "
                f"{settings['broadcasts']} broadcasts (medians over the repetitions)."
                if last is not None
                else "."
            )
        )
    add("")
    add(
        "| clients | p50: 2 workers ÷ 1 process | p99 | server CPU per broadcast "
        f"| p50, per repetition | goal ≤ {REDIS_GOAL:g}× (p50) |"
    )
    add("| ---: | ---: | ---: | ---: | --- | --- |")
    for size in sizes:
        key = f"fanout-redis-{size}"
        cells = table[key]
        values = {
            metric: ratio(
                cells.get("bocadillo-redis", {}).get(metric), cells.get("bocadillo", {}).get(metric)
            )
            for metric in ("p50_ms", "p99_ms", "server_ms_per_broadcast")
        }
        pairs = ", ".join(f"{value:.2f}" for value in redis_ratios(data, key, "p50_ms")) or "–"
        p50 = values["p50_ms"]
        if p50 is None:
            status = "–"
        elif size == REDIS_GOAL_CLIENTS:
            status = "met" if p50 <= REDIS_GOAL else "**missed**"
        else:  # the goal is set at one size; say where the others stand
            where = "within" if p50 <= REDIS_GOAL else "beyond"
            status = f"{where} (goal set at {REDIS_GOAL_CLIENTS:,})"
        add(
            f"| {size:,} | {_ratio(p50)} | {_ratio(values['p99_ms'])} | "
            f"{_ratio(values['server_ms_per_broadcast'])} | {pairs} | {status} |"
        )
    add("")
    add(
        "Ratios are of the medians; *per repetition* divides the two setups' p50 measured "
        f"next to each other. The p99 of {settings['broadcasts']} broadcasts is their "
        "slowest one: a garbage "
        "collection or a lost time slice in either worker lands there. *Server CPU per "
        "broadcast* (both workers together) moves least when other processes compete for "
        "the cores: it is what Redis costs the workers."
    )
    add("")
    return out


def render_history(
    data: dict[str, Any], table: dict[str, dict[str, dict[str, Any]]], sizes: list[int]
) -> list[str]:
    """The ``fanout-history`` section: publishing into a room with history or without."""
    settings = data["meta"]["settings"]
    reps = settings.get("history_reps", data["meta"]["reps"])
    out = ["## Publishing to a room with history", ""]
    add = out.append
    add(
        "The fan-out to clients of the message-type endpoint (`/ws`), each of "
        "which joined the room with a `resume` message; `POST /publish` broadcasts "
        '`{"seq": N, "pad": ...}` to the room, and every client gets it in an envelope. In a '
        'room with history (`room_options("history:*", history_size=1000)`) the '
        "publication is also kept and its envelope carries `room`, `offset` and `epoch`. "
        "The time is from the trigger to the last client, over "
        f"{settings['broadcasts']} publications. On one process (in-memory hub, the history "
        "in the process) and on two workers on one redis-server, set up as in the section "
        "above (clients half and half, triggers alternating; with history, the publication "
        "goes through Redis, which gives it its offset, and both workers deliver it when "
        f"Redis hands it back). The four setups alternate over {reps} repetitions, each on "
        "fresh processes; cells are medians. Goal: with history within "
        f"{HISTORY_GOAL:g}× of without at {HISTORY_GOAL_CLIENTS:,} clients (p50)."
    )
    add("")
    add(
        "| clients | setup | room | p50 ms | p99 ms | server CPU ms/publication "
        "| load CPU % | redis-server CPU ms/publication |"
    )
    add("| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |")
    for size in sizes:
        cells = table[f"fanout-history-{size}"]
        for label, plain, kept in HISTORY_PAIRS:
            for variant, room in ((plain, "no history"), (kept, "history")):
                cell = cells.get(variant)
                if cell is None:
                    continue
                if "error" in cell:
                    add(f"| {size:,} | {label} | {room} | error: {cell['error']} | | | | |")
                    continue
                p50, p99 = _fanout_cell(cell, size)
                add(
                    f"| {size:,} | {label} | {room} | {p50} | {p99} | "
                    f"{_num(cell.get('server_ms_per_broadcast'), 2)} | "
                    f"{_num(cell.get('load_cpu_pct'))} | "
                    f"{_num(cell.get('redis_ms_per_broadcast'), 2)} |"
                )
    add("")
    add(
        "| clients | setup | p50: history ÷ none | p99 | server CPU per publication "
        f"| p50, per repetition | goal ≤ {HISTORY_GOAL:g}× (p50) |"
    )
    add("| ---: | --- | ---: | ---: | ---: | --- | --- |")
    for size in sizes:
        key = f"fanout-history-{size}"
        cells = table[key]
        for label, plain, kept in HISTORY_PAIRS:
            if plain not in cells or kept not in cells:
                continue
            values = {
                metric: ratio(cells[kept].get(metric), cells[plain].get(metric))
                for metric in ("p50_ms", "p99_ms", "server_ms_per_broadcast")
            }
            pairs = redis_ratios(data, key, "p50_ms", plain, kept)
            p50 = values["p50_ms"]
            if p50 is None:
                status = "–"
            elif size == HISTORY_GOAL_CLIENTS:
                status = "met" if p50 <= HISTORY_GOAL else "**missed**"
            else:
                where = "within" if p50 <= HISTORY_GOAL else "beyond"
                status = f"{where} (goal set at {HISTORY_GOAL_CLIENTS:,})"
            add(
                f"| {size:,} | {label} | {_ratio(p50)} | {_ratio(values['p99_ms'])} | "
                f"{_ratio(values['server_ms_per_broadcast'])} | "
                f"{_pairs(pairs)} | {status} |"
            )
    add("")
    return out


def _pairs(values: list[float]) -> str:
    """Per-repetition ratios, and their median."""
    if not values:
        return "–"
    listed = ", ".join(f"{value:.2f}" for value in values)
    return f"{listed} (median {statistics.median(values):.2f})"


def render_resume(
    data: dict[str, Any], table: dict[str, dict[str, dict[str, Any]]], keys: list[str]
) -> list[str]:
    """The ``resume`` section: every client of a room comes back at once."""
    settings = data["meta"]["settings"]
    reps = settings.get("resume_reps", data["meta"]["reps"])
    out = ["## Resuming after a disconnection", ""]
    add = out.append
    add(
        "The clients of `/ws` in one room with history see a few publications, "
        "then all drop their TCP connections (no close frame); once the servers have seen "
        "them go, the gap is published to the room (`POST /publish`). Then they all connect "
        "again and, once every one is connected, each sends its `resume` with the last "
        "`epoch`/`offset` it saw, one after the other as fast as the load generator can. "
        "*Per client*: from its own `resume` to its `response`, every missed publication "
        "having come before it; *all done*: from the first `resume` sent to the last "
        "client's response. A client is *correct* when it got exactly the gap, in order, "
        "each publication once, then `recovered: true` at the room's last position. "
        "With two workers on one redis-server (set up as above), each client comes back on "
        "the other worker than the one it left, so its gap is read from Redis. The two "
        f"setups alternate over {reps} repetitions, each on fresh processes; cells are "
        f"medians (a resume that is not over after {settings.get('resume_timeout_s', '?')} s "
        "fails the repetition)."
    )
    add("")
    add(
        "| clients | missed each | setup | correct | p50 ms per client | p99 ms "
        "| all done ms | resumes sent in ms | server CPU ms | server CPU µs/replayed message "
        "| load CPU % |"
    )
    add("| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for key in keys:
        for variant, label in RESUME_LABELS.items():
            cell = table[key].get(variant)
            if cell is None:
                continue
            clients = int(key.split("-")[1])
            if "error" in cell:
                add(f"| {clients:,} | | {label} | error: {cell['error']} | | | | | | | |")
                continue
            add(
                f"| {clients:,} | {_num(cell.get('gap'))} | {label} | "
                f"{_worst(data, key, variant)} | "
                f"{_num(cell.get('p50_ms'))} | {_num(cell.get('p99_ms'))} | "
                f"{_num(cell.get('total_ms'))} | {_num(cell.get('send_ms'), 1)} | "
                f"{_num(cell.get('server_ms'))} | {_num(cell.get('server_us_per_message'), 1)} | "
                f"{_num(cell.get('load_cpu_pct'))} |"
            )
    add("")
    return out


def _worst(data: dict[str, Any], key: str, variant: str) -> str:
    """``correct/clients`` in the worst repetition (every one should be all correct)."""
    found = [
        (run["result"]["correct"], run["result"]["clients"])
        for run in data["runs"]
        if run["key"] == key and run["target"] == variant and "correct" in run["result"]
    ]
    if not found:
        return "–"
    correct, clients = min(found)
    everywhere = " in every repetition" if correct == clients else " (worst repetition)"
    return f"{correct:,}/{clients:,}{everywhere}"


def render_plot(table: dict[str, dict[str, dict[str, Any]]], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    targets = _targets(table)
    labels = [LABELS[target] for target in targets]
    colors = ["#9e9e9e", "#4c72b0", "#55a868", "#8172b2", "#dd8452"][: len(targets)]
    redis_sizes = _redis_sizes(table)
    rows = 3 if redis_sizes else 2
    figure, axes = plt.subplots(rows, 2, figsize=(12, 4 * rows))
    figure.suptitle(title, fontsize=11)

    def bars(axis: Any, values: list[float | None], heading: str, unit: str) -> None:
        heights = [value or 0 for value in values]
        drawn = axis.bar(labels, heights, color=colors)
        for bar, value in zip(drawn, values, strict=True):
            text = "–" if value is None else f"{value:,.0f}" if value >= 100 else f"{value:.1f}"
            axis.annotate(
                text,
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        axis.set_title(heading, fontsize=10)
        axis.set_ylabel(unit)
        axis.tick_params(axis="x", labelsize=8)

    echo_keys = [key for key in ("echo-64", "echo-1") if key in table]
    if echo_keys:
        key = echo_keys[0]
        values = [table[key].get(target, {}).get("msgs_per_s") for target in targets]
        bars(axes[0][0], values, f"WebSocket echo, {key.split('-')[1]} clients", "messages/s")
    if "http" in table:
        values = [table["http"].get(target, {}).get("requests_per_s") for target in targets]
        bars(axes[0][1], values, "HTTP JSON", "requests/s")
    sizes = _fanout_sizes(table)
    axis = axes[1][0]
    if sizes:
        size = sizes[-1]
        healthy_key, stalled_key = f"fanout-{size}", _stalled_key(table, size)
        width = 0.4
        positions = list(range(len(targets)))
        healthy = [table[healthy_key].get(target, {}).get("p50_ms") for target in targets]
        drawn_healthy = axis.bar(
            [p - width / 2 for p in positions],
            [value or 0 for value in healthy],
            width,
            label="healthy",
            color="#4c72b0",
        )
        for bar, value in zip(drawn_healthy, healthy, strict=True):
            if value is not None:
                axis.annotate(
                    f"{value:.0f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
        if stalled_key:
            stalled_cells = [table[stalled_key].get(target, {}) for target in targets]
            top = max([value or 0 for value in healthy] + [1.0])
            stalled = [cell.get("p50_ms") for cell in stalled_cells]
            heights = [
                value if value is not None else top * 1.3 if cell.get("timed_out") else 0
                for value, cell in zip(stalled, stalled_cells, strict=True)
            ]
            drawn = axis.bar(
                [p + width / 2 for p in positions],
                heights,
                width,
                label="10% stalled",
                color="#dd8452",
            )
            for bar, cell in zip(drawn, stalled_cells, strict=True):
                if cell.get("p50_ms") is not None:
                    axis.annotate(
                        f"{cell['p50_ms']:.0f}",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center",
                        va="bottom",
                        fontsize=8,
                    )
                if cell.get("timed_out"):
                    bar.set_hatch("//")
                    bar.set_facecolor("white")
                    bar.set_edgecolor("#dd8452")
                    axis.annotate(
                        "timed out",
                        (bar.get_x() + bar.get_width() / 2, bar.get_height() / 2),
                        ha="center",
                        va="center",
                        fontsize=8,
                        rotation=90,
                        backgroundcolor="white",
                    )
        axis.set_xticks(positions, labels, fontsize=8)
        axis.set_title(f"Broadcast to {size:,} clients: p50 to the last one", fontsize=10)
        axis.set_ylabel("ms (lower is better)")
        axis.legend(fontsize=8)
    if "memory" in table:
        values = [table["memory"].get(target, {}).get("kib_per_conn") for target in targets]
        bars(axes[1][1], values, "Memory per idle WebSocket", "KiB per connection")
    if redis_sizes:
        plot_redis(axes[2][0], table, redis_sizes)
        axes[2][1].axis("off")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def plot_redis(axis: Any, table: dict[str, dict[str, dict[str, Any]]], sizes: list[int]) -> None:
    """p50 and p99 of one process and of two workers on Redis, for each client count."""
    width = 0.2
    series = [
        ("bocadillo", "p50_ms", "1 process, p50", "#dd8452"),
        ("bocadillo", "p99_ms", "1 process, p99", "#f2c4a6"),
        ("bocadillo-redis", "p50_ms", "2 workers + Redis, p50", "#4c72b0"),
        ("bocadillo-redis", "p99_ms", "2 workers + Redis, p99", "#a9bcdc"),
    ]
    for index, (variant, metric, label, color) in enumerate(series):
        values = [table[f"fanout-redis-{size}"].get(variant, {}).get(metric) for size in sizes]
        positions = [p + (index - 1.5) * width for p in range(len(sizes))]
        drawn = axis.bar(positions, [v or 0 for v in values], width, label=label, color=color)
        for bar, value in zip(drawn, values, strict=True):
            if value is not None:
                axis.annotate(
                    f"{value:.0f}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                    ha="center",
                    va="bottom",
                    fontsize=8,
                )
    axis.set_xticks(range(len(sizes)), [f"{size:,} clients" for size in sizes], fontsize=8)
    axis.set_title("Bocadillo broadcast: 1 process vs 2 workers on Redis", fontsize=10)
    axis.set_ylabel("ms to the last client (lower is better)")
    axis.legend(fontsize=8)


def render_readme(data: dict[str, Any], table: dict[str, dict[str, dict[str, Any]]]) -> str:
    """The README's summary: one sentence with the headline ratios, between the markers.

    The front page gives what a reader compares (Bocadillo, raw ASGI, Starlette and
    FastAPI, same run) and links to ``docs/benchmarks.md`` for the rest: the goals, the
    other scenarios, the machine and its load.
    """

    def get(key: str, target: str, metric: str) -> float | None:
        value = table.get(key, {}).get(target, {}).get(metric)
        return value if isinstance(value, (int, float)) else None

    def versus(key: str, metric: str, what: str) -> str | None:
        raw = get(key, "raw", metric)
        ours = ratio(get(key, "bocadillo", metric), raw)
        if ours is None:
            return None
        peers = [
            f"{LABELS[peer]} {value:.2f}×"
            for peer in ("starlette", "fastapi")
            if (value := ratio(get(key, peer, metric), raw)) is not None
        ]
        return f"{what} at {ours:.2f}× " + (
            f"{_WHOSE[metric]} of raw ASGI ({', '.join(peers)})"
            if peers
            else f"{_WHOSE[metric]} of raw ASGI"
        )

    parts = [
        part
        for part in (
            versus("echo-64", "msgs_per_s", "WebSocket echo"),
            versus("http", "requests_per_s", "HTTP JSON"),
        )
        if part is not None
    ]
    sizes = _fanout_sizes(table)
    stalled_key = _stalled_key(table, sizes[-1]) if sizes else None
    if sizes and stalled_key:
        size = sizes[-1]
        raw_stalled = get(stalled_key, "raw", "p50_ms")
        base = raw_stalled if raw_stalled is not None else get(f"fanout-{size}", "raw", "p50_ms")
        value = ratio(get(stalled_key, "bocadillo", "p50_ms"), base)
        if value is not None:
            against = (
                "raw ASGI's broadcast with as many stalled"
                if raw_stalled is not None
                else "raw ASGI's broadcast to healthy clients only"
            )
            parts.append(
                f"a broadcast to {size:,} clients with 10% of them stalled in {value:.2f}× "
                f"the median time of {against}"
            )
    meta = data["meta"]
    when = str(meta["date"]).split(" ")[0]
    machine = f"{meta['machine']['nproc']} cores"
    summary = "; ".join(parts) if parts else "no comparable scenario in this run"
    return "\n".join(
        [
            README_START,
            f"On {machine} with the same uvicorn (`make bench`, {when}): {summary}. "
            "Full results: [docs/benchmarks.md](docs/benchmarks.md).",
            README_END,
        ]
    )


#: How ``render_readme`` names what a ratio compares.
_WHOSE = {"msgs_per_s": "the messages per second", "requests_per_s": "the requests per second"}


def publish(data: dict[str, Any], *, docs_dir: Path, readme: Path | None) -> None:
    """Write ``benchmarks.md`` and ``benchmarks.png`` into ``docs_dir``; update the block
    between the bench markers in ``readme`` (if given and the markers are there)."""
    table = aggregate(data)
    docs_dir.mkdir(parents=True, exist_ok=True)
    (docs_dir / "benchmarks.md").write_text(render_markdown(data, table) + "\n")
    meta = data["meta"]
    render_plot(
        table,
        docs_dir / "benchmarks.png",
        f"Bocadillo benchmarks, {meta['date']}, {meta['machine']['nproc']} cores "
        f"({meta['mode']} mode, medians of {meta['reps']})",
    )
    if readme is not None and readme.exists():
        text = readme.read_text()
        start, end = text.find(README_START), text.find(README_END)
        if start >= 0 and end > start:
            block = render_readme(data, table)
            readme.write_text(text[:start] + block + text[end + len(README_END) :])


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.report", description=__doc__)
    parser.add_argument("results", nargs="?", default=str(ROOT / "bench/results/results.json"))
    parser.add_argument("--docs", default=str(ROOT / "docs"))
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    args = parser.parse_args(argv)
    data = json.loads(Path(args.results).read_text())
    publish(data, docs_dir=Path(args.docs), readme=Path(args.readme) if args.readme else None)


if __name__ == "__main__":
    main()
