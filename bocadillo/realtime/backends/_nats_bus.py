"""Where the NATS backend publishes each frame, and how it reads them back, in order, for
the rooms it needs only (``nats.py`` drives it).

Subjects. With ``P`` the prefix, and room names and connection ids as key tokens
(``token``: kept as they are when made of letters, digits, ``-`` and ``_``, else ``=`` and
their URL-safe base64, so any name is one valid token and two names never share one):

================================  ==================================================
subject                           what
================================  ==================================================
``P.bus``                         frames for every process
``P.node.<node>``                 frames for one process: ``send``/``disconnect``/
                                  ``request`` to its connections, replies to it
``P.hpub.room.<room>``            a room's frames (broadcasts, presence events)
``P.hpub.<size>_<ttl>.<room>``    a room's history publications, republished there by
                                  its stream (``_nats_history.py``)
================================  ==================================================

A process subscribes to ``P.bus`` and ``P.node.<its node>`` for its whole life, and to
``P.hpub.*.<room>`` (one subscription: the room's frames and its publications) while it
has a member in the room. ``hpub`` is the hierarchy the history streams have always
republished to: a stream's ``republish`` cannot be changed once it exists, and streams
made by an earlier version live on in a NATS server that outlives the app's deploys.

Why a subject per room, not partitions as on Redis: Redis partitions rooms so that a
Redis Cluster can spread them over its hash slots; NATS has no slots, and its servers
match subjects against their subscriptions in a tree of tokens with a cache. So each room
gets its own subject, and a process receives exactly the rooms it has members in, where a
partition would bring it every room that hashes with one of its own. A subscription costs
about 3.6 KiB in the process (nats-py's queue and objects), a fraction of what the
connection that made the process join the room costs.

Order. nats-py hands each subscription's messages to a task of its own, so two messages
of two subscriptions may be handled in another order than they arrived. The backend
promises more (``ordered``: the frames of one process reach another in the order they
were published, whatever their routes), and NATS keeps it on the wire: a server sends one
publisher's messages to a subscriber in the order they were published, across subjects.
So ``BusClient`` hands the messages of the bus's subscriptions to the backend from its
reader, as they are parsed, and never queues them.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import re
from collections.abc import Callable, Iterable

from ...errors import MissingDependency

try:
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.aio.subscription import Subscription
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependency(
        "the NATS hub backend needs the 'nats-py' package: pip install 'bocadillo[nats]'"
    ) from exc

__all__ = ["PLAIN", "BusClient", "OnMessage", "RoomSubscriptions", "Subjects", "name_of", "token"]

#: The NATS protocol's PING.
_PING = b"PING\r\n"
#: Names kept as they are in keys and subjects (any other is encoded: ``token``), and what
#: a prefix may hold (it names buckets, ``[A-Za-z0-9_-]``, and a subject token).
PLAIN = re.compile(r"[A-Za-z0-9_-]+\Z")

#: Called with each message of a bus subscription: ``(subject, data, raw headers)``, the
#: raw headers (``NATS/1.0\r\n...``) empty or ``None`` when the message has none.
OnMessage = Callable[[bytes, bytes, bytes | None], None]


@functools.lru_cache(maxsize=4096)
def token(name: str) -> str:
    """``name`` as one key or subject token (see the module docstring); the rooms a
    process publishes to are few and repeat: their tokens are kept."""
    if PLAIN.match(name):
        return name
    return "=" + base64.urlsafe_b64encode(name.encode()).decode("ascii").rstrip("=")


def name_of(encoded: str) -> str:
    """The name a ``token`` stands for."""
    if not encoded.startswith("="):
        return encoded
    data = encoded[1:]
    return base64.urlsafe_b64decode(data + "=" * (-len(data) % 4)).decode()


class Subjects:
    """The subjects of one app (one prefix) and one node (see the module docstring)."""

    __slots__ = ("everyone", "inbox", "prefix", "_node_prefix", "_room_prefix")

    def __init__(self, prefix: str, node: str) -> None:
        self.prefix = prefix
        #: Frames for every process.
        self.everyone = f"{prefix}.bus"
        self._node_prefix = f"{prefix}.node."
        self._room_prefix = f"{prefix}.hpub.room."
        #: This node's subject.
        self.inbox = self.node(node)

    def node(self, node: str) -> str:
        """The subject of one process's frames."""
        return self._node_prefix + node

    def room(self, room: str) -> str:
        """The subject of a room's frames."""
        return self._room_prefix + token(room)

    def room_interest(self, room: str) -> str:
        """What a process with a member in ``room`` subscribes to: its frames and its
        history publications."""
        return f"{self.prefix}.hpub.*.{token(room)}"


