"""Handshake security against a real uvicorn, with an attacker that ignores every refusal.

The app restricts origins (``allowed_origins``), caps connections per client address and
limits the message rate. Legitimate clients connect from 127.0.0.1; the attacker from
127.0.0.2 and 127.0.0.3 (every 127/8 address is loopback on Linux):

- hundreds of handshakes with foreign, malformed or missing ``Origin`` headers are all
  refused with HTTP 403;
- beyond the per-IP cap, hundreds more handshakes (sending frames straight away, never
  reading) are each closed with 1013 and never counted, while the cap holds at every
  moment and the legitimate clients are served;
- the attacker's admitted connections flood a room and are cut off after their allowance
  with 1008; the room hears exactly the allowance;
- afterwards the hub holds exactly the legitimate clients: a refused handshake leaves no
  connection, room membership or task behind.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from .harness import ServerProcess, eventually, record_figures, size
from .wsclient import TEXT, HandshakeError, WSClient, encode_frame, open_ws

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

GOOD = "http://good.example"
CAP = 10
ALLOWANCE = 20
VIOLATIONS = 3
ATTEMPTS = size(400, 4_000)
BURST = 50
TIMEOUT = 60.0

FOREIGN_ORIGINS: list[str | None] = [
    "http://evil.example",
    None,  # no Origin header at all
    "null",
    "",
    "HTTP://GOOD.EXAMPLE",
    "http://good.example.evil.example",
    "http://good.example:8080",
    "https://good.example",
    "http://good.example/",
    "http://xn--gd-ria.example",
    "http://" + "a" * 8_000 + ".example",
    "http://good.example, http://evil.example",
]


def say(text: str, n: int) -> str:
    return json.dumps({"type": "say", "data": {"room": "lobby", "text": text}, "id": n})


async def attempt(port: int, path: str, origin: str | None, host: str) -> WSClient | int:
    """One handshake; the client on success, the HTTP status on refusal."""
    headers = [] if origin is None else [("Origin", origin)]
    try:
        return await open_ws(port, path, headers=headers, local_host=host, timeout=TIMEOUT)
    except HandshakeError as exc:
        assert exc.status is not None, exc
        return exc.status


async def foreign_origins(server: ServerProcess) -> int:
    paths = ["/feed?room=lobby", "/ws", "/feed-close"]
    jobs = [
        (paths[n % len(paths)], FOREIGN_ORIGINS[n % len(FOREIGN_ORIGINS)]) for n in range(ATTEMPTS)
    ]
    for start in range(0, len(jobs), BURST):
        burst = jobs[start : start + BURST]
        results = await asyncio.gather(*(attempt(server.port, p, o, "127.0.0.3") for p, o in burst))
        accepted = [job for job, r in zip(burst, results, strict=True) if isinstance(r, WSClient)]
        for result in results:
            if isinstance(result, WSClient):
                result.abort()
        assert accepted == [], "foreign origins were accepted"
        assert set(results) == {403}
    return len(jobs)


async def beyond_the_cap(server: ServerProcess, legit: int) -> int:
    """Hold CAP connections from 127.0.0.2, then keep trying for more, sending frames at
    once and reading nothing; every extra connection must be closed with 1013."""
    held = [
        await open_ws(server.port, "/ws", headers=[("Origin", GOOD)], local_host="127.0.0.2")
        for _ in range(CAP)
    ]
    try:
        for start in range(0, ATTEMPTS, BURST):
            batch = await asyncio.gather(
                *(attempt(server.port, "/ws", GOOD, "127.0.0.2") for _ in range(BURST))
            )
            clients = [c for c in batch if isinstance(c, WSClient)]
            assert len(clients) == BURST, batch  # the handshake itself succeeds (101)
            for n, client in enumerate(clients):
                client.send_raw(encode_frame(TEXT, say(f"extra-{start + n}", n).encode()))
            await asyncio.gather(*(c.wait_closed(TIMEOUT) for c in clients))
            for client in clients:
                assert (client.close_code, client.close_reason) == (1013, "server busy")
                assert client.inbox == []
            state = await server.state()
            assert state["count"] == legit + CAP  # the cap holds at every moment
        return ATTEMPTS
    finally:
        for client in held:
            client.abort()


async def flood_from_the_cap(server: ServerProcess) -> list[WSClient]:
    """CAP connections from 127.0.0.2 send far more than their allowance at once."""
    clients = [
        await open_ws(server.port, "/ws", headers=[("Origin", GOOD)], local_host="127.0.0.2")
        for _ in range(CAP)
    ]
    for n, client in enumerate(clients):
        frames = b"".join(
            encode_frame(TEXT, say(f"flood-{n}-{i}", i).encode()) for i in range(ALLOWANCE * 25)
        )
        client.send_raw(frames)
    await asyncio.gather(*(c.wait_closed(TIMEOUT) for c in clients))
    return clients


@pytest.mark.timeout(size(180, 900))
async def test_refused_handshakes_hold_the_limits_and_cost_nothing(serve):
    asyncio.get_running_loop().set_debug(False)
    server = serve(
        BOCADILLO_ALLOWED_ORIGINS=GOOD,
        BOCADILLO_MAX_CONNECTIONS_PER_IP=CAP,
        BOCADILLO_RATE_LIMIT=f"{ALLOWANCE}/60",
        BOCADILLO_RATE_LIMIT_VIOLATIONS=VIOLATIONS,
    )
    await server.wait_ready()

    # Legitimate clients: a listener in lobby (on the envelope endpoint) and feeds.
    listener = await open_ws(server.port, "/ws", headers=[("Origin", GOOD)])
    feeds = [
        await open_ws(server.port, "/feed?room=lobby", headers=[("Origin", GOOD)]) for _ in range(3)
    ]
    heard: list[str] = []
    try:
        listener.send_text(json.dumps({"type": "join", "data": "lobby", "id": 1}))
        _, reply = await listener.next_message(TIMEOUT)
        assert json.loads(reply)["data"] == {"joined": "lobby"}
        legit = 1 + len(feeds)
        before: dict[str, Any] = await eventually(
            lambda: _state_with(server, legit), timeout=TIMEOUT, what="legitimate clients in"
        )

        refused_origins = await foreign_origins(server)
        refused_cap = await beyond_the_cap(server, legit)
        await eventually(
            lambda: _state_with(server, legit), timeout=TIMEOUT, what="held clients forgotten"
        )
        flooders = await flood_from_the_cap(server)
        for client in flooders:
            assert (client.close_code, client.close_reason) == (1008, "rate limit exceeded")
            replies = [json.loads(p) for _, p in client.inbox]
            kinds = [r["type"] if r["type"] == "response" else r["data"]["code"] for r in replies]
            assert kinds == ["response"] * ALLOWANCE + ["rate_limited"] * (VIOLATIONS - 1)

        async def flood_heard() -> bool:
            heard[:] = [
                json.loads(p)["data"]["text"]
                for _, p in listener.inbox
                if json.loads(p)["type"] == "chat"
            ]
            return len(heard) >= CAP * ALLOWANCE

        await eventually(flood_heard, timeout=TIMEOUT, what="the room heard the allowances")
        # Every flooder is closed. The listener's own last message to the room is queued
        # for it after anything they got through: once it is heard, nothing else is coming.
        listener.send_text(say("end", 2))

        async def end_heard() -> bool:
            await flood_heard()
            return "end" in heard

        await eventually(end_heard, timeout=TIMEOUT, what="the listener heard its last message")
        assert heard[-1] == "end"
        heard.remove("end")
        assert sorted(heard) == sorted(
            f"flood-{n}-{i}" for n in range(CAP) for i in range(ALLOWANCE)
        ), "the room heard something it should not have (an extra or a refused client)"

        # Refusals cost nothing: the hub holds the legitimate clients and nothing else.
        after = await eventually(
            lambda: _state_with(server, legit), timeout=TIMEOUT, what="attackers forgotten"
        )
        assert after["ids"] == before["ids"]
        assert after["rooms"] == before["rooms"]
        assert after["tasks"] == before["tasks"]
        stats = after["stats"]
        assert stats["rejected"] == refused_origins + refused_cap
        assert stats["connections_total"] == legit + 2 * CAP
        assert listener.connected and all(feed.connected for feed in feeds)
    finally:
        listener.abort()
        for feed in feeds:
            feed.abort()
    server.assert_clean_log()
    record_figures(
        "handshake",
        {
            "foreign_origin_handshakes_refused": refused_origins,
            "over_cap_handshakes_closed_1013": refused_cap,
            "flooders_closed_1008": len(flooders),
            "per_ip_cap": CAP,
            "allowance": ALLOWANCE,
        },
    )


async def _state_with(server: ServerProcess, count: int) -> dict[str, Any] | None:
    state = await server.state()
    return state if state["count"] == count else None
