"""The Redis backend: one hub across many processes and hosts.

Every process publishes its frames on one pub/sub channel, ``<prefix>:bus``, and
subscribes to it once, so a frame reaches each process once however many connections
it has. Each frame is prefixed with the publishing node's id, and a node ignores its
own frames (it has delivered them locally already).

Presence lives in ordinary keys (all under ``<prefix>:``):

- ``nodes``: sorted set of node ids scored by their last heartbeat (Redis ``TIME``);
- ``conns``: hash of connection id -> node id;
- ``node:<node>``: set of the connection ids of a node;
- ``room:<room>``: set of the connection ids in a room;
- ``rooms:<conn>``: set of the rooms of a connection;
- ``users``: hash of connection id -> the JSON ``user`` it set (for presence).

Every node beats every ``min(heartbeat_ttl / 3, 1)`` seconds and removes the presence of
nodes whose last beat is older than ``heartbeat_ttl`` (a worker killed without
cleaning up). A node keeps a mirror of its own presence; whenever it finds itself
missing from ``nodes`` (Redis restarted empty, or it was presumed dead after a long
pause) it writes the mirror again.

Room history lives in three keys per room, all expiring together after the room's TTL:
``hist:<room>`` (a stream whose entry ids are the offsets, ``<offset>-1``, bounded with
MAXLEN), ``hist:<room>:offset`` and ``hist:<room>:epoch``. A publication to such a room
runs one script that takes the next offset, appends to the stream and publishes
``* <offset> <epoch> <frame>`` on the bus for every node, the publisher included: every
node delivers the room's publications in the order Redis gave them offsets.

All writes go through one queue drained by one writer task, in order, batched into
pipelines, so the hub's calls (``publish``, ``connection_added``...) never wait for
Redis. When Redis is unreachable, frames are dropped and counted (``publish_failed``)
and logged, presence writes are skipped (the mirror is written again on reconnection),
and the backend reconnects with exponential backoff.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any

from ...errors import BackendUnavailable, ConfigurationError, MissingDependency
from ._redis_scripts import PUBLISH, READ, Publication
from .base import Deliver, HistoryRead, HubBackend, cancel_and_wait

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisError
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependency(
        "the Redis hub backend needs the 'redis' package: pip install 'bocadillo[redis]'"
    ) from exc

__all__ = ["RedisBackend"]

logger = logging.getLogger("bocadillo.hub.redis")

#: Errors that mean "Redis is unreachable or misbehaving": reconnect and carry on.
_FAILURES = (RedisError, OSError, asyncio.TimeoutError)
#: Queries (history reads, counts, members...) in flight at once; the others wait for
#: one to finish. redis-py's pool holds 100 connections and fails a command beyond them,
#: and the bus, the writer and the heartbeat need theirs.
MAX_CONCURRENT_QUERIES = 64

_Op = tuple[str | bytes, ...]  # a presence command, e.g. ("SADD", key, member)


def new_epoch() -> str:
    """A new random epoch for a room's stream (no spaces: it travels in bus messages)."""
    return secrets.token_urlsafe(6)