class BusClient(Client):
    """nats-py's client, handing the messages of the bus's subscriptions (made with
    ``subscribe_bus``) to ``on_message`` as its reader parses them, in the order the
    server sent them (see the module docstring); other subscriptions (JetStream replies,
    history reads) are served as nats-py serves them.

    It overrides ``Client._process_msg``, where nats-py's parser hands over every message
    (the internals used here are the same from nats-py 2.2 to 2.16;
    ``tests/backends/test_nats.py`` checks each adjustment). A bus subscription is marked
    by a future that is never resolved: nats-py starts no task and no iterator for a
    subscription with a future, and its reconnection subscribes it again like any other.
    Three more of nats-py's internals are adjusted for the bus: ``_send_ping`` (a flush
    that follows what was sent before it), ``_process_pong`` (a flush given up) and
    ``forget_pending`` (nothing sent late).

    Args:
        on_message: Called with each message of a bus subscription; it must not raise.
    """

    def __init__(self, on_message: OnMessage) -> None:
        super().__init__()
        self._on_message = on_message
        self._bus_mark: asyncio.Future[Msg] = asyncio.get_running_loop().create_future()

    async def subscribe_bus(self, subject: str) -> Subscription:
        """Subscribe to ``subject`` for ``on_message`` (sent to the server with the next
        write; ``flush`` waits until the server has it)."""
        return await self.subscribe(subject, future=self._bus_mark)

    async def _send_ping(self, future: asyncio.Future[bool] | None = None) -> None:
        # nats-py writes its PING to the socket at once, while the commands made before it
        # (``subscribe``, ``publish``) wait in a buffer for its flusher task: the PONG of a
        # ``flush`` could come back before the server has read them, and a subscription
        # made just before a flush then missed the messages published right after it
        # (measured on loopback). The PING goes in the buffer, behind them.
        if future is None:
            future = asyncio.get_running_loop().create_future()
        self._pongs.append(future)
        await self._send_command(_PING)
        await self._flush_pending()

    def forget_pending(self) -> None:
        """Drop what waits in the buffer (the connection was lost): nats-py would write it
        after reconnecting, and a frame the backend counted as lost would arrive late.
        (Subscriptions are made again from nats-py's own table; presence is rewritten.)"""
        self._pending = []
        self._pending_data_size = 0

    async def _process_pong(self) -> None:
        # nats-py answers each PONG with the future of the oldest PING, and leaves in
        # place the future of a flush that timed out or was cancelled (the writer is, when
        # the connection drops or the backend stops): resolving it again would raise in
        # the reader, and nats-py would drop the connection. A fresh stand-in takes it.
        pongs = self._pongs
        if pongs and pongs[0].done():
            pongs[0] = asyncio.get_running_loop().create_future()
        await super()._process_pong()

    async def _process_msg(
        self, sid: int, subject: bytes, reply: bytes, data: bytes, headers: bytes
    ) -> None:
        sub = self._subs.get(sid)
        if sub is None or sub._future is not self._bus_mark:
            await super()._process_msg(sid, subject, reply, data, headers)
            return
        stats = self.stats
        stats["in_msgs"] += 1
        stats["in_bytes"] += len(data)
        self._on_message(subject, data, headers)


