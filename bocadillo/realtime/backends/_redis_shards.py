"""Sharded pub/sub on a Redis Cluster: ``ShardedSubscriber`` keeps a process's
``SSUBSCRIBE`` subscriptions on the masters that serve their slots (for
``redis_cluster.py``).

It keeps one pub/sub connection per cluster master that serves a slot this process
listens to, and subscribes each channel on the master of its slot, all the channels of
one slot with one ``SSUBSCRIBE``. When a slot moves (the server pushes ``SUNSUBSCRIBE``
for its channels, a ``SSUBSCRIBE`` is answered ``MOVED``, or the periodic
``CLUSTER SLOTS`` check sees another owner) or its master fails (the connection breaks,
or a ``PING`` goes unanswered), the slot's channels are subscribed again on its new
master, found with ``CLUSTER SLOTS`` (retried every 50 ms, backing off to 0.5 s, until a
replica has taken over). Frames published to the slot between its move and that
resubscription are lost for this process; ``stats()`` counts the moves and
resubscriptions and measures the gaps.

Why not redis-py's own cluster pub/sub (redis-py 8.2, ``redis.asyncio.cluster``):

- ``RedisCluster.pubsub()`` returns a ``ClusterPubSub``. Its ``ssubscribe`` groups shard
  channels per node (``node_pubsub_mapping``: one ``PubSub``, so one connection, per node
  holding a subscribed slot), routed by the client's slot cache. Reading is
  ``get_sharded_message``, which polls the per-node connections in turn from one task,
  splitting its timeout across them: every message pays a round-robin pass, a lock per
  node and a timeout per poll.
- When a slot moves, the server pushes ``SUNSUBSCRIBE``. The per-node ``PubSub`` keeps
  the channel recorded (it forgets only the unsubscriptions it asked for), and
  ``ClusterPubSub`` does not subscribe it again until the client's slot cache is
  refreshed (``on_slots_changed``, after a ``MOVED`` reply to some command of the same
  client). A process that sends nothing to that slot is never told: on Redis 7.0 the
  channel stayed silent for good after a slot move.
- When a node fails, a failed poll cools that connection off for 1 s and asks for a slot
  cache refresh at most every 5 s (``SHARD_TOPOLOGY_REPAIR_INTERVAL_SECONDS``). A refresh
  made right after the failure still shows the dead master (its replica takes over only
  after ``cluster-node-timeout``), so the resubscription waits for the next one: the
  failover window grows by up to 5 s.
- A plain ``PubSub`` replays every ``SSUBSCRIBE`` on reconnection, with every channel
  recorded, including those whose slot has moved away (answered ``MOVED``).

So this module does not use ``ClusterPubSub``: it manages one raw connection per master
itself (``Connection.read_response`` in a task per connection, blocking, no polling), and
the slot of each channel; the cluster client (``RedisCluster``) serves ``CLUSTER SLOTS``,
and builds the connections (credentials, TLS, timeouts).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import time
from collections import Counter
from collections.abc import Callable, Iterable
from typing import Any

from ...errors import BackendUnavailable, MissingDependency
from .base import cancel_and_wait

try:
    from redis.asyncio.cluster import ClusterNode, RedisCluster
    from redis.asyncio.connection import AbstractConnection
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff
    from redis.crc import key_slot
    from redis.exceptions import MovedError, RedisClusterException, RedisError, ResponseError
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependency(
        "the Redis Cluster hub backend needs the 'redis' package: pip install 'bocadillo[redis]'"
    ) from exc

__all__ = ["ShardDeliver", "ShardedSubscriber"]

logger = logging.getLogger("bocadillo.hub.redis")

#: Errors that mean "this node is unreachable or misbehaving" (``RedisClusterException``,
#: not a ``RedisError``: no node of the cluster answered).
_FAILURES = (RedisError, RedisClusterException, OSError, asyncio.TimeoutError)

#: ``(channel, data)`` of each message on a subscribed channel.
ShardDeliver = Callable[[bytes, bytes], None]


class _Link:
    """One sharded pub/sub connection to one master, and the slots placed on it."""

    def __init__(self, name: str, connection: AbstractConnection) -> None:
        self.name = name
        self.connection = connection
        self.slots: set[int] = set()
        #: ``SUNSUBSCRIBE`` sent per channel and not yet confirmed: a confirmation we
        #: did not ask for is the server's push (the slot moved away).
        self.leaving: Counter[bytes] = Counter()
        self.reader: asyncio.Task[None] | None = None
        self.alive = True
        #: When the ``PING`` sent on this connection was sent, until anything arrives.
        self.pinged: float | None = None


class ShardedSubscriber:
    """The sharded subscriptions of one process on a Redis Cluster (see the module
    docstring).

    ``add``/``remove`` only record what is wanted (plain ``def``); a manager task applies
    it, and ``wait_subscribed`` waits until the server confirmed.

    Args:
        cluster: The cluster client (for ``CLUSTER SLOTS`` and to build connections).
        deliver: Called with ``(channel, data)`` for each message.
        check_interval: Seconds between two ``CLUSTER SLOTS`` checks (and ``PING`` on
            each connection) while all is well.
        retry_delays: ``(first, max)`` seconds between attempts to place slots whose
            master is unreachable (doubling).
        on_confirm: Called whenever a master confirms subscriptions.
    """

    def __init__(
        self,
        cluster: RedisCluster,
        deliver: ShardDeliver,
        *,
        check_interval: float = 5.0,
        retry_delays: tuple[float, float] = (0.05, 0.5),
        on_confirm: Callable[[], None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.deliver = deliver
        self.on_confirm = on_confirm
        self.check_interval = check_interval
        self.retry_delays = retry_delays
        #: What is wanted, updated at once by ``add``/``remove``.
        self._wanted: set[bytes] = set()
        #: Channels added or removed since the manager last ran.
        self._touched: set[bytes] = set()
        #: What the manager acted upon: slot -> its channels.
        self._slots: dict[int, set[bytes]] = {}
        self._placed: dict[int, _Link] = {}
        self._unplaced: set[int] = set()
        self._links: dict[str, _Link] = {}
        #: Slot -> name of its master (``host:port``), from ``CLUSTER SLOTS`` and
        #: ``MOVED`` replies.
        self._owners: dict[int, str] = {}
        self._stale_owners = True
        #: Nodes whose last answer was a failure.
        self._failed: set[str] = set()
        self._confirmed: set[bytes] = set()
        #: When each slot lost since its master confirmed it again was lost.
        self._lost_at: dict[int, float] = {}
        self._wake: asyncio.Event | None = None
        self._progress: asyncio.Event | None = None
        self._manager: asyncio.Task[None] | None = None
        self._stopping = False
        self.counters = {
            "shard_moves": 0,  # SUNSUBSCRIBE pushed by a server, or MOVED to a SSUBSCRIBE
            "shard_links_lost": 0,  # connections to a master broken
            "shard_resubscribes": 0,  # slots subscribed again elsewhere
            # Milliseconds from a slot's loss (a move or a failed master) until its new
            # master confirmed it: the last such gap and the longest.
            "shard_gap_ms_last": 0,
            "shard_gap_ms_max": 0,
            "shard_received": 0,
        }

    # The process's side ------------------------------------------------------------------

    def add(self, channel: bytes) -> None:
        """Subscribe ``channel`` (enqueue)."""
        if channel not in self._wanted:
            self._wanted.add(channel)
            self._touch(channel)

    def remove(self, channel: bytes) -> None:
        """Unsubscribe ``channel`` (enqueue)."""
        if channel in self._wanted:
            self._wanted.discard(channel)
            self._touch(channel)

    def _touch(self, channel: bytes) -> None:
        self._touched.add(channel)
        if self._wake is not None:
            self._wake.set()

    def confirmed(self, channel: bytes) -> bool:
        """Whether ``channel`` is subscribed, as its master confirmed."""
        return channel in self._confirmed

    def subscribed(self, channels: Iterable[bytes]) -> bool:
        """Whether every one of ``channels`` still wanted is confirmed by its master."""
        return all(ch in self._confirmed or ch not in self._wanted for ch in channels)

    async def wait_subscribed(self, channels: Iterable[bytes], timeout: float) -> None:
        """Wait until ``subscribed(channels)``.

        Raises:
            BackendUnavailable: after ``timeout`` seconds.
        """
        channels = list(channels)
        deadline = time.monotonic() + timeout
        while not self.subscribed(channels):
            progress = self._progress
            left = deadline - time.monotonic()
            if progress is None or left <= 0:
                raise BackendUnavailable(
                    "the Redis Cluster did not confirm the subscriptions in time"
                )
            progress.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(progress.wait(), left)

    def stats(self) -> dict[str, int]:
        return {
            **self.counters,
            "shard_links": len(self._links),
            "shard_channels": len(self._wanted),
            "shard_unplaced": len(self._unplaced),
        }

    # Lifecycle ---------------------------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._wake = asyncio.Event()
        self._progress = asyncio.Event()
        self._wake.set()
        self._manager = asyncio.get_running_loop().create_task(self._manage())

    async def stop(self) -> None:
        self._stopping = True
        manager, self._manager = self._manager, None
        await cancel_and_wait([manager])
        for link in list(self._links.values()):
            await self._close(link)
        self._slots.clear()
        self._placed.clear()
        self._unplaced.clear()
        self._confirmed.clear()
        self._touched = set(self._wanted)

    # The manager -------------------------------------------------------------------------

    async def _manage(self) -> None:
        wake = self._wake
        assert wake is not None
        delay = self.retry_delays[0]
        next_check = time.monotonic() + self.check_interval
        while not self._stopping:
            now = time.monotonic()
            timeout = delay if self._unplaced else max(next_check - now, 0.0)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(wake.wait(), timeout)
            wake.clear()
            try:
                if time.monotonic() >= next_check:
                    next_check = time.monotonic() + self.check_interval
                    self._stale_owners = True
                    await self._ping()
                await self._step()
            except Exception:  # a bug here must not end the subscriptions for good
                logger.exception("the sharded subscriber failed; retrying")
                self._stale_owners = True
            if self._unplaced:
                # Waiting for a master: ask the cluster again next time (a replica may
                # have taken over), a bit later each time.
                self._stale_owners = True
                delay = min(delay * 2, self.retry_delays[1])
            else:
                delay = self.retry_delays[0]

    async def _step(self) -> None:
        await self._apply()
        if self._stale_owners and (self._slots or self._unplaced):
            await self._check_owners()
        if self._unplaced:
            await self._place()

    async def _apply(self) -> None:
        """Turn what ``add``/``remove`` recorded into (un)subscriptions."""
        touched, self._touched = self._touched, set()
        subscribe: dict[int, list[bytes]] = {}
        unsubscribe: dict[int, list[bytes]] = {}
        for channel in touched:
            slot = key_slot(channel)
            channels = self._slots.setdefault(slot, set())
            if channel in self._wanted and channel not in channels:
                channels.add(channel)
                subscribe.setdefault(slot, []).append(channel)
            elif channel not in self._wanted and channel in channels:
                channels.discard(channel)
                self._confirmed.discard(channel)
                unsubscribe.setdefault(slot, []).append(channel)
            if not channels:
                del self._slots[slot]
                self._lost_at.pop(slot, None)
        for slot, leaving in unsubscribe.items():
            link = self._placed.get(slot)
            if slot not in self._slots:
                self._unplaced.discard(slot)
                if link is not None:
                    del self._placed[slot]
                    link.slots.discard(slot)
                    if not link.slots:
                        await self._close(link)  # drops its subscriptions with it
                        continue
            if link is not None and link.alive:
                link.leaving.update(leaving)
                await self._send(link, [("SUNSUBSCRIBE", *leaving)])
        for slot, joining in subscribe.items():
            link = self._placed.get(slot)
            if link is None:
                self._unplaced.add(slot)
            elif link.alive:
                await self._send(link, [("SSUBSCRIBE", *joining)])

    async def _check_owners(self) -> None:
        """Ask the cluster who serves each slot (``CLUSTER SLOTS``); slots placed on
        another master are placed again."""
        owners = await self._slot_owners()
        if owners is None:
            return
        self._owners = owners
        self._stale_owners = False
        for slot, link in list(self._placed.items()):
            if owners.get(slot) != link.name:
                logger.info("slot %d moved from %s to %s", slot, link.name, owners.get(slot))
                channels = self._unplace(slot, link)
                if link.alive and channels:
                    link.leaving.update(channels)
                    await self._send(link, [("SUNSUBSCRIBE", *channels)])

    async def _slot_owners(self) -> dict[int, str] | None:
        """Slot -> its master's name, from the first node that answers, or None."""
        if not self.cluster.get_nodes():
            try:  # the nodes come from the seeds
                _ = await self.cluster.initialize()
            except _FAILURES as exc:
                logger.debug("the Redis Cluster is unreachable: %r", exc)
                return None
        nodes = self.cluster.get_primaries()
        random.shuffle(nodes)
        nodes += self.cluster.get_replicas()
        # The nodes that failed last are asked last.
        nodes.sort(key=lambda node: node.name in self._failed)
        for node in nodes:
            try:
                # Bounded: a master that hangs must not hold up the others' checks.
                reply = await asyncio.wait_for(
                    self.cluster.execute_command("CLUSTER SLOTS", target_nodes=node),
                    min(self.check_interval, 2.0),
                )
            except _FAILURES as exc:
                logger.debug("CLUSTER SLOTS on %s failed: %r", node.name, exc)
                self._failed.add(node.name)
                continue
            self._failed.discard(node.name)
            owners: dict[int, str] = {}
            for (first, last), shard in reply.items():
                host, port = shard["primary"]
                name = f"{host}:{port}"
                for slot in range(first, last + 1):
                    owners[slot] = name
            return owners
        return None

    async def _place(self) -> None:
        """Subscribe every unplaced slot on its master (all masters concurrently)."""
        by_owner: dict[str, list[int]] = {}
        for slot in self._unplaced:
            owner = self._owners.get(slot)
            if owner is not None:
                by_owner.setdefault(owner, []).append(slot)
        await asyncio.gather(
            *(self._place_on(name, slots) for name, slots in by_owner.items()),
        )

    async def _place_on(self, name: str, slots: list[int]) -> None:
        link = self._links.get(name)
        if link is None:
            link = await self._open(name)
        if link is None or not link.alive:
            return  # unreachable: the slots stay unplaced, retried later
        commands: list[tuple[str | bytes, ...]] = []
        for slot in slots:
            channels = self._slots.get(slot)
            if channels:
                commands.append(("SSUBSCRIBE", *channels))
                self._placed[slot] = link
                link.slots.add(slot)
            self._unplaced.discard(slot)
        await self._send(link, commands)

    async def _open(self, name: str) -> _Link | None:
        host, _, port = name.rpartition(":")
        # A ClusterNode only to build a connection as the cluster client builds its
        # own (credentials, TLS, timeouts); nothing is pooled.
        options: Any = self.cluster.get_connection_kwargs()
        node = ClusterNode(host, int(port), **options)
        connection = node.connection_class(
            **{**node.connection_kwargs, "retry": Retry(NoBackoff(), 0)}
        )
        try:
            # Bounded: a master that hangs accepts the connection and never answers.
            await asyncio.wait_for(
                connection.connect(),  # type: ignore[no-untyped-call]
                min(2 * self.check_interval, 2.0),
            )
        except _FAILURES as exc:
            logger.debug("cannot reach master %s: %r", name, exc)
            with contextlib.suppress(Exception):
                await connection.disconnect()
            return None
        link = _Link(name, connection)
        self._links[name] = link
        link.reader = asyncio.get_running_loop().create_task(self._read(link))
        return link

    async def _send(self, link: _Link, commands: list[tuple[str | bytes, ...]]) -> None:
        if not commands:
            return
        try:
            await link.connection.send_packed_command(
                link.connection.pack_commands(commands), check_health=False
            )
        except _FAILURES as exc:
            self._lost(link, exc)

    async def _ping(self) -> None:
        """``PING`` every connection; one that received nothing for two check intervals
        after its ``PING`` is dead (a master that hangs closes nothing)."""
        now = time.monotonic()
        for link in list(self._links.values()):
            if link.pinged is None:
                link.pinged = now
                await self._send(link, [("PING",)])
            elif now - link.pinged > 2 * self.check_interval:
                self._lost(link, TimeoutError("no reply to PING"))

    def _unplace(self, slot: int, link: _Link) -> list[bytes]:
        """The slot is no longer served by ``link``'s master: place it again. Returns
        its channels if ``link`` is kept (it serves other slots), for the caller to
        unsubscribe there if they may still be subscribed."""
        if self._placed.get(slot) is not link:
            return []
        del self._placed[slot]
        link.slots.discard(slot)
        channels = self._slots.get(slot, set())
        self._confirmed.difference_update(channels)
        self._unplaced.add(slot)
        self._lost_at.setdefault(slot, time.monotonic())
        self.counters["shard_resubscribes"] += 1
        if self._wake is not None:
            self._wake.set()
        if not link.slots:
            self._forget(link)  # its subscriptions go with its connection
            return []
        return list(channels)

    def _lost(self, link: _Link, exc: BaseException) -> None:
        """``link``'s connection failed: its slots are placed again."""
        if not link.alive:
            return
        if not self._stopping:
            logger.warning("sharded pub/sub connection to %s lost: %r", link.name, exc)
            self.counters["shard_links_lost"] += 1
        link.alive = False
        self._stale_owners = True
        self._failed.add(link.name)
        for slot in list(link.slots):
            self._unplace(slot, link)
        self._forget(link)

    def _forget(self, link: _Link) -> None:
        """Drop ``link`` (its reader closes the connection)."""
        link.alive = False
        if self._links.get(link.name) is link:
            del self._links[link.name]
        reader = link.reader
        if reader is not None and reader is not _current_task():
            reader.cancel()
        if self._wake is not None:
            self._wake.set()

    async def _close(self, link: _Link) -> None:
        self._forget(link)
        await cancel_and_wait([link.reader])
        with contextlib.suppress(Exception):
            await link.connection.disconnect()

    # The readers -------------------------------------------------------------------------

    async def _read(self, link: _Link) -> None:
        connection = link.connection
        try:
            while link.alive:
                try:
                    reply = await connection.read_response(
                        timeout=math.inf, disconnect_on_error=False, push_request=True
                    )
                except MovedError as exc:
                    self._moved(link, exc)
                    continue
                except ResponseError as exc:
                    logger.debug("sharded pub/sub error from %s: %r", link.name, exc)
                    continue
                link.pinged = None
                self._handle(link, reply)
        except asyncio.CancelledError:
            raise
        except _FAILURES as exc:
            self._lost(link, exc)
        finally:
            with contextlib.suppress(Exception):
                await connection.disconnect()

    def _handle(self, link: _Link, reply: Any) -> None:
        kind = reply[0]
        if kind == b"smessage":
            self.counters["shard_received"] += 1
            try:
                self.deliver(reply[1], reply[2])
            except Exception:  # one bad frame must not stop the subscriber
                logger.exception("delivering a message from the cluster failed")
            return
        if kind == b"ssubscribe":
            channel = reply[1]
            if channel in self._wanted and self._placed.get(key_slot(channel)) is link:
                self._confirmed.add(channel)
                lost_at = self._lost_at.pop(key_slot(channel), None)
                if lost_at is not None:
                    gap = round((time.monotonic() - lost_at) * 1000)
                    self.counters["shard_gap_ms_last"] = gap
                    self.counters["shard_gap_ms_max"] = max(gap, self.counters["shard_gap_ms_max"])
                if self._progress is not None:
                    self._progress.set()
                if self.on_confirm is not None:
                    self.on_confirm()
        elif kind == b"sunsubscribe":
            channel = reply[1]
            if link.leaving[channel]:
                link.leaving[channel] -= 1
                if not link.leaving[channel]:
                    del link.leaving[channel]
                return
            # Pushed by the server: the channel's slot is no longer served there.
            slot = key_slot(channel)
            if self._placed.get(slot) is link:
                self.counters["shard_moves"] += 1
                logger.info("slot %d left %s; subscribing again", slot, link.name)
                self._stale_owners = True
                self._unplace(slot, link)

    def _moved(self, link: _Link, exc: MovedError) -> None:
        """A ``SSUBSCRIBE`` answered ``MOVED``: place the slot on the node it names."""
        slot = exc.slot_id
        self.counters["shard_moves"] += 1
        host = exc.host or link.name.rpartition(":")[0]
        self._owners[slot] = f"{host}:{exc.port}"
        # A SUNSUBSCRIBE sent there for this slot will not be confirmed either.
        for channel in [ch for ch in link.leaving if key_slot(ch) == slot]:
            del link.leaving[channel]
        self._unplace(slot, link)


def _current_task() -> asyncio.Task[Any] | None:
    with contextlib.suppress(RuntimeError):
        return asyncio.current_task()
    return None
