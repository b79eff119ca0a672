"""The NATS backend: one hub across many processes and hosts, on a NATS server with
JetStream.

Frames travel on core NATS and go where they are needed, on subjects named in
``_nats_bus.py``:

- a frame for everyone goes on ``<prefix>.bus``, which every process subscribes to;
- a frame for a room goes on the room's subject, which a process subscribes to while it
  has a member in the room (the hub says when: ``subscribe``/``unsubscribe``); one
  subscription per room also brings the room's history publications;
- a frame for some connections goes to the subject of the process holding each of them,
  ``<prefix>.node.<node>``, once per process: the writer looks the holders up in the
  presence bucket (``n.<conn>`` below, one JetStream read per connection, all of a batch's
  at once) before it publishes the batch, and remembers them (``_HOLDERS_KEPT``): an id
  names one connection in an app, for good (the id generator's contract), so its holder
  never changes, and a frame for a connection that has ended reaches the process that
  held it, which delivers it to nobody.

Each frame is prefixed with the publishing node's id. The connection is made with
``no_echo``: the server never sends a node its own frames back (it delivered them locally
already; the prefix is checked anyway). Subscribing to a room waits for the server (a
flush) before this node's membership of the room is written: once a member shows in
presence, its process receives the room's frames. nats-py subscribes again to every
subscription of the connection when it reconnects, before it reports the reconnection.

Presence lives in two JetStream key-value buckets, kept in memory by the server (presence
is rebuilt by the nodes, never read from disk):

- ``<prefix>_presence``, one key per fact, the value unused but for users:

  - ``o.<node>``: the node has presence (it owns the keys below);
  - ``c.<node>.<conn>``: a connection of the node;
  - ``n.<conn>``: the node holding a connection (its value), read by the writer to route
    frames for the connection (a literal key: one lookup in the stream's subject index,
    where ``c.*.<conn>`` would be a scan of every key);
  - ``m.<room>.<node>.<conn>``: a connection in a room;
  - ``u.<conn>``: the JSON ``user`` a connection set (for presence).

- ``<prefix>_nodes``: ``<node>`` -> heartbeat, in a bucket whose entries expire after
  ``heartbeat_ttl`` seconds (the server's clock: one clock for every host).

Room names and connection ids are key tokens (``_nats_bus.token``): as they are when made
of letters, digits, ``-`` and ``_``; any other name becomes ``=`` and its URL-safe base64.
A removal purges the
key's subject from the bucket's stream (no delete marker is left behind), so the subjects
of the stream are exactly the live facts: the queries list them with the stream's
``subjects_filter`` (``m.<room>.*.*`` for a room's members, ``m.*.*.<conn>`` for a
connection's rooms, ``c.*.*`` for the count) in one request, paged by the server.

Every node beats every ``min(heartbeat_ttl / 3, 1)`` seconds, then removes the presence of
the nodes that own presence (``o.*``) but have no heartbeat left (a worker killed without
cleaning up). A node keeps a mirror of its own presence; on every (re)connection, and
whenever it finds its ``o.<node>`` key missing (the server restarted, or it was presumed
dead after a long pause), it purges what the server holds of it and writes the mirror
again.

All writes go through one writer task: room subscriptions first, then frames, published in
order and confirmed with a round trip (``flush``); presence changes are coalesced per key
(only the last state of a key is written) and sent concurrently, so the hub's calls never
wait for NATS. While NATS is unreachable, frames are dropped and counted
(``publish_failed``) and logged, presence changes are kept in the mirror only, room
subscriptions wait, and nats-py reconnects and subscribes again by itself (the rooms
subscribed to before the outage included; those joined or left meanwhile are done after).

Room history lives in JetStream streams, one per history size and TTL, with a subject per
room (see ``_nats_history.py``): a publication is stored with the room's next offset only if
no other reached the room first, and the stream republishes what it stores to the room's
subjects, for every node subscribed to the room, the publisher included, in the stream's
order. Publications are queued and written by the
writer task like frames (one room's in order, rooms concurrently), and counted the same way.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import logging
import secrets
import sys
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from typing import Any, TypeVar

from ...errors import BackendUnavailable, ConfigurationError, MissingDependency
from ._nats_bus import PLAIN, BusClient, RoomSubscriptions, Subjects, name_of, token
from ._nats_history import QueuedPublication, RoomStreams, parse_headers, publication_of
from .base import Deliver, HistoryRead, HubBackend, Route, cancel_and_wait

try:
    import nats
    import nats.errors
    from nats.js import api as js_api
    from nats.js.errors import APIError, BadRequestError, NotFoundError
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependency(
        "the NATS hub backend needs the 'nats-py' package: pip install 'bocadillo[nats]'"
    ) from exc

__all__ = ["NatsBackend"]

logger = logging.getLogger("bocadillo.hub.nats")

#: Errors that mean "NATS is unreachable or misbehaving": carry on, rewrite presence later.
_FAILURES = (nats.errors.Error, OSError, asyncio.TimeoutError)
#: JetStream API errors: the stream (a bucket not made yet) does not exist; no such
#: message (no such key).
_STREAM_NOT_FOUND = 10059
_NO_MESSAGE = 10037
#: Presence writes sent at once (each is a request answered by the server).
_CONCURRENT_WRITES = 256
#: Queries (history reads, counts, members...) in flight at once; the others wait.
MAX_CONCURRENT_QUERIES = 64
#: Seconds the server may take to confirm room subscriptions (``wait_subscribed``).
_CONFIRM_TIMEOUT = 5.0
#: The holders of connections remembered by the writer (the oldest forgotten first):
#: about 6 MB at most, and a lookup saved for each frame to a connection found before.
_HOLDERS_KEPT = 65_536

T = TypeVar("T")


def _ms(seconds: float) -> int:
    """A TTL in whole milliseconds (at least 1)."""
    return max(int(seconds * 1000), 1)


#: What waits for the writer: ``(subject, data)``, or ``(connection ids, data)`` for a frame
#: whose subjects are those of the connections' holders (looked up by the writer).
_Frame = tuple[str | tuple[str, ...], bytes]
#: Subjects of rooms published to, kept (the oldest forgotten first).
_ROOM_SUBJECTS_KEPT = 4096


class NatsBackend(HubBackend):
    """A hub backend on core NATS for frames, JetStream key-value for presence and
    JetStream streams for room history.

    Args:
        url: ``nats://[user:password@]host:port``; several servers of one cluster
            separated by commas (``nats://a:4222,nats://b:4222``).
        prefix: Prefix of the subjects and of the buckets, letters, digits, ``-`` and
            ``_``; apps sharing one NATS must use different prefixes.
        heartbeat_ttl: Seconds after which a silent node is presumed dead and its
            connections and room memberships are removed.
        publish_queue: Frames waiting for NATS beyond which new ones are dropped.
        reconnect_wait: Seconds between two attempts to reach an unreachable server.
        timeout: Seconds a JetStream request (presence write or query) may take.
    """

    keeps_history = True
    routed = True

    def __init__(
        self,
        url: str,
        *,
        prefix: str = "bocadillo",
        heartbeat_ttl: float = 15.0,
        publish_queue: int = 10_000,
        reconnect_wait: float = 0.5,
        timeout: float = 2.0,
    ) -> None:
        if heartbeat_ttl <= 0:
            raise ConfigurationError("hub_heartbeat_ttl must be a positive number of seconds")
        if not PLAIN.match(prefix):
            raise ConfigurationError(
                "hub_prefix must not be empty and, on NATS, holds only letters, digits, "
                f"'-' and '_' (got {prefix!r})"
            )
        self.url = url
        self.servers = [server.strip() for server in url.split(",") if server.strip()]
        self.prefix = prefix
        self.heartbeat_ttl = float(heartbeat_ttl)
        self.heartbeat_interval = min(self.heartbeat_ttl / 3, 1.0)
        self.publish_queue = publish_queue
        self.reconnect_wait = reconnect_wait
        self.timeout = timeout
        #: This process's id on the bus and in the presence keys.
        self.node = secrets.token_hex(8)
        #: The subjects of the app and of this node (``_nats_bus.py``).
        self.subjects = Subjects(prefix, self.node)
        #: The subject of the frames for every process.
        self.subject = self.subjects.everyone
        self.presence_bucket = f"{prefix}_presence"
        self.nodes_bucket = f"{prefix}_nodes"
        self._tag = self.node.encode("ascii") + b" "
        self._everyone = self.subject.encode()
        self._inbox = self.subjects.inbox.encode()
        self._node_value = self.node.encode("ascii")
        self._deliver: Deliver | None = None
        self._nc: BusClient | None = None
        self._frames: deque[_Frame] = deque()
        #: The rooms this process subscribes to.
        self._rooms = RoomSubscriptions(self.subjects)
        #: Connection id -> the node holding it, as found in presence (oldest first).
        self._holders_found: dict[str, str] = {}
        #: Room -> the subject of its frames (made once per room: ``publish`` is hot).
        self._room_subjects: dict[str, str] = {}
        #: Publications to rooms with history, waiting for the writer.
        self._publications: deque[QueuedPublication] = deque()
        self._history = RoomStreams(prefix, self._api, self._client, timeout)
        self._queries: asyncio.Semaphore | None = None
        #: Presence key -> its value to write (``None``: purge it), the last change wins.
        self._dirty: dict[str, bytes | None] = {}
        self._in_flight = 0
        self._resync = True
        self._resyncs_started = 0
        self._up = False
        self._stopping = False
        self._wakeup: asyncio.Event | None = None
        #: Set by the writer each time it is done with what it was woken for.
        self._written: asyncio.Event | None = None
        self._connected: asyncio.Event | None = None
        #: Set while NATS is unreachable: the writer's and the beat's requests are abandoned.
        self._down: asyncio.Event | None = None
        self._stop_event: asyncio.Event | None = None
        self._connector: asyncio.Task[None] | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: Connection id -> rooms, for the connections of this process.
        self._local: dict[str, set[str]] = {}
        #: Connection id -> JSON user, for the connections of this process that set one.
        self._users: dict[str, bytes] = {}
        self._lost_in_outage = 0
        self._counters = {
            "published": 0,
            "publish_failed": 0,
            "received": 0,
            # Every message of the bus subscriptions, by the kind of subject it came on,
            # and their bytes: what this process pays for the bus (as on Redis).
            "received_frames": 0,
            "received_frames_everyone": 0,
            "received_frames_room": 0,
            "received_frames_node": 0,
            "received_bytes": 0,
            # Holders of connections read from presence (those remembered are not).
            "holder_lookups": 0,
            "reconnects": 0,
            "resyncs": 0,
            "dead_nodes_removed": 0,
            "slow_consumer_errors": 0,
        }

    @classmethod
    def from_url(cls, url: str, **options: Any) -> NatsBackend:
        known = {"prefix", "heartbeat_ttl", "publish_queue", "reconnect_wait", "timeout"}
        return cls(url, **{k: v for k, v in options.items() if k in known})

    @property
    def connected(self) -> bool:
        """Whether NATS is reachable right now (as far as the client knows)."""
        return self._up

    # Lifecycle -------------------------------------------------------------------------------

    async def start(self, deliver: Deliver) -> None:
        """Connect (waiting up to a few seconds) and keep the connection alive.

        If NATS cannot be reached now, the app starts anyway: local delivery works, the
        failure is logged, and the client keeps trying in the background.
        """
        self._deliver = deliver
        self._stopping = False
        self._resync = True
        self._wakeup = asyncio.Event()
        self._written = asyncio.Event()
        self._connected = asyncio.Event()
        self._down = asyncio.Event()
        self._down.set()
        self._stop_event = asyncio.Event()
        self._queries = asyncio.Semaphore(MAX_CONCURRENT_QUERIES)
        loop = asyncio.get_running_loop()
        self._nc = BusClient(self._on_message)
        self._connector = loop.create_task(self._connect(self._nc))
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._connected.wait(), 5.0)
        if not self._up:
            logger.error("NATS at %s is unreachable; retrying in the background", self.url)

    async def _connect(self, nc: BusClient) -> None:
        """Connect once (nats-py then reconnects by itself), subscribe to everyone's
        subject and this node's, start the loops (the writer subscribes to the rooms)."""
        await nc.connect(
            servers=self.servers,
            name=f"bocadillo-{self.node}",
            allow_reconnect=True,
            max_reconnect_attempts=-1,
            reconnect_time_wait=self.reconnect_wait,  # type: ignore[arg-type]
            connect_timeout=2,
            # Nothing is buffered while disconnected: a frame that cannot go now is lost
            # and counted, not sent late after a reconnection.
            pending_size=0,
            # A node never receives its own frames: it delivered them already.
            no_echo=True,
            error_cb=self._on_error,
            disconnected_cb=self._on_disconnected,
            reconnected_cb=self._on_reconnected,
        )
        await nc.subscribe_bus(self.subject)
        await nc.subscribe_bus(self.subjects.inbox)
        await nc.flush(timeout=int(max(self.timeout, 1)))
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._write()), loop.create_task(self._beat())]
        self._set_up(reconnected=False)

    async def stop(self) -> None:
        """Flush queued frames, remove this node's presence and disconnect."""
        nc, was_up = self._nc, self._up
        if was_up:
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._drain(), self.timeout)
        self._stopping = True
        if self._stop_event is not None:
            self._stop_event.set()
        await cancel_and_wait([*self._tasks, self._connector])
        self._tasks, self._connector = [], None
        if was_up and nc is not None and nc.is_connected:
            with contextlib.suppress(*_FAILURES):
                await asyncio.wait_for(self._remove_node(self.node), self.timeout)
            with contextlib.suppress(*_FAILURES):
                await asyncio.wait_for(self._purge(self.nodes_bucket, self.node), self.timeout)
        self._up = False
        if nc is not None:
            with contextlib.suppress(Exception):
                await nc.close()
        self._nc = None
        self._frames.clear()
        self._publications.clear()
        self._dirty.clear()
        self._local.clear()
        self._users.clear()
        self._rooms.clear()
        self._holders_found.clear()

    # Connection state ------------------------------------------------------------------------

    def _set_up(self, *, reconnected: bool) -> None:
        self._up = True
        self._resync = True
        self._history.forget_streams()  # maybe another server, or one restarted empty
        if self._down is not None:
            self._down.clear()
        if reconnected:
            # nats-py subscribed again to everything, then flushed, before it said so.
            self._rooms.confirm_all()
            self._counters["reconnects"] += 1
            logger.warning(
                "reconnected to NATS; %d frames were lost while it was unreachable",
                self._lost_in_outage,
            )
        self._lost_in_outage = 0
        self._signal(self._wakeup)
        self._signal(self._connected)

    async def _on_reconnected(self) -> None:
        if not self._stopping:
            self._set_up(reconnected=True)

    async def _on_disconnected(self) -> None:
        """NATS is unreachable: drop queued frames (counted) and presence writes."""
        self._up = False
        self._signal(self._down)
        self._rooms.lost()
        if self._nc is not None:
            self._nc.forget_pending()
        if self._connected is not None:
            self._connected.clear()
        lost = len(self._frames) + len(self._publications)
        self._frames.clear()
        self._publications.clear()
        self._dirty.clear()
        self._lose(lost)

    async def _on_error(self, exc: Exception) -> None:
        if isinstance(exc, nats.errors.SlowConsumerError):
            self._counters["slow_consumer_errors"] += 1
            logger.warning("NATS dropped frames for this process (slow consumer)")
        else:
            logger.debug("NATS client error: %r", exc)

    def _lose(self, count: int) -> None:
        if count:
            self._counters["publish_failed"] += count
            if self._lost_in_outage == 0:
                logger.warning("NATS is unreachable: frames for other processes are lost")
            self._lost_in_outage += count

    @staticmethod
    def _signal(event: asyncio.Event | None) -> None:
        if event is not None:
            event.set()

    # JetStream requests ----------------------------------------------------------------------

    def _client(self) -> BusClient:
        nc = self._nc
        if nc is None or not self._up:
            raise nats.errors.ConnectionClosedError
        return nc

    async def _api(self, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """A JetStream API request (``$JS.API.<name>``) and its answer."""
        reply = await self._client().request(
            f"$JS.API.{name}", json.dumps(body).encode(), timeout=self.timeout
        )
        answer: dict[str, Any] = json.loads(reply.data)
        error = answer.get("error")
        if error is not None:
            APIError.from_error(error)  # raises: NotFoundError for a missing stream
        return answer

    async def _subjects(self, bucket: str, pattern: str) -> list[str]:
        """The keys of ``bucket`` that match ``pattern``, every page of them."""
        prefix = f"$KV.{bucket}."
        keys: list[str] = []
        while True:
            answer = await self._api(
                f"STREAM.INFO.KV_{bucket}",
                {"subjects_filter": prefix + pattern, "offset": len(keys)},
            )
            page = answer.get("state", {}).get("subjects") or {}
            keys.extend(subject[len(prefix) :] for subject in page)
            if not page or len(keys) >= answer.get("total", 0):
                return keys

    async def _count(self, bucket: str, pattern: str) -> int:
        """How many keys of ``bucket`` match ``pattern`` (the server counts; an offset past
        the end leaves the page empty)."""
        answer = await self._api(
            f"STREAM.INFO.KV_{bucket}",
            {"subjects_filter": f"$KV.{bucket}.{pattern}", "offset": 1 << 31},
        )
        return int(answer.get("total", 0))

    async def _put(self, bucket: str, key: str, value: bytes) -> None:
        await self._client().jetstream(timeout=self.timeout).publish(f"$KV.{bucket}.{key}", value)

    async def _purge(self, bucket: str, pattern: str) -> None:
        """Remove the keys matching ``pattern`` with their history (no marker left)."""
        await self._api(f"STREAM.PURGE.KV_{bucket}", {"filter": f"$KV.{bucket}.{pattern}"})

    async def _ensure_buckets(self) -> None:
        js = self._client().jetstream(timeout=self.timeout)
        buckets = (
            (self.presence_bucket, None),
            (self.nodes_bucket, self.heartbeat_ttl),
        )
        for bucket, ttl in buckets:
            try:
                await js.create_key_value(
                    bucket=bucket, history=1, ttl=ttl, storage=js_api.StorageType.MEMORY
                )
            except BadRequestError:
                # It exists (made by another node, maybe with another heartbeat_ttl).
                await js.key_value(bucket)

    async def _gather(self, calls: list[Callable[[], Awaitable[T]]]) -> list[T]:
        """Run ``calls`` concurrently, a bounded number at a time."""
        results: list[T] = []
        for start in range(0, len(calls), _CONCURRENT_WRITES):
            chunk = calls[start : start + _CONCURRENT_WRITES]
            results.extend(await asyncio.gather(*(call() for call in chunk)))
        return results

    # The writer ------------------------------------------------------------------------------

    async def _write(self) -> None:
        wakeup = self._wakeup
        assert wakeup is not None
        while not self._stopping:
            await wakeup.wait()
            wakeup.clear()
            if not self._up:
                continue
            try:
                await self._while_up(self._write_once())
            except _FAILURES as exc:
                if self._up:
                    logger.warning("writing to NATS failed: %r; presence will be rewritten", exc)
                self._resync = True
                self._dirty.clear()
                assert self._stop_event is not None
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._stop_event.wait(), self.reconnect_wait)
                wakeup.set()
            self._signal(self._written)

    async def _drain(self) -> None:
        """Wake the writer until it has written everything queued, or NATS is down. (The
        writer may be waiting for the server's acknowledgement of its last batch: another
        flush beside it would find nothing to send, and the writer, cancelled, would count
        that batch as lost.)"""
        written = self._written
        assert written is not None
        while self._up and self._backlog():
            written.clear()
            self._signal(self._wakeup)
            await written.wait()

    def _backlog(self) -> int:
        """Frames, presence writes and room subscriptions not yet acknowledged by NATS."""
        return (
            len(self._frames)
            + len(self._publications)
            + len(self._dirty)
            + self._in_flight
            + int(self._resync and self._up)
            + (self._rooms.pending if self._up else 0)
        )

    async def _write_once(self) -> None:
        # Subscriptions first: a membership is written once its room is subscribed.
        await self._subscribe_rooms()
        if self._resync:
            await self._write_presence()
        await self._flush()

    async def _subscribe_rooms(self) -> None:
        """Subscribe to the rooms joined so far (and leave those left). The caller reads
        the memberships to write right after, with nothing awaited in between."""
        await self._rooms.sync(self._client(), self.timeout)

    async def _while_up(self, work: Awaitable[T]) -> T:
        """Run ``work`` until it ends, or until the connection drops: then cancel it and
        raise (nats-py would let its requests wait for their timeouts)."""
        down = self._down
        assert down is not None
        task = asyncio.ensure_future(work)
        waiter = asyncio.ensure_future(down.wait())
        try:
            await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await cancel_and_wait([waiter, task])
        if task.cancelled():
            raise nats.errors.ConnectionClosedError
        return task.result()

    async def _flush(self) -> None:
        """Publish the queued frames in order, write the presence changes, and wait
        until the server has them."""
        nc = self._client()
        while (self._frames or self._dirty or self._publications) and self._up:
            await self._subscribe_rooms()
            frames: list[_Frame] = []
            while self._frames and len(frames) < 1000:
                frames.append(self._frames.popleft())
            changes, self._dirty = self._dirty, {}
            self._in_flight = len(frames) + len(changes)
            try:
                holders = await self._holders(frames)
                sent = 0
                for target, data in frames:
                    if isinstance(target, str):
                        subjects = [target]
                    else:
                        nodes = {holders[c] for c in target if c in holders}
                        subjects = [self.subjects.node(node) for node in sorted(nodes)]
                    try:
                        for subject in subjects:
                            await nc.publish(subject, data)
                    except nats.errors.MaxPayloadError:
                        self._lose(1)
                        logger.error("a frame of %d bytes exceeds NATS's max_payload", len(data))
                    else:
                        sent += 1
                await self._gather([self._change(key, value) for key, value in changes.items()])
                if frames:
                    await nc.flush(timeout=int(max(self.timeout, 1)))
            except BaseException:
                # Failed, or cancelled: these frames may not have reached NATS. Counted
                # as lost (at most once); presence is rewritten from the mirror.
                self._lose(len(frames))
                raise
            finally:
                self._in_flight = 0
            self._counters["published"] += sent
            if self._publications:
                await self._flush_publications()

    async def _holders(self, frames: list[_Frame]) -> dict[str, str]:
        """The node holding each connection that ``frames`` are for (those no node holds
        are left out): remembered, or its ``n.<conn>`` key, read concurrently."""
        wanted = {c for target, _ in frames if not isinstance(target, str) for c in target}
        if not wanted:
            return {}
        known = self._holders_found
        holders = {c: known[c] for c in wanted if c in known}
        missing = sorted(wanted.difference(holders))
        if missing:
            self._counters["holder_lookups"] += len(missing)
            found = await self._gather([self._holder(conn_id) for conn_id in missing])
            for conn_id, node in zip(missing, found, strict=True):
                if node is not None:  # not found yet: looked up again next time
                    holders[conn_id] = node
                    if len(known) >= _HOLDERS_KEPT:
                        del known[next(iter(known))]
                    known[conn_id] = node
        return holders

    def _holder(self, conn_id: str) -> Callable[[], Awaitable[str | None]]:
        async def read() -> str | None:
            value = await self._last_value(f"n.{token(conn_id)}")
            # One string per node, however many of its connections are remembered.
            return None if value is None else sys.intern(value.decode("ascii", "replace"))

        return read

    async def _last_value(self, key: str) -> bytes | None:
        """The value of a key of the presence bucket (``None``: no such key, or no bucket
        yet)."""
        try:
            answer = await self._api(
                f"STREAM.MSG.GET.KV_{self.presence_bucket}",
                {"last_by_subj": f"$KV.{self.presence_bucket}.{key}"},
            )
        except NotFoundError as exc:
            if exc.err_code in (_NO_MESSAGE, _STREAM_NOT_FOUND):
                return None
            raise
        return base64.b64decode(answer["message"].get("data") or "")

    async def _flush_publications(self) -> None:
        """Store the queued publications: each room's in order, the rooms concurrently."""
        rooms: dict[tuple[int, int, str], list[QueuedPublication]] = {}
        taken = 0
        while self._publications and taken < 1000:
            publication = self._publications.popleft()
            rooms.setdefault(publication.room_key, []).append(publication)
            taken += 1
        pending = taken

        def done(stored: bool) -> None:
            nonlocal pending
            pending -= 1
            if stored:
                self._counters["published"] += 1
            else:
                self._lose(1)

        def publisher(batch: list[QueuedPublication]) -> Callable[[], Awaitable[None]]:
            return lambda: self._history.publish(batch, done)

        self._in_flight = taken
        try:
            await self._gather([publisher(batch) for batch in rooms.values()])
        except BaseException:
            # Failed, or cancelled: the ones not acknowledged may not have been stored.
            self._lose(pending)
            raise
        finally:
            self._in_flight = 0

    def _change(self, key: str, value: bytes | None) -> Callable[[], Awaitable[None]]:
        if value is None:
            return lambda: self._purge(self.presence_bucket, key)
        return lambda: self._put(self.presence_bucket, key, value)

    async def _write_presence(self) -> None:
        """Replace this node's presence on the server by the mirror."""
        self._resync = False
        self._resyncs_started += 1
        self._dirty.clear()  # the mirror has every change
        await self._ensure_buckets()
        # Beat first: from the moment ``o.<node>`` exists, nobody may take us for dead.
        await self._put(self.nodes_bucket, self.node, b"")
        await self._remove_node(self.node, keep_owner=True)
        node = self.node
        writes: dict[str, bytes] = {f"o.{node}": b""}
        for conn_id, rooms in self._local.items():
            conn = token(conn_id)
            writes[f"c.{node}.{conn}"] = b""
            writes[f"n.{conn}"] = self._node_value
            for room in rooms:
                writes[f"m.{token(room)}.{node}.{conn}"] = b""
            user = self._users.get(conn_id)
            if user is not None:
                writes[f"u.{conn}"] = user
        await self._gather([self._change(key, value) for key, value in writes.items()])
        self._counters["resyncs"] += 1

    async def _remove_node(self, node: str, *, keep_owner: bool = False) -> None:
        """Remove the presence of ``node``: its connections (and where they are),
        memberships and users."""
        conns = [
            key.rpartition(".")[2]
            for key in await self._subjects(self.presence_bucket, f"c.{node}.*")
        ]
        purges = [f"c.{node}.*", f"m.*.{node}.*"]
        purges += [f"{kind}.{conn}" for conn in conns for kind in ("n", "u")]
        await self._gather([self._change(pattern, None) for pattern in purges])
        if not keep_owner:
            await self._purge(self.presence_bucket, f"o.{node}")

    # The subscriber and the heartbeat --------------------------------------------------------

    def _on_message(self, subject: bytes, data: bytes, headers: bytes | None) -> None:
        """A message of the bus's subscriptions, handed over by the client's reader in the
        order the server sent it (``_nats_bus.BusClient``)."""
        counters = self._counters
        counters["received_frames"] += 1
        counters["received_bytes"] += len(data)
        if subject == self._everyone:
            counters["received_frames_everyone"] += 1
        elif subject == self._inbox:
            counters["received_frames_node"] += 1
        else:
            counters["received_frames_room"] += 1
        if headers:
            self._on_publication(headers, data)
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

    def _on_publication(self, headers: bytes, data: bytes) -> None:
        """A publication to a room with history, republished by its stream."""
        found = publication_of(parse_headers(headers))
        if found is None:
            return  # a marker (a room's new epoch), or not ours
        self._counters["received"] += 1
        sink = self.publication_sink
        if sink is None:
            return
        try:
            sink(found[0], found[1], data)
        except Exception:  # one bad frame must not stop the bus
            logger.exception("delivering a publication from the bus failed")

    async def _beat(self) -> None:
        stop = self._stop_event
        assert stop is not None
        while not self._stopping:
            if self._up and not self._resync:
                try:
                    await self._while_up(self._check_nodes())
                except _FAILURES as exc:
                    logger.debug("heartbeat failed: %r", exc)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self.heartbeat_interval)

    async def _check_nodes(self) -> None:
        """Beat, write our presence again if it is missing, remove the dead nodes'."""
        started = self._resyncs_started
        await self._put(self.nodes_bucket, self.node, b"")
        owners = {key[2:] for key in await self._subjects(self.presence_bucket, "o.*")}
        alive = set(await self._subjects(self.nodes_bucket, "*"))
        if self.node not in owners and started == self._resyncs_started and not self._resync:
            # We were missing: the server lost its data, or presumed us dead.
            self._resync = True
            self._signal(self._wakeup)
        for node in sorted(owners - alive - {self.node}):
            await self._remove_node(node)
            self._counters["dead_nodes_removed"] += 1
            logger.info("removed the presence of dead node %s", node)

    # The hub's side --------------------------------------------------------------------------

    def _queue_full(self) -> bool:
        return len(self._frames) + len(self._publications) >= self.publish_queue

    def publish(self, frame: bytes, route: Route) -> None:
        frames = self._frames
        if not self._up or len(frames) + len(self._publications) >= self.publish_queue:
            self._lose(1)
            return
        target: str | tuple[str, ...]
        room = route.room
        if room is not None:
            target = self._room_subjects.get(room) or self._room_subject(room)
        elif route.conns is not None:
            if not route.conns:
                return
            target = route.conns  # the writer looks up their holders
        elif route.node is not None:
            target = self.subjects.node(route.node)
        else:
            target = self.subject
        frames.append((target, self._tag + frame))
        wakeup = self._wakeup
        if wakeup is not None:
            wakeup.set()

    def _room_subject(self, room: str) -> str:
        kept = self._room_subjects
        if len(kept) >= _ROOM_SUBJECTS_KEPT:
            del kept[next(iter(kept))]
        subject = kept[room] = self.subjects.room(room)
        return subject

    def subscribe(self, room: str) -> None:
        if self._rooms.want(room):
            self._signal(self._wakeup)

    def unsubscribe(self, room: str) -> None:
        if self._rooms.drop(room):
            self._signal(self._wakeup)

    async def wait_subscribed(self, rooms: Iterable[str]) -> None:
        if not self._up:
            raise BackendUnavailable(f"NATS at {self.url} is unreachable")
        self._signal(self._wakeup)  # the writer subscribes
        try:
            await self._rooms.wait(rooms, lambda: self._up, _CONFIRM_TIMEOUT)
        except asyncio.TimeoutError:
            raise BackendUnavailable(f"NATS at {self.url} did not confirm in time") from None
        if not self._up:
            raise BackendUnavailable(f"NATS at {self.url} is unreachable")

    def publish_history(self, room: str, frame: bytes, size: int, ttl: float) -> None:
        if not self._up or self._queue_full():
            self._lose(1)
            return
        self._publications.append(QueuedPublication(token(room), frame, size, _ms(ttl)))
        self._signal(self._wakeup)

    async def read_history(self, room: str, since: int, ttl: float, size: int) -> HistoryRead:
        return await self._query(
            lambda: self._history.read(token(room), since, size, _ms(ttl)), None
        )

    def _set(self, key: str, value: bytes | None) -> None:
        if not self._up:
            return  # presence is rewritten from the mirror on reconnection
        self._dirty[key] = value
        self._signal(self._wakeup)

    def _membership(self, conn_id: str, room: str) -> str:
        return f"m.{token(room)}.{self.node}.{token(conn_id)}"

    def connection_added(self, conn_id: str) -> None:
        self._local[conn_id] = set()
        conn = token(conn_id)
        self._set(f"c.{self.node}.{conn}", b"")
        self._set(f"n.{conn}", self._node_value)

    def connection_removed(self, conn_id: str) -> None:
        rooms = self._local.pop(conn_id, None)
        if rooms is None:
            return
        for room in rooms:
            self._set(self._membership(conn_id, room), None)
        conn = token(conn_id)
        self._set(f"c.{self.node}.{conn}", None)
        self._set(f"n.{conn}", None)
        if self._users.pop(conn_id, None) is not None:
            self._set(f"u.{conn}", None)

    def user_set(self, conn_id: str, user: bytes | None) -> None:
        if conn_id not in self._local:
            return
        if user is None:
            if self._users.pop(conn_id, None) is not None:
                self._set(f"u.{token(conn_id)}", None)
            return
        self._users[conn_id] = user
        self._set(f"u.{token(conn_id)}", user)

    def room_joined(self, conn_id: str, room: str) -> None:
        rooms = self._local.get(conn_id)
        if rooms is None or room in rooms:
            return
        rooms.add(room)
        self._set(self._membership(conn_id, room), b"")

    def room_left(self, conn_id: str, room: str) -> None:
        rooms = self._local.get(conn_id)
        if rooms is None or room not in rooms:
            return
        rooms.discard(room)
        self._set(self._membership(conn_id, room), None)

    # Queries ---------------------------------------------------------------------------------

    async def _query(self, query: Callable[[], Awaitable[T]], empty: T | None) -> T:
        """Run ``query``, a bounded number at a time; ``empty`` is its answer when its
        bucket does not exist (``None``: an error)."""
        if self._nc is None or not self._up:
            raise BackendUnavailable(f"NATS at {self.url} is unreachable")
        queries = self._queries
        try:
            if queries is None:
                return await query()
            async with queries:  # each one bounded by the request timeout
                return await query()
        except NotFoundError as exc:
            if exc.err_code != _STREAM_NOT_FOUND or empty is None:
                raise BackendUnavailable(f"NATS at {self.url} failed: {exc!r}") from exc
            return empty  # no bucket yet (the server restarted empty): nothing recorded
        except _FAILURES as exc:
            raise BackendUnavailable(f"NATS at {self.url} failed: {exc!r}") from exc

    async def connection_count(self) -> int:
        return await self._query(lambda: self._count(self.presence_bucket, "c.*.*"), 0)

    async def room_members(self, room: str) -> set[str]:
        keys: list[str] = await self._query(
            lambda: self._subjects(self.presence_bucket, f"m.{token(room)}.*.*"), []
        )
        return {name_of(key.rpartition(".")[2]) for key in keys}

    async def rooms_of(self, conn_id: str) -> set[str]:
        keys: list[str] = await self._query(
            lambda: self._subjects(self.presence_bucket, f"m.*.*.{token(conn_id)}"), []
        )
        return {name_of(key.split(".")[1]) for key in keys}

    async def users(self, conn_ids: list[str]) -> list[bytes | None]:
        if not conn_ids:
            return []

        def get(conn_id: str) -> Callable[[], Awaitable[bytes | None]]:
            return lambda: self._last_value(f"u.{token(conn_id)}")

        found: list[bytes | None] = await self._query(
            lambda: self._gather([get(conn_id) for conn_id in conn_ids]),
            [None] * len(conn_ids),
        )
        return found

    def stats(self) -> dict[str, int]:
        return {
            **self._counters,
            "connected": int(self._up),
            "queued": self._backlog(),
            # Rooms whose subjects this process subscribes to.
            "rooms_subscribed": len(self._rooms),
        }
