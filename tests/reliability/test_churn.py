"""Churn soak: thousands of WebSockets coming and going while broadcasts run.

A real uvicorn serves ``soak_app``; ``CONNECTIONS`` clients join rooms of ``/feed``. For
``DURATION`` seconds, ``RATE`` clients a second leave (a fifth of them by dropping the TCP
connection without a close frame) and as many new ones join, while every room gets
``PACE`` broadcasts a second. Afterwards the hub must know exactly the live clients and
no departed member, every live client must get a last broadcast, no client may have
missed a paced message while it was connected, and the server must have logged nothing.
The whole round runs twice: the server's memory after the second round must be within
10% of what it was after the first (no leak), and its task count back where it started.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from .feeds import FeedPool
from .harness import ServerProcess, eventually, record_figures, size

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CONNECTIONS = size(1_000, 5_000)
DURATION = size(15.0, 60.0)
#: Connects (and as many disconnects) per second.
RATE = 200
ABRUPT_SHARE = 0.2
ROOMS = [f"room-{n}" for n in range(size(10, 50))]
#: Broadcasts per room per second.
PACE = 2.0
#: Upper bound for the server to catch up with the clients (never a speed expectation).
WAIT = size(60.0, 120.0)


async def expect_state(server: ServerProcess, pool: FeedPool) -> dict[str, Any]:
    """Wait until the hub's connections are the pool's live clients, then return /state."""
    live = sorted(pool.live_ids())

    async def matches() -> dict[str, Any] | None:
        state = await server.state()
        return state if state["ids"] == live else None

    try:
        return await eventually(matches, timeout=WAIT, what="hub ids == live client ids")
    except AssertionError:
        state = await server.state()
        ghosts = set(state["ids"]) - set(live)
        missing = set(live) - set(state["ids"])
        raise AssertionError(
            f"hub has {state['count']} connections for {len(live)} live clients: "
            f"{len(ghosts)} ghosts, {len(missing)} missing"
        ) from None


async def churn_round(server: ServerProcess, seed: int) -> dict[str, Any]:
    pool = FeedPool(ROOMS, seed=seed)
    try:
        await pool.open_many(server.port, CONNECTIONS)
        await expect_state(server, pool)
        paced = int(DURATION * PACE)
        await server.post("/pace", n=paced, rate=PACE, room=ROOMS)

        left = await pool.churn(DURATION, RATE, abrupt_share=ABRUPT_SHARE)
        await pool.settle(WAIT)

        async def paced_all() -> bool:
            return bool((await server.state())["pace"]["done"])

        await eventually(paced_all, timeout=WAIT, what="the paced broadcasts ended")
        assert pool.open_failures == []
        assert len(pool.live) == CONNECTIONS

        # The hub knows exactly the live clients, and no room keeps a departed member.
        state = await expect_state(server, pool)
        assert state["count"] == CONNECTIONS
        assert state["rooms"] == pool.members()
        departed = {feed.id for feed in pool.departed}
        assert departed.isdisjoint(m for members in state["rooms"].values() for m in members)

        # Every live client gets a broadcast sent now; no client ever missed a paced one.
        delivered = (await server.post("/broadcast", json={"final": seed}))["delivered"]
        assert delivered == CONNECTIONS

        async def all_final() -> bool:
            return all(feed.finals == [seed] for feed in pool.feeds())

        await eventually(all_final, timeout=WAIT, what="every live client got the last broadcast")
        assert pool.gaps() == []
        stats = state["stats"]
        assert stats["dropped"] == 0
        figures = {
            "connections_held": CONNECTIONS,
            "connects": pool.opened,
            "disconnects": left,
            "abrupt_disconnects": pool.abrupt,
            "paced_broadcasts": paced * len(ROOMS),
            "messages_received": pool.received() + delivered,
            "server_messages_sent": stats["messages_sent"],
        }
        await pool.close_all(timeout=WAIT)
    finally:
        pool.abort_all()

    async def empty() -> dict[str, Any] | None:
        state = await server.state(gc=1)
        return state if state["count"] == 0 and state["rooms"] == {} else None

    after = await eventually(empty, timeout=WAIT, what="every connection forgotten")
    figures.update(rss=server.rss(), tasks=after["tasks"], gc_objects=after["gc_objects"])
    return figures


@pytest.mark.timeout(size(300, 1200))
async def test_churn_soak_leaves_exact_state_and_does_not_leak(serve):
    asyncio.get_running_loop().set_debug(False)
    server = serve()
    await server.wait_ready()
    baseline = await server.state(gc=1)

    first = await churn_round(server, seed=1)
    second = await churn_round(server, seed=2)

    assert first["tasks"] == second["tasks"] == baseline["tasks"]
    growth = (second["rss"] - first["rss"]) / first["rss"]
    assert growth <= 0.10, f"RSS grew by {growth:.1%} in the second round"
    # A finer leak detector than RSS: the objects the garbage collector tracks. One object
    # kept per connection would add thousands.
    assert second["gc_objects"] - first["gc_objects"] < 500
    server.assert_clean_log()
    assert server.alive
    record_figures(
        "churn",
        {
            "rounds": [first, second],
            "rss_growth_second_round": round(growth, 4),
            "baseline_gc_objects": baseline["gc_objects"],
            "duration_s": DURATION,
            "rate_per_s": RATE,
            "rooms": len(ROOMS),
        },
    )
