"""Slow consumers at scale: stalled clients never cost the healthy ones a message.

``CLIENTS`` clients of a real uvicorn, a tenth of them stalled (a raw socket with a tiny
receive buffer that stops reading after the handshake), get ``RATE`` broadcasts a second
for ``DURATION`` seconds. Half of the stalled clients are on ``/feed`` (overflow policy
``drop_oldest``), half on ``/feed-close`` (policy ``close``). Every healthy client must
get every message, in order; a ``drop_oldest`` client stays connected with at most
``OUTBOX_LIMIT`` messages queued; a ``close`` client is closed and forgotten; and the
server's memory grows by no more than the outboxes and transport buffers of the stalled
clients can hold.

uvicorn's keepalive pings would close the stalled clients too (they never answer), which
is not the policy under test: the pings are set far beyond the scenario's length.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest

from tests.live import stalled_client

from .feeds import FeedPool
from .harness import eventually, record_figures, size

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

CLIENTS = size(400, 2_000)
STALLED = CLIENTS // 10
HEALTHY = CLIENTS - STALLED
RATE = 20.0
DURATION = size(10.0, 60.0)
BROADCASTS = int(RATE * DURATION)
OUTBOX_LIMIT = 64
#: Padding of each broadcast: a stalled client's buffers fill after a few dozen.
PAD = 2_000
#: The server's send buffer (small, so a stalled client stops the transport quickly).
SNDBUF = 8_192
WAIT = size(60.0, 180.0)


@pytest.mark.timeout(size(180, 900))
async def test_stalled_clients_never_cost_healthy_clients_a_message(serve):
    asyncio.get_running_loop().set_debug(False)
    server = serve(
        "--ws-ping-interval",
        "3600",
        "--ws-ping-timeout",
        "3600",
        sndbuf=SNDBUF,
        BOCADILLO_OUTBOX_LIMIT=OUTBOX_LIMIT,
    )
    await server.wait_ready()
    pool = FeedPool(["all"])
    stalled: list[socket.socket] = []
    try:
        await pool.open_many(server.port, HEALTHY)
        for n in range(STALLED):
            path = "/feed?room=all" if n % 2 else "/feed-close?room=all"
            stalled.append(await stalled_client(server.port, path))
        dropping = STALLED // 2
        closing = STALLED - dropping

        async def all_in() -> bool:
            return bool((await server.state())["count"] == CLIENTS)

        await eventually(all_in, timeout=WAIT, what="every client registered")
        rss_before = server.rss()

        await server.post("/pace", n=BROADCASTS, rate=RATE, room="all", pad=PAD)
        samples = [rss_before]

        async def paced() -> dict[str, Any] | None:
            samples.append(server.rss())
            state = await server.state()
            return state if state["pace"]["done"] else None

        await eventually(paced, timeout=DURATION + WAIT, what="the paced broadcasts ended")

        async def all_read() -> bool:
            return all(feed.received == BROADCASTS for feed in pool.feeds())

        await eventually(all_read, timeout=WAIT, what="healthy clients read every broadcast")
        for feed in pool.feeds():
            assert (feed.first, feed.last, feed.gaps) == (0, BROADCASTS - 1, [])

        state = await server.state()
        # drop_oldest: still connected, never more than the limit queued.
        # close: closed with 1013 (which they never read) and forgotten by the hub.
        assert state["count"] == HEALTHY + dropping
        assert state["pending"] <= OUTBOX_LIMIT
        stats = state["stats"]
        assert stats["dropped"] > 0
        assert stats["connections_total"] == CLIENTS

        # What a stalled client may cost: the transport's write buffer (64 KiB before it
        # pauses, plus the frame that crossed it) and a full outbox (counted as copies,
        # though a broadcast is encoded once and shared); plus a margin for the
        # interpreter's own allocations.
        frame = PAD + 100
        per_client = 64 * 1024 + frame + OUTBOX_LIMIT * frame
        bound = STALLED * per_client + 16 * 2**20
        growth = max(samples) - rss_before
        assert growth <= bound, f"RSS grew by {growth} bytes, bound {bound}"
        record_figures(
            "slow_consumers",
            {
                "clients": CLIENTS,
                "stalled": STALLED,
                "stalled_drop_oldest": dropping,
                "stalled_close": closing,
                "broadcasts": BROADCASTS,
                "messages_delivered_to_healthy": sum(f.received for f in pool.feeds()),
                "server_dropped": stats["dropped"],
                "max_pending": state["pending"],
                "rss_before": rss_before,
                "rss_peak": max(samples),
                "rss_growth_bound": bound,
                "queued_without_limit": dropping * BROADCASTS,
            },
        )
        await pool.close_all(timeout=WAIT)
    finally:
        pool.abort_all()
        for client in stalled:
            client.close()

    async def empty() -> bool:
        return bool((await server.state())["count"] == 0)

    await eventually(empty, timeout=WAIT, what="every connection forgotten")
    # The hub ends the handler of a client it closes for being slow without an error.
    server.assert_clean_log()


async def test_close_policy_logs_no_error(serve):
    server = serve(sndbuf=SNDBUF, BOCADILLO_OUTBOX_LIMIT=8)
    await server.wait_ready()
    client = await stalled_client(server.port, "/feed-close?room=all")
    try:
        await server.post("/pace", n=200, rate=1000, room="all", pad=PAD)

        async def closed() -> bool:
            return bool((await server.state())["count"] == 0)

        await eventually(closed, timeout=30, what="the stalled client closed")
    finally:
        client.close()
    server.assert_clean_log()