class RoomSubscriptions:
    """The rooms a process subscribes to on a ``BusClient``: what the hub wants
    (``want``/``drop``, at any time), made true by the backend's writer (``sync``),
    waited for by ``wait``.

    Args:
        subjects: The app's subjects.
    """

    def __init__(self, subjects: Subjects) -> None:
        self.subjects = subjects
        #: The rooms the hub subscribed to.
        self.wanted: set[str] = set()
        #: Rooms wanted or dropped since ``sync`` last looked at them.
        self._changes: set[str] = set()
        #: The subscriptions on the client, by room.
        self._subs: dict[str, Subscription] = {}
        #: The rooms whose subscription the server has (a flush followed it).
        self._confirmed: set[str] = set()
        self._confirmation: asyncio.Future[None] | None = None

    def __len__(self) -> int:
        """How many rooms are subscribed on the client."""
        return len(self._subs)

    @property
    def pending(self) -> int:
        """Changes not yet made, and subscriptions not yet confirmed."""
        return len(self._changes) + len(self._subs) - len(self._confirmed)

    def want(self, room: str) -> bool:
        """Subscribe to ``room`` (at the next ``sync``); False if it was already."""
        if room in self.wanted:
            return False
        self.wanted.add(room)
        self._changes.add(room)
        return True

    def drop(self, room: str) -> bool:
        """Unsubscribe from ``room`` (at the next ``sync``); False if it was not wanted."""
        if room not in self.wanted:
            return False
        self.wanted.discard(room)
        self._changes.add(room)
        return True

    async def sync(self, client: BusClient, timeout: float) -> None:
        """(Un)subscribe the rooms changed since the last call and wait until the server
        has the subscriptions. Rooms changed while this waits are done too before it
        returns, so the caller may write the memberships it holds right after.

        Raises:
            nats.errors.Error, OSError, asyncio.TimeoutError: if NATS is unreachable
                (what was not done is done at the next call).
        """
        while self._changes or len(self._confirmed) < len(self._subs):
            for room in list(self._changes):
                self._changes.discard(room)
                try:
                    await self._apply(client, room)
                except BaseException:
                    self._changes.add(room)
                    raise
            if len(self._confirmed) < len(self._subs):
                await client.flush(timeout=max(int(timeout), 1))
                # The server reads a connection in order: every subscription sent
                # before the flush is in place.
                self.confirm_all()

    async def _apply(self, client: BusClient, room: str) -> None:
        sub = self._subs.get(room)
        if room in self.wanted:
            if sub is None:
                self._subs[room] = await client.subscribe_bus(self.subjects.room_interest(room))
        elif sub is not None:
            del self._subs[room]
            self._confirmed.discard(room)
            await sub.unsubscribe()

    def confirm_all(self) -> None:
        """The server has every subscription of the client: after a flush, or after a
        reconnection (nats-py subscribes again, then flushes, then reports it)."""
        self._confirmed = set(self._subs)
        self._notify()

    def lost(self) -> None:
        """The connection is lost: nothing is confirmed until it is back."""
        self._confirmed.clear()
        self._notify()

    def clear(self) -> None:
        """Forget everything (the backend stopped)."""
        self.wanted.clear()
        self._changes.clear()
        self._subs.clear()
        self.lost()

    def _notify(self) -> None:
        waiter, self._confirmation = self._confirmation, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    async def wait(self, rooms: Iterable[str], up: Callable[[], bool], timeout: float) -> None:
        """Wait until each of ``rooms`` that is wanted is subscribed and confirmed, or
        until ``up()`` is false.

        Raises:
            asyncio.TimeoutError: after ``timeout`` seconds.
        """
        rooms = list(rooms)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while up() and not all(
            room not in self.wanted or room in self._confirmed for room in rooms
        ):
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError
            waiter = self._confirmation
            if waiter is None:  # shared by every waiter until the next change
                waiter = self._confirmation = loop.create_future()
            await asyncio.wait({waiter}, timeout=remaining)