def _text(value: Any) -> str:
    """A member or key as returned by redis-py (``bytes``) as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBackend(HubBackend):
    keeps_history = True

    """A hub backend on Redis pub/sub and presence keys.

    Args:
        url: ``redis://[:password@]host:port/db`` or ``rediss://`` for TLS.
        prefix: Prefix of the channel and every key; apps sharing one Redis must use
            different prefixes.
        heartbeat_ttl: Seconds after which a silent node is presumed dead and its
            connections and room memberships are removed.
        publish_queue: Frames waiting for Redis beyond which new ones are dropped.
        backoff: ``(first, max)`` reconnection delays in seconds (doubling, jittered).
    """

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bocadillo",
        heartbeat_ttl: float = 15.0,
        publish_queue: int = 10_000,
        backoff: tuple[float, float] = (0.1, 5.0),
    ) -> None:
        if heartbeat_ttl <= 0:
            raise ConfigurationError("hub_heartbeat_ttl must be a positive number of seconds")
        if not prefix:
            raise ConfigurationError("hub_prefix must not be empty")
        self.url = url
        self.prefix = prefix
        self.heartbeat_ttl = float(heartbeat_ttl)
        self.heartbeat_interval = min(self.heartbeat_ttl / 3, 1.0)
        self.publish_queue = publish_queue
        self.backoff = backoff
        #: This process's id on the bus and in the presence keys.
        self.node = secrets.token_hex(8)
        self.channel = f"{prefix}:bus"
        self._tag = self.node.encode("ascii") + b" "
        self._deliver: Deliver | None = None
        self._client: aioredis.Redis | None = None
        self._queue: deque[bytes | _Op | Publication] = deque()
        self._frames_queued = 0
        self._in_flight = 0
        self._wakeup: asyncio.Event | None = None
        self._resync = True
        self._up = False
        self._stopping = False
        self._supervisor: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._stop_event: asyncio.Event | None = None
        self._queries: asyncio.Semaphore | None = None
        self._connected: asyncio.Event | None = None
        #: Connection id -> rooms, for the connections of this process.
        self._local: dict[str, set[str]] = {}
        #: Connection id -> JSON user, for the connections of this process that set one.
        self._users: dict[str, bytes] = {}
        self._lost_in_outage = 0
        self._counters = {
            "published": 0,
            "publish_failed": 0,
            "received": 0,
            "reconnects": 0,
            "resyncs": 0,
            "dead_nodes_removed": 0,
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBackend:
        known = {"prefix", "heartbeat_ttl", "publish_queue", "backoff"}
        return cls(url, **{k: v for k, v in options.items() if k in known})

    # Keys ------------------------------------------------------------------------------------

    def _key(self, *parts: str) -> str:
        return ":".join((self.prefix, *parts))

    # Lifecycle -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether Redis is reachable right now (as far as the last command knows)."""
        return self._up

    async def start(self, deliver: Deliver) -> None:
        """Connect (waiting up to a few seconds) and keep the connection alive.

        If Redis cannot be reached now, the app starts anyway: local delivery works,
        the failure is logged, and the backend keeps trying in the background.
        """
        self._deliver = deliver
        self._stopping = False
        # Made here, on the loop that runs the app (an app may be started more than once).
        self._wakeup = asyncio.Event()
        self._connected = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._queries = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5.0)
        if not self._up:
            logger.error("Redis at %s is unreachable; retrying in the background", self.url)

    async def stop(self) -> None:
        """Flush queued frames, remove this node's presence and disconnect."""
        was_up = self._up
        if was_up and self._client is not None:
            with contextlib.suppress(*_FAILURES):
                await asyncio.wait_for(self._flush(self._client), 2.0)
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        # The loops hold no resources: cancelling them is safe; the supervisor then
        # closes the connections itself, and is only cancelled if it hangs.
        await cancel_and_wait(self._tasks)
        supervisor, self._supervisor = self._supervisor, None
        if supervisor is not None:
            await asyncio.wait({supervisor}, timeout=10.0)
            await cancel_and_wait([supervisor])
        if was_up:
            # With the heartbeat stopped, nothing can write this node back.
            client = self._new_client()
            try:
                with contextlib.suppress(*_FAILURES):
                    await asyncio.wait_for(self._remove_node(client, self.node), 2.0)
            finally:
                with contextlib.suppress(Exception):
                    await client.aclose()
        self._local.clear()
        self._users.clear()

    def _new_client(self) -> aioredis.Redis:
        # No retries inside redis-py: a failure surfaces here and we reconnect ourselves.
        client = aioredis.Redis.from_url(
            self.url,
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
        )
        # Loaded on first use (and again after Redis lost them, on NOSCRIPT).
        self._publish_script = client.register_script(PUBLISH)
        self._read_script = client.register_script(READ)
        return client

    async def _supervise(self) -> None:
        """Connect, run the writer/subscriber/heartbeat, and reconnect when they fail."""
        delay = self.backoff[0]
        first = True
        while not self._stopping:
            client = self._new_client()
            pubsub = client.pubsub()
            try:
                await client.ping()
                await pubsub.subscribe(self.channel)
                await self._serve(client, pubsub, reconnected=not first)
                first = False
                delay = self.backoff[0]
            except _FAILURES as exc:
                if self._up or first:
                    logger.warning("Redis at %s failed: %r; reconnecting", self.url, exc)
                first = False
            finally:
                self._down()
                await cancel_and_wait(self._tasks)
                self._client = None
                for resource in (pubsub, client):
                    with contextlib.suppress(Exception):
                        await resource.aclose()
            if self._stopping:
                break
            assert self._stop_event is not None
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._stop_event.wait(), delay * random.uniform(0.5, 1))
            delay = min(delay * 2, self.backoff[1])

    async def _serve(self, client: aioredis.Redis, pubsub: Any, *, reconnected: bool) -> None:
        """Run the loops on a fresh connection until one of them fails."""
        self._client = client
        self._up = True
        self._resync = True
        if reconnected:
            self._counters["reconnects"] += 1
            logger.warning(
                "reconnected to Redis; %d frames were lost while it was unreachable",
                self._lost_in_outage,
            )
        self._lost_in_outage = 0
        self._signal(self._wakeup)
        self._signal(self._connected)
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self._write(client)),
            loop.create_task(self._subscribe(pubsub)),
            loop.create_task(self._beat(client)),
        ]
        done, _ = await asyncio.wait(self._tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in done:
            if not task.cancelled():
                task.result()  # re-raise the failure

    def _down(self) -> None:
        """Redis is unreachable: drop queued frames (counted) and presence writes."""
        self._up = False
        if self._connected is not None:
            self._connected.clear()
        lost = self._frames_queued
        self._queue.clear()
        self._frames_queued = 0
        self._lose(lost)

    def _lose(self, count: int) -> None:
        if count:
            self._counters["publish_failed"] += count
            if self._lost_in_outage == 0:
                logger.warning("Redis is unreachable: frames for other processes are lost")
            self._lost_in_outage += count

    # The writer ------------------------------------------------------------------------------

    def _enqueue(self, item: bytes | _Op | Publication) -> None:
        if not self._up:
            return  # presence is rewritten from the mirror on reconnection
        self._queue.append(item)
        self._signal(self._wakeup)

    @staticmethod
    def _signal(event: asyncio.Event | None) -> None:
        if event is not None:
            event.set()

    async def _write(self, client: aioredis.Redis) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while not self._stopping:
            await wakeup.wait()
            wakeup.clear()
            if self._resync:
                self._resync = False
                await self._write_presence(client)
            await self._flush(client)

    async def _flush(self, client: aioredis.Redis) -> None:
        """Send everything queued, in order, in pipelines."""
        while self._queue:
            batch: list[bytes | _Op | Publication] = []
            while self._queue and len(batch) < 1000:
                batch.append(self._queue.popleft())
            frames = sum(1 for item in batch if not isinstance(item, tuple))
            self._frames_queued -= frames
            self._in_flight = len(batch)
            pipe: Any = client.pipeline(transaction=False)
            for item in batch:
                if isinstance(item, bytes):
                    pipe.publish(self.channel, item)
                elif isinstance(item, Publication):
                    await self._publish_script(
                        keys=self._history_keys(item.room),
                        args=[item.frame, item.size, item.ttl_ms, new_epoch(), self.channel],
                        client=pipe,
                    )
                else:
                    pipe.execute_command(*item)
            try:
                await pipe.execute()
            except BaseException:
                # Failed, or cancelled because another loop failed: either way these
                # frames may not have reached Redis. Counted as lost (at most once).
                self._lose(frames)
                raise
            finally:
                self._in_flight = 0
            self._counters["published"] += frames

    async def _write_presence(self, client: aioredis.Redis) -> None:
        """Replace this node's presence in Redis by the mirror, in one transaction."""
        stale = await self._presence_of(client, self.node)
        now = await self._now(client)
        local = {conn_id: set(rooms) for conn_id, rooms in self._local.items()}
        pipe: Any = client.pipeline(transaction=True)
        self._queue_removal(pipe, stale)
        pipe.zadd(self._key("nodes"), {self.node: now})
        if local:
            pipe.hset(self._key("conns"), mapping=dict.fromkeys(local, self.node))
            pipe.sadd(self._key("node", self.node), *local)
        for conn_id, rooms in local.items():
            if rooms:
                pipe.sadd(self._key("rooms", conn_id), *rooms)
            for room in rooms:
                pipe.sadd(self._key("room", room), conn_id)
        users = {conn_id: user for conn_id, user in self._users.items() if conn_id in local}
        if users:
            pipe.hset(self._key("users"), mapping=users)
        await pipe.execute()
        self._counters["resyncs"] += 1

    async def _presence_of(self, client: aioredis.Redis, node: str) -> dict[str, set[str]]:
        """The connections of ``node`` in Redis, with their rooms."""
        members = await client.smembers(self._key("node", node))
        conn_ids = [_text(c) for c in members]
        if not conn_ids:
            return {}
        pipe: Any = client.pipeline(transaction=False)
        for conn_id in conn_ids:
            pipe.smembers(self._key("rooms", conn_id))
        rooms_of = await pipe.execute()
        return {
            conn_id: {_text(room) for room in rooms}
            for conn_id, rooms in zip(conn_ids, rooms_of, strict=True)
        }

    def _queue_removal(self, pipe: Any, presence: dict[str, set[str]]) -> None:
        for conn_id, rooms in presence.items():
            for room in rooms:
                pipe.srem(self._key("room", room), conn_id)
            pipe.delete(self._key("rooms", conn_id))
            pipe.hdel(self._key("conns"), conn_id)
            pipe.hdel(self._key("users"), conn_id)

    async def _remove_node(self, client: aioredis.Redis, node: str) -> None:
        """Remove ``node`` and the presence of its connections, in one transaction."""
        presence = await self._presence_of(client, node)
        pipe: Any = client.pipeline(transaction=True)
        self._queue_removal(pipe, presence)
        pipe.delete(self._key("node", node))
        pipe.zrem(self._key("nodes"), node)
        await pipe.execute()

    @staticmethod
    async def _now(client: aioredis.Redis) -> float:
        """The Redis server's clock: one clock for every host."""
        seconds, micros = await client.time()
        return seconds + micros / 1e6

    # The subscriber and the heartbeat --------------------------------------------------------

    async def _subscribe(self, pubsub: Any) -> None:
        tag = self._tag
        while not self._stopping:
            message = await pubsub.get_message(ignore_subscribe_messages=True, timeout=1.0)
            if message is None or message["type"] != "message":
                continue
            data: bytes = message["data"]
            if data.startswith(b"* "):
                self._publication(data)
                continue
            if data.startswith(tag):
                continue  # our own frame: delivered locally already
            _, _, frame = data.partition(b" ")
            self._counters["received"] += 1
            assert self._deliver is not None
            try:
                self._deliver(frame)
            except Exception:  # one bad frame must not stop the bus
                logger.exception("delivering a frame from the bus failed")

    def _publication(self, data: bytes) -> None:
        """``* <offset> <epoch> <frame>``: a publication to a room with history."""
        _, offset, epoch, frame = data.split(b" ", 3)
        self._counters["received"] += 1
        sink = self.publication_sink
        if sink is None:
            return
        try:
            sink(int(offset), epoch.decode("ascii"), frame)
        except Exception:  # one bad frame must not stop the bus
            logger.exception("delivering a publication from the bus failed")

    async def _beat(self, client: aioredis.Redis) -> None:
        while not self._stopping:
            now = await self._now(client)
            added = await client.zadd(self._key("nodes"), {self.node: now})
            if added:
                # We were missing: Redis lost its data, or presumed us dead.
                self._resync = True
                self._signal(self._wakeup)
            dead = await client.zrangebyscore(self._key("nodes"), "-inf", now - self.heartbeat_ttl)
            for node in dead:
                name = _text(node)
                if name != self.node:
                    await self._remove_node(client, name)
                    self._counters["dead_nodes_removed"] += 1
                    logger.info("removed the presence of dead node %s", name)
            await asyncio.sleep(self.heartbeat_interval)

    # The hub's side --------------------------------------------------------------------------

    def publish(self, frame: bytes) -> None:
        if not self._up:
            self._lose(1)
            return
        if self._frames_queued >= self.publish_queue:
            self._lose(1)
            return
        self._frames_queued += 1
        self._enqueue(self._tag + frame)

    def publish_history(self, room: str, frame: bytes, size: int, ttl: float) -> None:
        if not self._up or self._frames_queued >= self.publish_queue:
            self._lose(1)
            return
        self._frames_queued += 1
        self._enqueue(Publication(room, frame, size, max(int(ttl * 1000), 1)))

    async def read_history(self, room: str, since: int, ttl: float, size: int) -> HistoryRead:
        ttl_ms = max(int(ttl * 1000), 1)
        reply: list[Any] = await self._query(
            lambda c: self._read_script(
                keys=self._history_keys(room), args=[since + 1, new_epoch(), ttl_ms], client=c
            )
        )
        epoch, offset, entries, seconds, micros = reply
        now_ms = int(seconds) * 1000 + int(micros) // 1000
        kept: list[tuple[int, float, bytes]] = []
        for entry_id, fields in entries:
            values = dict(zip(fields[::2], fields[1::2], strict=True))
            written = int(values[b"t"])
            if now_ms - written < ttl_ms:
                kept.append((int(_text(entry_id).partition("-")[0]), written / 1000, values[b"f"]))
        return _text(epoch), int(offset), kept

    def _history_keys(self, room: str) -> list[str]:
        stream = self._key("hist", room)
        return [stream, f"{stream}:offset", f"{stream}:epoch"]

    def connection_added(self, conn_id: str) -> None:
        self._local[conn_id] = set()
        self._enqueue(("HSET", self._key("conns"), conn_id, self.node))
        self._enqueue(("SADD", self._key("node", self.node), conn_id))

    def connection_removed(self, conn_id: str) -> None:
        rooms = self._local.pop(conn_id, set())
        for room in rooms:
            self._enqueue(("SREM", self._key("room", room), conn_id))
        self._enqueue(("DEL", self._key("rooms", conn_id)))
        self._enqueue(("SREM", self._key("node", self.node), conn_id))
        self._enqueue(("HDEL", self._key("conns"), conn_id))
        if self._users.pop(conn_id, None) is not None:
            self._enqueue(("HDEL", self._key("users"), conn_id))

    def user_set(self, conn_id: str, user: bytes | None) -> None:
        if conn_id not in self._local:
            return
        if user is None:
            if self._users.pop(conn_id, None) is not None:
                self._enqueue(("HDEL", self._key("users"), conn_id))
            return
        self._users[conn_id] = user
        self._enqueue(("HSET", self._key("users"), conn_id, user))

    def room_joined(self, conn_id: str, room: str) -> None:
        rooms = self._local.get(conn_id)
        if rooms is None or room in rooms:
            return
        rooms.add(room)
        self._enqueue(("SADD", self._key("room", room), conn_id))
        self._enqueue(("SADD", self._key("rooms", conn_id), room))

    def room_left(self, conn_id: str, room: str) -> None:
        rooms = self._local.get(conn_id)
        if rooms is None or room not in rooms:
            return
        rooms.discard(room)
        self._enqueue(("SREM", self._key("room", room), conn_id))
        self._enqueue(("SREM", self._key("rooms", conn_id), room))

    # Queries ---------------------------------------------------------------------------------

    async def _query(self, command: Callable[[aioredis.Redis], Awaitable[Any]]) -> Any:
        client = self._client
        if client is None or not self._up:
            raise BackendUnavailable(f"Redis at {self.url} is unreachable")
        queries = self._queries
        try:
            if queries is None:
                return await command(client)
            async with queries:  # each one bounded by the socket timeout
                return await command(client)
        except _FAILURES as exc:
            raise BackendUnavailable(f"Redis at {self.url} failed: {exc!r}") from exc

    async def connection_count(self) -> int:
        count: int = await self._query(lambda c: c.hlen(self._key("conns")))
        return count

    async def room_members(self, room: str) -> set[str]:
        members: Iterable[bytes] = await self._query(lambda c: c.smembers(self._key("room", room)))
        return {_text(m) for m in members}

    async def rooms_of(self, conn_id: str) -> set[str]:
        rooms: Iterable[bytes] = await self._query(
            lambda c: c.smembers(self._key("rooms", conn_id))
        )
        return {_text(r) for r in rooms}

    async def users(self, conn_ids: list[str]) -> list[bytes | None]:
        if not conn_ids:
            return []
        found: list[bytes | None] = await self._query(
            lambda c: c.hmget(self._key("users"), conn_ids)
        )
        return found

    def stats(self) -> dict[str, int]:
        return {
            **self._counters,
            "connected": int(self._up),
            # Frames and presence writes not yet acknowledged by Redis.
            "queued": len(self._queue) + self._in_flight,
        }
