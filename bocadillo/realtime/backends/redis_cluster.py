"""The Redis Cluster backend: sharded pub/sub (``SSUBSCRIBE``/``SPUBLISH``) on a Redis
Cluster or a Valkey cluster (``redis+cluster://host:port,host:port``).

``RedisClusterBackend`` is the Redis backend (``redis.py``) on a cluster client: the same
layout, whose keys and channels carry their partition's hash tag (``_redis_layout.py``),
so every command and script touches one slot; the same writer, heartbeat and queries,
with ``SPUBLISH`` (in the scripts too), per-slot pipelines where plain Redis runs one
transaction, and the clock of the heartbeats' master. Its subscriptions are those of a
``ShardedSubscriber`` (``_redis_shards.py``: one pub/sub connection per master, and why
not redis-py's own cluster pub/sub), which outlives the writer's reconnections: one
master failing does not resubscribe the channels of the others. Frames of different
routes (rooms, inboxes, everyone's channel) travel through different masters, so they
keep their order per route only (``ordered`` is False).
"""

from __future__ import annotations

import contextlib
import time
from typing import Any
from urllib.parse import unquote

from ...errors import BackendUnavailable, ConfigurationError, MissingDependency
from ._redis_scripts import DIRECT, PUBLISH, READ, sharded
from ._redis_shards import ShardedSubscriber
from .base import Deliver
from .redis import _CONFIRM_TIMEOUT, _START_TIMEOUT, Client, RedisBackend, logger

try:
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.exceptions import ClusterDownError
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependency(
        "the Redis Cluster hub backend needs the 'redis' package: pip install 'bocadillo[redis]'"
    ) from exc

__all__ = ["RedisClusterBackend"]


