"""The Redis backend: one hub across many processes and hosts.

Frames go where they are needed, on pub/sub channels (the names, and the hash tags that
make them ready for Redis Cluster, are in ``_redis_layout.py``):

- a frame for everyone goes on ``<prefix>:bus``, which every process subscribes to;
- a frame for a room goes on the room's channel, which a process subscribes to while it
  has a member in the room (the hub says when: ``subscribe``/``unsubscribe``);
- a frame for some connections goes to the inbox of the process holding each of them,
  found in Redis: connections of one partition by one script (``DIRECT``), which reads
  the partition's ``conns`` hash and publishes once to each node found; connections of
  several partitions by reading their nodes first (``HMGET`` per partition), then
  publishing once per node. Each process subscribes to its inbox in every partition.

Each frame is prefixed with the publishing node's id, and a node ignores its own frames
(it has delivered them locally already). Subscribing to a room waits for Redis's
confirmation before this node's membership of the room is written: once a member shows
in presence, its process receives the room's frames.

Presence lives in ordinary keys: the heartbeats of the nodes, each node's connection
ids, each connection's node, rooms and user, and each room's members.

Every node beats every ``min(heartbeat_ttl / 3, 1)`` seconds and removes the presence of
nodes whose last beat is older than ``heartbeat_ttl`` (a worker killed without
cleaning up). A node keeps a mirror of its own presence; whenever it finds itself
missing from ``nodes`` (Redis restarted empty, or it was presumed dead after a long
pause) it writes the mirror again.

Room history lives in three keys per room, all expiring together after the room's TTL:
a stream whose entry ids are the offsets (``<offset>-1``, bounded with MAXLEN), the last
offset and the epoch. A publication to such a room runs one script that takes the next
offset, appends to the stream and publishes ``* <offset> <epoch> <frame>`` on the room's
channel, for every node subscribed to it, the publisher included: every node delivers
the room's publications in the order Redis gave them offsets.

All writes go through one queue drained by one writer task, in order, batched into
pipelines, so the hub's calls (``publish``, ``connection_added``...) never wait for
Redis. When Redis is unreachable, frames are dropped and counted (``publish_failed``)
and logged, presence writes are skipped (the mirror is written again on reconnection),
and the backend reconnects with exponential backoff, subscribing again to everything
it needs: everyone's channel, its inboxes and the room of each local member.
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
from ._redis_layout import DEFAULT_PARTITIONS, Layout
from ._redis_scripts import DIRECT, PUBLISH, READ, Direct, Message, Publication
from .base import Deliver, HistoryRead, HubBackend, Route, cancel_and_wait

try:
    import redis.asyncio as aioredis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import RedisClusterException, RedisError
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependency(
        "the Redis hub backend needs the 'redis' package: pip install 'bocadillo[redis]'"
    ) from exc

__all__ = ["RedisBackend"]

logger = logging.getLogger("bocadillo.hub.redis")

#: Errors that mean "Redis is unreachable or misbehaving": reconnect and carry on. A
#: cluster client raises ``RedisClusterException``, which is not a ``RedisError``, when no
#: node it knows answers (every node of the cluster restarting, say).
_FAILURES = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)
#: Queries (history reads, counts, members...) in flight at once; the others wait for
#: one to finish. redis-py's pool holds 100 connections and fails a command beyond them,
#: and the bus, the writer and the heartbeat need theirs.
MAX_CONCURRENT_QUERIES = 64
#: Channels named in one SUBSCRIBE or UNSUBSCRIBE command.
_CHANNELS_PER_COMMAND = 1000
#: Seconds Redis may take to confirm subscriptions before the connection is deemed lost.
_CONFIRM_TIMEOUT = 5.0
#: Seconds ``start`` waits for Redis before the app starts without it.
_START_TIMEOUT = 5.0

_Op = tuple[str | bytes, ...]  # a presence command, e.g. ("SADD", key, member)
#: A plain Redis client, or a Redis Cluster client (``redis_cluster.py``): what the writer,
#: the heartbeat and the queries use is common to both.
Client = aioredis.Redis | aioredis.RedisCluster
_Item = _Op | Message | Direct | Publication


def new_epoch() -> str:
    """A new random epoch for a room's stream (no spaces: it travels in bus messages)."""
    return secrets.token_urlsafe(6)


