"""A process's presence in Redis after failures: whatever a failure did to the writes in
flight, the presence converges to exactly what each live process holds (no ghost, none
missing), without waiting for any heartbeat to expire.

The failures are made on the real servers (plain Redis, and every master of a cluster):
``CLIENT PAUSE`` holds the backend's writes in Redis, and ``CLIENT KILL`` then drops its
connections, as a timeout does (the client gives up on a command that Redis may or may
not have run). The whole presence under the test's prefix is then read back from Redis
and compared with the hubs' own tables.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import pytest
import redis.asyncio as aioredis

from bocadillo.errors import BackendUnavailable
from bocadillo.realtime.backends.redis import RedisBackend
from bocadillo.realtime.hub import Hub
from tests.backends.support import settled
from tests.hub_client import HubClient
from tests.live import eventually

pytestmark = [
    pytest.mark.redis,
    pytest.mark.anyio,
    pytest.mark.parametrize(
        "backend_url",
        ["redis", pytest.param("redis_cluster", marks=pytest.mark.redis_cluster)],
        indirect=True,
    ),
]

#: Long enough that no heartbeat expires during a test: a live node's ghosts would stay.
TTL = 60.0

Presence = dict[str, Any]


@pytest.fixture
def backend_options(backend_options: dict[str, Any]) -> dict[str, Any]:
    return {**backend_options, "heartbeat_ttl": TTL, "backoff": (0.05, 0.2)}


@pytest.fixture
async def masters(backend_url: str) -> AsyncIterator[list[aioredis.Redis]]:
    """A client of each master: the lone server, or every master of the cluster."""
    seed = urlsplit(backend_url.split(",")[0].replace("redis+cluster://", "redis://"))
    first = aioredis.Redis(host=seed.hostname or "127.0.0.1", port=seed.port or 6379)
    clients = [first]
    if backend_url.startswith("redis+cluster://"):
        slots = await first.execute_command("CLUSTER", "SLOTS")  # type: ignore[no-untyped-call]
        await first.aclose()
        ports = sorted({int(entry[2][1]) for entry in slots})
        clients = [aioredis.Redis(host="127.0.0.1", port=port) for port in ports]
    try:
        yield clients
    finally:
        for client in clients:
            await client.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]
            await client.aclose()


async def kill_connections(masters: list[aioredis.Redis], *, pause: str | None = None) -> None:
    """Drop every client connection of the masters but ours (what a timeout does to the
    backend's), then pause them (``ALL`` or ``WRITE``, for 30 s) if ``pause`` says so, in
    one transaction: nobody connects again before the pause."""
    for client in masters:
        pipe = client.pipeline(transaction=True)
        pipe.execute_command("CLIENT", "KILL", "TYPE", "normal")
        pipe.execute_command("CLIENT", "KILL", "TYPE", "pubsub")
        if pause is not None:
            pipe.execute_command("CLIENT", "PAUSE", 30_000, pause)
        await pipe.execute()


async def unpause(masters: list[aioredis.Redis]) -> None:
    for client in masters:
        await client.execute_command("CLIENT", "UNPAUSE")  # type: ignore[no-untyped-call]


async def held_commands(masters: list[aioredis.Redis]) -> set[str]:
    """The commands Redis holds (postponed by a pause), on every master."""
    held: set[str] = set()
    for client in masters:
        for entry in await client.client_list():
            if "b" in entry["flags"]:
                held.add(entry["cmd"])
    return held


async def presence_in_redis(masters: list[aioredis.Redis], prefix: str) -> Presence:
    """Everything the backends wrote about connections under ``prefix``, read back."""
    nodes: dict[str, set[str]] = {}
    conns: dict[str, str] = {}
    users: dict[str, Any] = {}
    rooms_of: dict[str, set[str]] = {}
    members: dict[str, set[str]] = {}
    alive: set[str] = set()

    def text(values: Any) -> set[str]:
        return {v.decode() for v in values}

    for client in masters:
        async for raw in client.scan_iter(match=f"{prefix}:*", count=1000):
            key = raw.decode()
            rest = key[len(prefix) + 1 :]
            if rest == "nodes":
                alive |= text(await client.zrange(key, 0, -1))
                continue
            tag, _, rest = rest.partition("}:")
            kind, _, name = rest.partition(":")
            if kind == "node":
                nodes[tag.lstrip("{")] = text(await client.smembers(key))
            elif kind == "conns":
                found = await client.hgetall(key)
                conns.update({_str(k): _str(v) for k, v in found.items()})
            elif kind == "users":
                found = await client.hgetall(key)
                users.update({_str(k): json.loads(v) for k, v in found.items()})
            elif kind == "rooms":
                rooms_of[name] = text(await client.smembers(key))
            elif kind == "room":
                members[name] = text(await client.smembers(key))
    return {
        "nodes": {node: conn_ids for node, conn_ids in nodes.items() if node in alive},
        "conns": conns,
        "users": users,
        "rooms_of": rooms_of,
        "members": members,
    }


def _str(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def presence_of(*hubs: Hub) -> Presence:
    """What ``presence_in_redis`` must find: the hubs' own tables."""
    expected: Presence = {"nodes": {}, "conns": {}, "users": {}, "rooms_of": {}, "members": {}}
    for hub in hubs:
        node = hub.backend.node
        expected["nodes"][node] = {str(c) for c in hub.local_ids}
        for conn_id in hub.local_ids:
            expected["conns"][conn_id] = node
            user = hub.connection(conn_id).user
            if user is not None:
                expected["users"][conn_id] = user
            rooms = set(hub.local_rooms_of(conn_id))
            if rooms:
                expected["rooms_of"][conn_id] = rooms
            for room in rooms:
                expected["members"].setdefault(room, set()).add(conn_id)
    return expected


async def converged(masters: list[aioredis.Redis], prefix: str, *hubs: Hub) -> None:
    """Wait until Redis holds exactly the hubs' presence, and every hub counts exactly
    their connections (a hub whose pooled connection was dropped may answer
    ``BackendUnavailable`` once: asked again)."""
    last: dict[str, Any] = {}
    total = sum(hub.local_count for hub in hubs)

    async def exact() -> bool:
        last["redis"] = await presence_in_redis(masters, prefix)
        last["hubs"] = presence_of(*hubs)
        if last["redis"] != last["hubs"]:
            return False
        try:
            counts = [await hub.global_count() for hub in hubs]
        except BackendUnavailable:
            return False
        last["counts"] = counts
        return counts == [total] * len(hubs)

    try:
        await eventually(exact, timeout=10.0, what="Redis holds exactly the hubs' presence")
    except AssertionError:
        assert last["redis"] == last["hubs"]
        raise


Make = Callable[..., Awaitable[Hub]]


async def populate(make_hub: Make, count: int) -> tuple[Hub, Hub, list[HubClient]]:
    """Two processes; ``count`` connections on the first, each in two rooms, with users,
    and one on the second in ``lobby``."""
    first, second = await make_hub(), await make_hub()
    clients = [HubClient(first, f"a{n}") for n in range(count)]
    for client in clients:
        first.join(client.id, "lobby")
        first.join(client.id, f"room-{client.id}")
        first.set_user(client.id, {"name": client.id})
    HubClient(second, "b0")
    second.join("b0", "lobby")
    await settled(first, second)
    return first, second, clients


async def test_presence_writes_lost_in_flight_leave_no_ghosts(make_hub, masters, backend_options):
    # Redis holds the writes of the disconnections (a pause), then the connection that
    # carried them is dropped, as after a timeout: Redis never runs them.
    first, second, clients = await populate(make_hub, 6)
    prefix = backend_options["prefix"]
    await converged(masters, prefix, first, second)
    for client in masters:
        await client.execute_command("CLIENT", "PAUSE", 30_000, "WRITE")
    try:
        for client in clients[:3]:
            first.unregister(client.id)
        first.leave(clients[3].id, "lobby")
        first.join(clients[4].id, "late")

        async def removals_held() -> bool:
            return bool(await held_commands(masters) - {"zadd"})

        await eventually(removals_held, what="Redis holds the presence writes")
        await kill_connections(masters)
    finally:
        await unpause(masters)
    await converged(masters, prefix, first, second)


async def test_presence_changes_while_redis_is_unreachable_leave_no_ghosts(
    make_hub, masters, backend_options
):
    # Redis keeps its data but does not answer (paused): connections leave, join and
    # arrive while the backend is down, then Redis answers again.
    first, second, clients = await populate(make_hub, 6)
    prefix = backend_options["prefix"]
    backend = first.backend
    assert isinstance(backend, RedisBackend)
    try:
        await kill_connections(masters, pause="ALL")
        await eventually(lambda: not backend.connected, what="the backend is down")
        for client in clients[:3]:
            first.unregister(client.id)
        first.leave(clients[3].id, "lobby")
        first.join(clients[4].id, "late")
        HubClient(first, "a-new")
        first.join("a-new", "lobby")
    finally:
        await unpause(masters)
    await converged(masters, prefix, first, second)