class RedisClusterBackend(RedisBackend):
    """A hub backend on a Redis Cluster (or a Valkey cluster): the Redis backend's keys
    and scripts, each in the slot of its partition, and sharded pub/sub.

    Args:
        url: ``redis+cluster://[[user]:password@]host:port[,host:port...]``, or
            ``rediss+cluster://`` for TLS: one or more nodes of the cluster, the others
            are discovered.
        check_interval: Seconds between two checks of who serves the slots of this
            process's channels (``CLUSTER SLOTS``), besides the moves Redis reports.
        options: Those of ``RedisBackend`` (``prefix``, ``heartbeat_ttl``,
            ``publish_queue``, ``backoff``, ``partitions``); ``backoff`` is
            ``(0.05, 1.0)`` by default.

    Raises:
        ConfigurationError: for a malformed URL or a bad option.
    """

    publish_command = "SPUBLISH"
    ordered = False

    def __init__(self, url: str, *, check_interval: float = 5.0, **options: Any) -> None:
        # A failing master is replaced in seconds: reconnect sooner than to a lone Redis.
        options.setdefault("backoff", (0.05, 1.0))
        super().__init__(url, **options)
        self.nodes, self._client_options = _parse_url(url)
        #: The nodes of the cluster as last learnt (``host``, ``port``): seeds too.
        self._learnt: list[tuple[str, int]] = []
        if not check_interval > 0:
            raise ConfigurationError("check_interval must be a positive number of seconds")
        self.check_interval = float(check_interval)
        self._shards: ShardedSubscriber | None = None
        self._shards_client: RedisCluster | None = None

    @classmethod
    def from_url(cls, url: str, **options: Any) -> RedisClusterBackend:
        known = {"prefix", "heartbeat_ttl", "publish_queue", "backoff", "partitions"}
        known.add("check_interval")
        return cls(url, **{k: v for k, v in options.items() if k in known})

    # Clients ---------------------------------------------------------------------------

    def _cluster_client(self) -> RedisCluster:
        # No retries of failed connections inside redis-py (a failure surfaces and the
        # backend reconnects itself); MOVED and ASK redirections are still followed.
        # Seeded with the URL's nodes and those learnt since: a reconnection must not
        # depend on the URL's nodes alone (one of them may be the master that died).
        seeds = list(dict.fromkeys([*self.nodes, *self._learnt]))
        return RedisCluster(
            startup_nodes=[ClusterNode(host, port) for host, port in seeds],
            retry=Retry(NoBackoff(), 0),
            socket_connect_timeout=2.0,
            socket_timeout=5.0,
            **self._client_options,
        )

    def _new_client(self) -> RedisCluster:
        client = self._cluster_client()
        self._publish_script = client.register_script(sharded(PUBLISH))
        self._read_script = client.register_script(READ)
        self._direct_script = client.register_script(sharded(DIRECT))
        return client

    async def _open_bus(self, client: Client) -> Any:
        """Learn the cluster's nodes (the next reconnection's seeds too) and slots, load
        the scripts on every master, and check that every master serves: a cluster
        pipeline does not load a script on ``NOSCRIPT``, it fails (on a replica just
        promoted, say), and the writer reconnects, which loads them there. The
        subscriptions are the sharded subscriber's, which outlives the writer's
        connections.

        Raises:
            ClusterDownError: if a master does not say ``cluster_state:ok`` (yet).
        """
        assert isinstance(client, RedisCluster)
        _ = await client.initialize()
        self._learnt = [(node.host, int(node.port)) for node in client.get_nodes()]
        for script in (self._publish_script, self._read_script, self._direct_script):
            await client.script_load(script.script)
        # Connected means able to write: a master started with the rest of the cluster
        # answers at once, but serves keys (no CLUSTERDOWN) only once it says
        # cluster_state:ok, 2 s or more later. Until then, try again later.
        for node in client.get_primaries():
            info = await client.cluster_info(target_nodes=node)
            if info.get("cluster_state") != "ok":
                raise ClusterDownError(
                    f"{node.name} says cluster_state:{info.get('cluster_state')}"
                )
        return None

    async def _close_bus(self, pubsub: Any) -> None:
        return None

    def _transaction(self, client: Client) -> Any:
        return client.pipeline(transaction=False)

    async def _now(self, client: Client) -> float:
        """The clock of the master of the heartbeats: one clock for every node."""
        assert isinstance(client, RedisCluster)
        node = client.get_node_from_key(self.layout.nodes)
        seconds, micros = await client.time(target_nodes=node)
        return float(seconds + micros / 1e6)

    # Lifecycle -------------------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Subscribe to everyone's channel and this node's inboxes, then connect the
        writer, waiting up to 5 seconds in all.

        If no node of the cluster answers now, the app starts anyway: local delivery
        works, the failure is logged, and both keep trying in the background.
        """
        deadline = time.monotonic() + _START_TIMEOUT
        self._shards_client = self._cluster_client()
        self._shards = ShardedSubscriber(
            self._shards_client,
            self._received,
            check_interval=self.check_interval,
            on_confirm=self._notify,
        )
        channels = [c.encode() for c in (self.channel, *self.layout.inboxes(self.node))]
        for channel in channels:
            self._shards.add(channel)
        await self._shards.start()
        # As on plain Redis, the app starts once it receives what is sent to everyone and
        # to this node, and its presence is written after that (the writer starts
        # next); or after a few seconds in all, when the cluster cannot be reached.
        with contextlib.suppress(BackendUnavailable):
            await self._shards.wait_subscribed(channels, _START_TIMEOUT)
        self._launch(deliver)
        await self._wait_started(max(deadline - time.monotonic(), 0.0))

    async def stop(self) -> None:
        await super().stop()
        shards, self._shards = self._shards, None
        if shards is not None:
            await shards.stop()
        client, self._shards_client = self._shards_client, None
        if client is not None:
            with contextlib.suppress(Exception):
                await client.aclose()

    # Subscriptions ---------------------------------------------------------------------

    async def _read(self, pubsub: Any) -> None:
        """Nothing to read here: the sharded subscriber reads each master itself."""
        stop = self._stop_event
        assert stop is not None
        await stop.wait()

    async def _sync_subscriptions(self, pubsub: Any) -> None:
        """Hand the rooms subscribed or left since the last call to the sharded
        subscriber, and wait (a few seconds at most) until their masters confirm: a
        membership is written once its room is subscribed. A master failing over does
        not stop the writer: its rooms are subscribed as soon as a replica took over."""
        if not self._changes:
            return
        shards = self._shards
        assert shards is not None
        changed, self._changes = self._changes, set()
        new: list[bytes] = []
        for room in changed:
            channel = self.layout.room_channel(room).encode()
            if room in self._rooms:
                self._sent.add(room)
                shards.add(channel)
                new.append(channel)
            else:
                self._sent.discard(room)
                shards.remove(channel)
        if new:
            try:
                await shards.wait_subscribed(new, _CONFIRM_TIMEOUT)
            except BackendUnavailable:
                logger.warning("%d room subscriptions are not confirmed yet", len(new))

    def _settled(self, channel: bytes) -> bool:
        return self._shards is not None and self._shards.confirmed(channel)

    def stats(self) -> dict[str, int]:
        shards = self._shards.stats() if self._shards is not None else {}
        return {**super().stats(), **shards}


def _parse_url(url: str) -> tuple[list[tuple[str, int]], dict[str, Any]]:
    """The nodes and the client options (credentials, TLS) of a cluster URL.

    Raises:
        ConfigurationError: if it is not ``redis+cluster://`` or ``rediss+cluster://``
            with at least one ``host:port``, or names a database other than 0.
    """
    expected = "redis+cluster://[[user]:password@]host:port[,host:port...]"
    scheme, sep, rest = url.partition("://")
    if not sep or scheme not in ("redis+cluster", "rediss+cluster"):
        raise ConfigurationError(f"a Redis Cluster URL looks like {expected} (got {url!r})")
    netloc, _, path = rest.partition("/")
    if path.partition("?")[0] not in ("", "0"):
        raise ConfigurationError(f"a Redis Cluster has only database 0 (got {url!r})")
    userinfo, at, hosts = netloc.rpartition("@")
    options: dict[str, Any] = {"ssl": scheme == "rediss+cluster"}
    if at:
        user, colon, password = userinfo.partition(":")
        if user:
            options["username"] = unquote(user)
        if colon:
            options["password"] = unquote(password)
    nodes: list[tuple[str, int]] = []
    for address in hosts.split(","):
        host, colon, port = address.strip().rpartition(":")
        host = host.strip("[]")
        if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(
                f"a Redis Cluster URL names its nodes as host:port: {expected} (got {url!r})"
            )
        nodes.append((host, int(port)))
    return nodes, options