def _text(value: Any) -> str:
    """A member or key as returned by redis-py (``bytes``) as ``str``."""
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisBackend(HubBackend):
    """A hub backend on Redis pub/sub and presence keys.

    Args:
        url: ``redis://[:password@]host:port/db`` or ``rediss://`` for TLS.
        prefix: Prefix of the channels and every key; apps sharing one Redis must use
            different prefixes. No ``{`` or ``}``.
        heartbeat_ttl: Seconds after which a silent node is presumed dead and its
            connections and room memberships are removed.
        publish_queue: Frames waiting for Redis beyond which new ones are dropped.
        backoff: ``(first, max)`` reconnection delays in seconds (doubling, jittered).
        partitions: How many partitions rooms and connections are hashed into (see
            ``_redis_layout.py``); the same in every process of the app.

    Raises:
        ConfigurationError: for a bad option.
    """

    keeps_history = True
    routed = True
    #: How frames are published (``SPUBLISH`` on a cluster).
    publish_command = "PUBLISH"

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bocadillo",
        heartbeat_ttl: float = 15.0,
        publish_queue: int = 10_000,
        backoff: tuple[float, float] = (0.1, 5.0),
        partitions: int = DEFAULT_PARTITIONS,
    ) -> None:
        if heartbeat_ttl <= 0:
            raise ConfigurationError("hub_heartbeat_ttl must be a positive number of seconds")
        #: The names of the keys and channels.
        self.layout = Layout(prefix, partitions)
        self.url = url
        self.prefix = prefix
        self.heartbeat_ttl = float(heartbeat_ttl)
        self.heartbeat_interval = min(self.heartbeat_ttl / 3, 1.0)
        self.publish_queue = publish_queue
        self.backoff = backoff
        #: This process's id on the bus and in the presence keys.
        self.node = secrets.token_hex(8)
        #: The channel of the frames for every process.
        self.channel = self.layout.everyone
        self._tag = self.node.encode("ascii") + b" "
        self._everyone = self.channel.encode()
        self._inboxes = frozenset(c.encode() for c in self.layout.inboxes(self.node))
        self._deliver: Deliver | None = None
        self._client: Client | None = None
        self._queue: deque[_Item] = deque()
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
        # Room subscriptions: the rooms the hub subscribed to; those changed since the
        # writer last looked; those subscribed on the current pub/sub connection; and
        # Redis's confirmations: channels with (un)subscriptions not yet confirmed, by
        # count, and channels confirmed subscribed.
        self._rooms: set[str] = set()
        self._changes: set[str] = set()
        self._sent: set[str] = set()
        self._pending: dict[bytes, int] = {}
        self._confirmed: set[bytes] = set()
        self._confirmation: asyncio.Future[None] | None = None
        self._lost_in_outage = 0
        self._counters = {
            "published": 0,
            "publish_failed": 0,
            "received": 0,
            # Every message read from Redis (this node's own included), by the kind of
            # channel it came on, and their bytes: what this process pays for the bus.
            "received_frames": 0,
            "received_frames_everyone": 0,
            "received_frames_room": 0,
            "received_frames_node": 0,
            "received_bytes": 0,
            "reconnects": 0,
            "resyncs": 0,
            "dead_nodes_removed": 0,
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisBackend:
        known = {"prefix", "heartbeat_ttl", "publish_queue", "backoff", "partitions"}
        return cls(url, **{k: v for k, v in options.items() if k in known})

    # Lifecycle -------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """Whether Redis is reachable right now (as far as the last command knows)."""
        return self._up

    async def start(self, deliver: Deliver) -> None:
        """Connect (waiting up to 5 seconds) and keep the connection alive.

        If Redis cannot be reached now, the app starts anyway: local delivery works,
        the failure is logged, and the backend keeps trying in the background.
        """
        self._launch(deliver)
        await self._wait_started(_START_TIMEOUT)

    def _launch(self, deliver: Deliver) -> None:
        """Start the supervisor, which connects and reconnects."""
        self._deliver = deliver
        self._stopping = False
        # Made here, on the loop that runs the app (an app may be started more than once).
        self._wakeup = asyncio.Event()
        self._connected = asyncio.Event()
        self._stop_event = asyncio.Event()
        self._queries = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)
        self._supervisor = asyncio.get_running_loop().create_task(self._supervise())

    async def _wait_started(self, timeout: float) -> None:
        """Wait up to ``timeout`` seconds for the first connection; log if none."""
        assert self._connected is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), timeout)
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
        self._rooms.clear()
        self._changes.clear()

    def _new_client(self) -> Client:
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
        self._direct_script = client.register_script(DIRECT)
        return client

    async def _supervise(self) -> None:
        """Connect, run the writer/subscriber/heartbeat, and reconnect when they fail."""
        delay = self.backoff[0]
        first = True
        while not self._stopping:
            client = self._new_client()
            pubsub: Any = None
            try:
                pubsub = await self._open_bus(client)
                await self._serve(client, pubsub, reconnected=not first)
                first = False
                delay = self.backoff[0]
            except _FAILURES as exc:
                if self._up or first:
                    logger.warning("Redis at %s failed: %r; reconnecting", self.url, exc)
                first = False
            except Exception:  # a bug here must not end the connection for good
                logger.exception("the Redis backend failed; reconnecting")
                first = False
            finally:
                # A connection that came up and then failed starts the backoff again.
                if self._up:
                    delay = self.backoff[0]
                self._down()
                await cancel_and_wait(self._tasks)
                self._client = None
                with contextlib.suppress(Exception):
                    await self._close_bus(pubsub)
                with contextlib.suppress(Exception):
                    await client.aclose()
            if self._stopping:
                break
            await self._pause(delay)
            delay = min(delay * 2, self.backoff[1])

    async def _pause(self, delay: float) -> None:
        """Wait between ``delay / 2`` and ``delay`` seconds (jittered, so that the
        processes of an app do not all reconnect at once), or until the backend stops."""
        assert self._stop_event is not None
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop_event.wait(), delay * random.uniform(0.5, 1))

    async def _open_bus(self, client: Client) -> Any:
        """Check ``client``'s connection, and subscribe a new pub/sub connection to
        everyone's channel and this node's inboxes; returned for the writer (room
        subscriptions) and the reader."""
        await client.ping()
        pubsub = client.pubsub()
        try:
            channels = [self.channel, *self.layout.inboxes(self.node)]
            for start in range(0, len(channels), _CHANNELS_PER_COMMAND):
                await pubsub.subscribe(*channels[start : start + _CHANNELS_PER_COMMAND])
        except BaseException:
            with contextlib.suppress(Exception):
                await pubsub.aclose()
            raise
        return pubsub

    async def _close_bus(self, pubsub: Any) -> None:
        """Close what ``_open_bus`` returned (``None`` if it failed)."""
        if pubsub is not None:
            await pubsub.aclose()

    async def _serve(self, client: Client, pubsub: Any, *, reconnected: bool) -> None:
        """Run the loops on a fresh connection until one of them fails."""
        self._client = client
        self._up = True
        self._resync = True
        # A new pub/sub connection: subscribe to every room again.
        self._forget_subscriptions()
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
            loop.create_task(self._write(client, pubsub)),
            loop.create_task(self._read(pubsub)),
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
        self._forget_subscriptions()

    def _forget_subscriptions(self) -> None:
        """No room is subscribed on the pub/sub connection (it is new, or lost)."""
        self._sent.clear()
        self._pending.clear()
        self._confirmed.clear()
        self._changes = set(self._rooms)
        self._notify()

    def _lose(self, count: int) -> None:
        if count:
            self._counters["publish_failed"] += count
            if self._lost_in_outage == 0:
                logger.warning("Redis is unreachable: frames for other processes are lost")
            self._lost_in_outage += count

    # The writer ------------------------------------------------------------------------------

    def _enqueue(self, item: _Item) -> None:
        if not self._up:
            return  # presence is rewritten from the mirror on reconnection
        self._queue.append(item)
        self._signal(self._wakeup)

    @staticmethod
    def _signal(event: asyncio.Event | None) -> None:
        if event is not None:
            event.set()

    async def _write(self, client: Client, pubsub: Any) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while not self._stopping:
            await wakeup.wait()
            wakeup.clear()
            # Subscriptions first: a membership is written once its room is subscribed.
            await self._subscribe_first(pubsub)
            if self._resync:
                self._resync = False
                await self._write_presence(client, pubsub)
            await self._flush(client, pubsub)

    async def _subscribe_first(self, pubsub: Any) -> None:
        """Subscribe to every room joined so far (and leave those left). The caller reads
        the memberships to write right after, with nothing awaited in between: rooms
        joined while this awaited Redis are subscribed too before it returns."""
        while self._changes:
            await self._sync_subscriptions(pubsub)

    async def _flush(self, client: Client, pubsub: Any = None) -> None:
        """Send everything queued, in order, in pipelines (each batch once the rooms
        joined so far are subscribed, given ``pubsub``)."""
        layout = self.layout
        while self._queue:
            if pubsub is not None:
                await self._subscribe_first(pubsub)
            batch: list[_Item] = []
            while self._queue and len(batch) < 1000:
                batch.append(self._queue.popleft())
            frames = sum(1 for item in batch if type(item) is not tuple)
            self._frames_queued -= frames
            self._in_flight = len(batch)
            try:
                nodes = await self._nodes_of(client, batch)
                pipe: Any = client.pipeline(transaction=False)
                for item in batch:
                    if type(item) is tuple:
                        pipe.execute_command(*item)
                    elif isinstance(item, Message):
                        pipe.execute_command(self.publish_command, item.channel, item.data)
                    elif isinstance(item, Direct):
                        partition = item.partition
                        if partition is None:
                            found = {nodes[c] for c in item.conns if c in nodes}
                            for node in sorted(found):
                                pipe.execute_command(
                                    self.publish_command, layout.home(node), item.data
                                )
                        else:
                            await self._direct_script(
                                keys=[layout.conns(partition)],
                                args=[layout.inbox_prefix(partition), item.data, *item.conns],
                                client=pipe,
                            )
                    elif isinstance(item, Publication):
                        await self._publish_script(
                            keys=layout.history(item.room),
                            args=[
                                item.frame,
                                item.size,
                                item.ttl_ms,
                                new_epoch(),
                                layout.room_channel(item.room),
                            ],
                            client=pipe,
                        )
                await pipe.execute()
            except BaseException:
                # Failed, or cancelled because another loop failed: either way these
                # frames may not have reached Redis. Counted as lost (at most once).
                self._lose(frames)
                raise
            finally:
                self._in_flight = 0
            self._counters["published"] += frames

    async def _nodes_of(self, client: Client, batch: list[_Item]) -> dict[str, str]:
        """The node of each connection of ``batch``'s messages to connections of several
        partitions (one ``HMGET`` per partition, in one round trip)."""
        wanted: dict[int, set[str]] = {}
        layout = self.layout
        for item in batch:
            if isinstance(item, Direct) and item.partition is None:
                for conn_id in item.conns:
                    wanted.setdefault(layout.partition(conn_id), set()).add(conn_id)
        if not wanted:
            return {}
        pipe: Any = client.pipeline(transaction=False)
        asked: list[list[str]] = []
        for partition, conn_ids in wanted.items():
            ids = sorted(conn_ids)
            asked.append(ids)
            pipe.hmget(layout.conns(partition), ids)
        nodes: dict[str, str] = {}
        for ids, found in zip(asked, await pipe.execute(), strict=True):
            for conn_id, node in zip(ids, found, strict=True):
                if node is not None:
                    nodes[conn_id] = _text(node)
        return nodes

    # Room subscriptions ----------------------------------------------------------------------

    async def _sync_subscriptions(self, pubsub: Any) -> None:
        """Subscribe to the rooms the hub subscribed to since the last call, unsubscribe
        from those it left, and wait for Redis to confirm the subscriptions.

        Raises:
            asyncio.TimeoutError: if Redis does not confirm in time (the connection is
                then deemed lost).
        """
        if not self._changes:
            return
        changed, self._changes = self._changes, set()
        rooms, sent = self._rooms, self._sent
        gone = [room for room in changed if room not in rooms and room in sent]
        new = [room for room in changed if room in rooms and room not in sent]
        channel = self.layout.room_channel
        if gone:
            sent.difference_update(gone)
            await self._command(pubsub.unsubscribe, [channel(room).encode() for room in gone])
        if new:
            sent.update(new)
            channels = [(room, channel(room).encode()) for room in new]
            await self._command(pubsub.subscribe, [c for _, c in channels])
            await self._until(
                lambda: all(room not in rooms or self._settled(c) for room, c in channels),
                _CONFIRM_TIMEOUT,
            )

    async def _command(self, command: Callable[..., Awaitable[Any]], channels: list[bytes]) -> None:
        """(Un)subscribe ``channels``, counting the confirmations Redis owes."""
        pending = self._pending
        for channel in channels:
            pending[channel] = pending.get(channel, 0) + 1
        for start in range(0, len(channels), _CHANNELS_PER_COMMAND):
            await command(*channels[start : start + _CHANNELS_PER_COMMAND])

    def _confirmed_by_redis(self, subscribed: bool, channel: bytes) -> None:
        """Redis confirmed a SUBSCRIBE (``subscribed``) or an UNSUBSCRIBE of ``channel``."""
        count = self._pending.get(channel)
        if count is not None:
            if count > 1:
                self._pending[channel] = count - 1
            else:
                del self._pending[channel]
        if subscribed:
            self._confirmed.add(channel)
        else:
            self._confirmed.discard(channel)
        self._notify()

    def _settled(self, channel: bytes) -> bool:
        """Whether ``channel`` is subscribed, with no change of it still unconfirmed."""
        return channel not in self._pending and channel in self._confirmed

    def _notify(self) -> None:
        """Wake everyone waiting in ``_until`` (they check their condition again)."""
        waiter, self._confirmation = self._confirmation, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def _until(self, done: Callable[[], bool], timeout: float) -> None:
        """Wait until ``done()``, checked at each confirmation from Redis.

        Raises:
            asyncio.TimeoutError: after ``timeout`` seconds.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not done():
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            waiter = self._confirmation
            if waiter is None:  # shared by every waiter until the next confirmation
                waiter = self._confirmation = loop.create_future()
            await asyncio.wait({waiter}, timeout=remaining)

    async def _write_presence(self, client: Client, pubsub: Any) -> None:
        """Replace this node's presence in Redis by the mirror, in one transaction."""
        stale = await self._presence_of(client, self.node)
        now = await self._now(client)
        await self._subscribe_first(pubsub)
        local = {conn_id: set(rooms) for conn_id, rooms in self._local.items()}
        layout = self.layout
        # One transaction on plain Redis; on a cluster, its keys span slots.
        pipe: Any = self._transaction(client)
        self._queue_removal(pipe, stale)
        pipe.zadd(layout.nodes, {self.node: now})
        if local:
            for partition, conn_ids in self._by_partition(local).items():
                pipe.hset(layout.conns(partition), mapping=dict.fromkeys(conn_ids, self.node))
            pipe.sadd(layout.node_conns(self.node), *local)
        for conn_id, rooms in local.items():
            if rooms:
                pipe.sadd(layout.conn_rooms(conn_id), *rooms)
            for room in rooms:
                pipe.sadd(layout.room_members(room), conn_id)
        users = {conn_id: user for conn_id, user in self._users.items() if conn_id in local}
        for partition, conn_ids in self._by_partition(users).items():
            pipe.hset(layout.users(partition), mapping={c: users[c] for c in conn_ids})
        await pipe.execute()
        self._counters["resyncs"] += 1

    def _transaction(self, client: Client) -> Any:
        """A pipeline run as one transaction (on a cluster, where the keys of a node's
        presence span slots, a plain pipeline)."""
        return client.pipeline(transaction=True)

    def _by_partition(self, conn_ids: Iterable[str]) -> dict[int, list[str]]:
        """``conn_ids`` grouped by partition."""
        groups: dict[int, list[str]] = {}
        partition = self.layout.partition
        for conn_id in conn_ids:
            groups.setdefault(partition(conn_id), []).append(conn_id)
        return groups

    async def _presence_of(self, client: Client, node: str) -> dict[str, set[str]]:
        """The connections of ``node`` in Redis, with their rooms."""
        members = await client.smembers(self.layout.node_conns(node))
        conn_ids = [_text(c) for c in members]
        if not conn_ids:
            return {}
        pipe: Any = client.pipeline(transaction=False)
        for conn_id in conn_ids:
            pipe.smembers(self.layout.conn_rooms(conn_id))
        rooms_of = await pipe.execute()
        return {
            conn_id: {_text(room) for room in rooms}
            for conn_id, rooms in zip(conn_ids, rooms_of, strict=True)
        }

    def _queue_removal(self, pipe: Any, presence: dict[str, set[str]]) -> None:
        layout = self.layout
        for conn_id, rooms in presence.items():
            for room in rooms:
                pipe.srem(layout.room_members(room), conn_id)
            pipe.delete(layout.conn_rooms(conn_id))
        for partition, conn_ids in self._by_partition(presence).items():
            pipe.hdel(layout.conns(partition), *conn_ids)
            pipe.hdel(layout.users(partition), *conn_ids)

    async def _remove_node(self, client: Client, node: str) -> None:
        """Remove ``node`` and the presence of its connections, in one transaction (on
        plain Redis; on a cluster, its keys span slots)."""
        presence = await self._presence_of(client, node)
        pipe: Any = self._transaction(client)
        self._queue_removal(pipe, presence)
        pipe.delete(self.layout.node_conns(node))
        pipe.zrem(self.layout.nodes, node)
        await pipe.execute()

    async def _now(self, client: Client) -> float:
        """The Redis server's clock: one clock for every host."""
        seconds, micros = await client.time()
        return seconds + micros / 1e6

    # The subscriber and the heartbeat --------------------------------------------------------

    async def _read(self, pubsub: Any) -> None:
        received = self._received
        while not self._stopping:
            message = await pubsub.get_message(timeout=1.0)
            if message is None:
                continue
            kind = message["type"]
            if kind == "message":
                received(message["channel"], message["data"])
            elif kind == "subscribe" or kind == "unsubscribe":
                self._confirmed_by_redis(kind == "subscribe", message["channel"])

    def _received(self, channel: bytes, data: bytes) -> None:
        """A message from Redis on one of the channels this node subscribes to."""
        counters = self._counters
        counters["received_frames"] += 1
        counters["received_bytes"] += len(data)
        if channel == self._everyone:
            counters["received_frames_everyone"] += 1
        elif channel in self._inboxes:
            counters["received_frames_node"] += 1
        else:
            counters["received_frames_room"] += 1
        if data.startswith(b"* "):
            self._publication(data)
            return
        if data.startswith(self._tag):
            return  # our own frame: delivered locally already
        _, _, frame = data.partition(b" ")
        counters["received"] += 1
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

    async def _beat(self, client: Client) -> None:
        while not self._stopping:
            now = await self._now(client)
            added = await client.zadd(self.layout.nodes, {self.node: now})
            if added:
                # We were missing: Redis lost its data, or presumed us dead.
                self._resync = True
                self._signal(self._wakeup)
            dead = await client.zrangebyscore(self.layout.nodes, "-inf", now - self.heartbeat_ttl)
            for node in dead:
                name = _text(node)
                if name != self.node:
                    await self._remove_node(client, name)
                    self._counters["dead_nodes_removed"] += 1
                    logger.info("removed the presence of dead node %s", name)
            await asyncio.sleep(self.heartbeat_interval)

    # The hub's side --------------------------------------------------------------------------

    def publish(self, frame: bytes, route: Route) -> None:
        if not self._up or self._frames_queued >= self.publish_queue:
            self._lose(1)
            return
        data = self._tag + frame
        layout = self.layout
        item: Message | Direct
        conns = route.conns
        if conns is not None:
            if not conns:
                return
            first = layout.partition(conns[0])
            one = all(layout.partition(conn_id) == first for conn_id in conns[1:])
            item = Direct(conns, data, first if one else None)
        elif route.room is not None:
            item = Message(layout.room_channel(route.room), data)
        elif route.node is not None:
            item = Message(layout.home(route.node), data)
        else:
            item = Message(self.channel, data)
        self._frames_queued += 1
        self._enqueue(item)

    def publish_history(self, room: str, frame: bytes, size: int, ttl: float) -> None:
        if not self._up or self._frames_queued >= self.publish_queue:
            self._lose(1)
            return
        self._frames_queued += 1
        self._enqueue(Publication(room, frame, size, max(int(ttl * 1000), 1)))

    def subscribe(self, room: str) -> None:
        if room not in self._rooms:
            self._rooms.add(room)
            self._changes.add(room)
            self._signal(self._wakeup)

    def unsubscribe(self, room: str) -> None:
        if room in self._rooms:
            self._rooms.discard(room)
            self._changes.add(room)
            self._signal(self._wakeup)

    async def wait_subscribed(self, rooms: Iterable[str]) -> None:
        channels = [(room, self.layout.room_channel(room).encode()) for room in rooms]
        if not self._up:
            raise BackendUnavailable(f"Redis at {self.url} is unreachable")
        self._signal(self._wakeup)  # the writer subscribes
        wanted = self._rooms

        def done() -> bool:
            return not self._up or all(
                room not in wanted or self._settled(channel) for room, channel in channels
            )

        try:
            await self._until(done, _CONFIRM_TIMEOUT)
        except asyncio.TimeoutError:
            raise BackendUnavailable(f"Redis at {self.url} did not confirm in time") from None
        if not self._up:
            raise BackendUnavailable(f"Redis at {self.url} is unreachable")

    async def read_history(self, room: str, since: int, ttl: float, size: int) -> HistoryRead:
        ttl_ms = max(int(ttl * 1000), 1)
        reply: list[Any] = await self._query(
            lambda c: self._read_script(
                keys=self.layout.history(room), args=[since + 1, new_epoch(), ttl_ms], client=c
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

    def connection_added(self, conn_id: str) -> None:
        self._local[conn_id] = set()
        layout = self.layout
        self._enqueue(("HSET", layout.conns(layout.partition(conn_id)), conn_id, self.node))
        self._enqueue(("SADD", layout.node_conns(self.node), conn_id))

    def connection_removed(self, conn_id: str) -> None:
        rooms = self._local.pop(conn_id, set())
        layout = self.layout
        for room in rooms:
            self._enqueue(("SREM", layout.room_members(room), conn_id))
        self._enqueue(("DEL", layout.conn_rooms(conn_id)))
        self._enqueue(("SREM", layout.node_conns(self.node), conn_id))
        partition = layout.partition(conn_id)
        self._enqueue(("HDEL", layout.conns(partition), conn_id))
        if self._users.pop(conn_id, None) is not None:
            self._enqueue(("HDEL", layout.users(partition), conn_id))

    def user_set(self, conn_id: str, user: bytes | None) -> None:
        if conn_id not in self._local:
            return
        key = self.layout.users(self.layout.partition(conn_id))
        if user is None:
            if self._users.pop(conn_id, None) is not None:
                self._enqueue(("HDEL", key, conn_id))
            return
        self._users[conn_id] = user
        self._enqueue(("HSET", key, conn_id, user))

    def room_joined(self, conn_id: str, room: str) -> None:
        rooms = self._local.get(conn_id)
        if rooms is None or room in rooms:
            return
        rooms.add(room)
        self._enqueue(("SADD", self.layout.room_members(room), conn_id))
        self._enqueue(("SADD", self.layout.conn_rooms(conn_id), room))

    def room_left(self, conn_id: str, room: str) -> None:
        rooms = self._local.get(conn_id)
        if rooms is None or room not in rooms:
            return
        rooms.discard(room)
        self._enqueue(("SREM", self.layout.room_members(room), conn_id))
        self._enqueue(("SREM", self.layout.conn_rooms(conn_id), room))

    # Queries ---------------------------------------------------------------------------------

    async def _query(self, command: Callable[[Client], Awaitable[Any]]) -> Any:
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
        layout = self.layout

        async def count(client: Client) -> int:
            # The sum of the nodes' connection sets: one per node, however many
            # partitions.
            nodes = await client.zrange(layout.nodes, 0, -1)
            if not nodes:
                return 0
            pipe: Any = client.pipeline(transaction=False)
            for node in nodes:
                pipe.scard(layout.node_conns(_text(node)))
            return sum(await pipe.execute())

        total: int = await self._query(count)
        return total

    async def room_members(self, room: str) -> set[str]:
        key = self.layout.room_members(room)
        members: Iterable[bytes] = await self._query(lambda c: c.smembers(key))
        return {_text(m) for m in members}

    async def rooms_of(self, conn_id: str) -> set[str]:
        key = self.layout.conn_rooms(conn_id)
        rooms: Iterable[bytes] = await self._query(lambda c: c.smembers(key))
        return {_text(r) for r in rooms}

    async def users(self, conn_ids: list[str]) -> list[bytes | None]:
        if not conn_ids:
            return []
        groups = list(self._by_partition(dict.fromkeys(conn_ids)).items())

        async def read(client: Client) -> list[list[bytes | None]]:
            pipe: Any = client.pipeline(transaction=False)
            for partition, ids in groups:
                pipe.hmget(self.layout.users(partition), ids)
            found: list[list[bytes | None]] = await pipe.execute()
            return found

        replies = await self._query(read)
        users: dict[str, bytes | None] = {}
        for (_, ids), found in zip(groups, replies, strict=True):
            users.update(zip(ids, found, strict=True))
        return [users[conn_id] for conn_id in conn_ids]

    def stats(self) -> dict[str, int]:
        return {
            **self._counters,
            "connected": int(self._up),
            # Frames and presence writes not yet acknowledged by Redis.
            "queued": len(self._queue) + self._in_flight,
            # Rooms whose channel this process subscribes to.
            "rooms_subscribed": len(self._sent),
        }
