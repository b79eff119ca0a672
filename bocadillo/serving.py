"""The protocols ``bocadillo run`` gives uvicorn: its own, plus backpressure and fairness.

Three things uvicorn's own protocols let one client do to everyone else:

- **Pongs piling up.** uvicorn answers every ping a client sends with a pong, and keeps
  reading while the pongs pile up in its write buffer: a client that sends pings and never
  reads makes the server buffer the pongs without bound (``docs/deployment.md`` has the
  measurement; the ``websockets`` server does the same). This protocol stops reading from
  a connection while its write buffer is over the transport's high-water mark, and reads
  again once it drains: its pings then wait in its own socket buffers.
- **One read holding the event loop.** A read hands the frame parser up to 256 KiB at
  once, and the parser goes through every frame in it before the loop serves anyone else:
  32,000 minimal frames (``{}``) in one read held the loop for about 200 ms in a run on the
  development machine, whatever the rate limit (it counts messages after they are parsed),
  and uvicorn went on parsing them after the app had closed the connection (it looks for
  the client's close frame). This protocol gives the parser ``FEED_SIZE`` bytes at a time,
  and lets other connections be served once a turn of the event loop has parsed one
  connection's bytes for ``FEED_SECONDS``; the rest waits, with reading paused, for a later
  turn. (A budget of time rather than bytes: parsing costs by the frame, so a large message
  still goes through in one turn.) Once the app has closed the connection, a backlog still
  waiting is dropped unparsed and the connection is left to uvicorn's close timeout (10 s).

- **A stream of bytes read back to back.** uvloop reads a readable connection up to 32
  times (256 KiB each) before it looks at the others, and uvicorn reads the body of a
  request whose view did not read it to the end, to drop it: a client streaming a large
  body gave the HTTP parser megabytes per turn of the event loop. The HTTP protocol here
  reads a connection that sends more than ``BULK_READ`` bytes at once only once per turn.

In the WebSocket protocol, reading is paused for three reasons: uvicorn's flag (a message
waits for the app), a full write buffer, and bytes read but not yet parsed. It resumes only
when none holds.

The WebSocket protocol also keeps less of each connection than uvicorn's: nothing of the
handshake but the scope (whose common headers all connections share), a queue and a flag
without deques, its attributes in slots, one coroutine fewer waiting for a message. Under
``bench/many.py`` (idle connections that joined a room, hub on Redis) a worker's memory per
connection went from 21.8 to 11.4 KiB, and its Python heap from 21,200 to 11,400 bytes;
each change says what it saved.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Generic, TypeVar

from uvicorn.protocols.http.h11_impl import H11Protocol

__all__ = ["BULK_READ", "FEED_SECONDS", "FEED_SIZE", "http_protocol", "websocket_protocol"]

#: Bytes given to the frame parser at a time: about 2 ms of parsing for the smallest
#: frames (680 of them), and more than the read of a client sending one small message.
FEED_SIZE = 4 * 1024
#: Parsing one connection's bytes in one turn of the event loop stops after this long.
FEED_SECONDS = 0.002
#: An HTTP read larger than this (a body streaming in) waits for the next turn of the event
#: loop before the connection is read again; a request head and a small body never do.
BULK_READ = 16 * 1024

_T = TypeVar("_T")


class _Waiters:
    """The coroutines waiting for one condition, kept without a container while there
    is at most one (a connection's usual case). ``asyncio.Event`` and ``asyncio.Queue``
    allocate a ``deque`` of 760 bytes each for theirs, whether anybody waits or not."""

    __slots__ = ("_waiting",)

    def __init__(self) -> None:
        self._waiting: asyncio.Future[None] | list[asyncio.Future[None]] | None = None

    def park(self) -> asyncio.Future[None]:
        """A future that the next ``_wake()`` completes; await it, then ``unpark`` it.
        (Awaited by the caller itself: a coroutine of ours in between would stay
        suspended, 240 bytes, as long as the wait.)"""
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiting = self._waiting
        if waiting is None:
            self._waiting = waiter
        elif isinstance(waiting, list):
            waiting.append(waiter)
        else:
            self._waiting = [waiting, waiter]
        return waiter

    def unpark(self, waiter: asyncio.Future[None]) -> None:
        """Forget ``waiter`` if it is still waiting (its wait was cancelled)."""
        waiting = self._waiting
        if waiting is waiter:
            self._waiting = None
        elif isinstance(waiting, list) and waiter in waiting:
            waiting.remove(waiter)

    def _wake(self) -> None:
        """Wake every coroutine waiting now, in the order they came."""
        waiting = self._waiting
        if waiting is None:
            return
        self._waiting = None
        for waiter in waiting if isinstance(waiting, list) else (waiting,):
            if not waiter.done():
                waiter.set_result(None)


class _Flag(_Waiters):
    """What uvicorn's protocol uses of ``asyncio.Event`` (``set``, ``clear``,
    ``is_set``, ``wait``), with the same behaviour, without the event's deque."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        super().__init__()
        self._set = False

    def is_set(self) -> bool:
        return self._set

    def set(self) -> None:
        if not self._set:
            self._set = True
            self._wake()

    def clear(self) -> None:
        self._set = False

    async def wait(self) -> bool:
        if not self._set:
            waiter = self.park()
            try:
                await waiter
            finally:
                self.unpark(waiter)
        return True


class _Inbox(_Waiters, Generic[_T]):
    """What uvicorn's protocol uses of an unbounded ``asyncio.Queue`` (``put_nowait``,
    ``get``, ``empty``): first in, first out, without the queue's three deques and its
    ``Event``. A ``put_nowait`` wakes every waiting
    ``get``; the first to run takes the item and the others wait again."""

    __slots__ = ("_items",)

    def __init__(self) -> None:
        super().__init__()
        self._items: list[_T] = []

    def empty(self) -> bool:
        return not self._items

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: _T) -> None:
        self._items.append(item)
        self._wake()

    def get_nowait(self) -> _T:
        """The first item (there must be one)."""
        return self._items.pop(0)  # a few items at most: uvicorn pauses reading at one

    async def get(self) -> _T:
        while not self._items:
            waiter = self.park()
            try:
                await waiter
            finally:
                self.unpark(waiter)
        return self.get_nowait()


#: Handshake headers that clients commonly send alike: the same ``Host`` and ``Origin``
#: for a site, one ``User-Agent`` per browser version, ``Upgrade: websocket``... Never a
#: credential, a cookie or a ``Sec-WebSocket-Key`` (unique).
_SHAREABLE = frozenset(
    {
        b"accept-encoding",
        b"accept-language",
        b"cache-control",
        b"connection",
        b"host",
        b"origin",
        b"pragma",
        b"sec-websocket-extensions",
        b"sec-websocket-version",
        b"upgrade",
        b"user-agent",
    }
)
#: One copy of each shareable ``(name, value)`` seen, at most ``_SHARED_LIMIT`` of them
#: (a full table starts over, so odd values cannot make it grow).
_SHARED_HEADERS: dict[tuple[bytes, bytes], tuple[bytes, bytes]] = {}
_SHARED_LIMIT = 1024


def _share_headers(headers: list[tuple[bytes, bytes]]) -> None:
    """Replace, in place, each shareable header of a scope with the one copy of it that
    every connection refers to: a header is a tuple and two ``bytes`` (about 140 bytes
    for ``Upgrade: websocket``) that would otherwise stay with each connection."""
    for index, header in enumerate(headers):
        shared = _SHARED_HEADERS.get(header)
        if shared is not None:
            headers[index] = shared
        elif header[0].lower() in _SHAREABLE:
            if len(_SHARED_HEADERS) >= _SHARED_LIMIT:
                _SHARED_HEADERS.clear()
            _SHARED_HEADERS[header] = header


try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - uvicorn before 0.35 has no sans-I/O protocol
    _BASE: Any = None
else:
    _BASE = WebSocketsSansIOProtocol


#: The attributes uvicorn's sans-I/O protocol sets on each connection (uvicorn 0.54).
_UVICORN_ATTRIBUTES = (
    "app",
    "app_state",
    "asgi_version",
    "client",
    "close_sent",
    "close_timeout",
    "close_timer",
    "config",
    "conn",
    "connections",
    "curr_msg_data_type",
    "default_headers",
    "disconnected",
    "frames",
    "handshake_complete",
    "handshake_initiated",
    "initial_response",
    "last_ping_rtt",
    "logger",
    "loop",
    "pending_ping_payload",
    "ping_interval",
    "ping_sent_at",
    "ping_timeout",
    "ping_timer",
    "pong_timer",
    "queue",
    "read_paused",
    "request",
    "response",
    "root_path",
    "scheme",
    "scope",
    "server",
    "tasks",
    "transport",
    "writable",
)


if _BASE is not None:

    class BackpressuredWebSocketProtocol(_BASE):  # type: ignore[misc]
        """uvicorn's sans-I/O WebSocket protocol that stops reading while it cannot write,
        and parses one connection's bytes for at most ``FEED_SECONDS`` per turn of the
        event loop.

        Defined at module level so that ``--workers`` can pickle the configuration.
        """

        # uvicorn's protocol sets 37 attributes on each connection, more than instances
        # can share a dict's keys for (30 on Python 3.11), so each connection had a dict
        # of its own: 1,580 bytes. In slots they take 8 bytes each: 1,250 bytes less per
        # connection (tracemalloc). An attribute another uvicorn version adds goes to
        # the dict as before.
        __slots__ = (
            *_UVICORN_ATTRIBUTES,
            "unfed",
            "write_paused",
            "_feed_scheduled",
        )
        read_paused: bool

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            # What uvicorn uses of an asyncio.Queue and an asyncio.Event, without their
            # deques: 3,170 and 810 bytes less per connection (tracemalloc).
            self.queue: _Inbox[Any] = _Inbox()
            self.writable = _Flag()
            self.writable.set()
            if not hasattr(self, "read_paused"):  # uvicorn versions that never pause
                self.read_paused = False
            #: Bytes read but not yet given to the parser (reading is paused while any wait).
            self.unfed = bytearray()
            self.write_paused = False
            self._feed_scheduled = False

        def handle_connect(self, event: Any) -> None:
            super().handle_connect(event)
            # The scope now has what the app may read of the handshake request. uvicorn
            # keeps the request as ``self.request`` and never reads it again, and
            # websockets' parser keeps it too (a local of its suspended generator), so
            # its headers are emptied: 1,640 bytes less per connection (tracemalloc).
            self.request = None
            event.headers.clear()
            scope = getattr(self, "scope", None)  # none if the handshake was refused
            if scope is not None:
                _share_headers(scope["headers"])

        def start_keepalive(self) -> None:
            # uvicorn calls this once the handshake response is written; it keeps the
            # response as ``self.response`` and never reads it again: 1,840 bytes less
            # per connection (tracemalloc).
            self.response = None
            super().start_keepalive()

        def data_received(self, data: bytes) -> None:
            if not self.unfed and len(data) <= FEED_SIZE:
                super().data_received(data)  # a normal client's read: parsed at once
                return
            self.unfed += data
            self._feed()

        def _feed(self) -> None:
            """Parse what waits, ``FEED_SIZE`` bytes at a time, for up to ``FEED_SECONDS``
            (unless a reason to wait holds); leave the rest to a later turn of the loop."""
            self._feed_scheduled = False
            if self.transport.is_closing():
                self.unfed.clear()
                return
            if getattr(self, "close_sent", False):
                self._drop_backlog()
                return
            deadline = time.perf_counter() + FEED_SECONDS
            while self.unfed and not self._waiting():
                data = bytes(self.unfed[:FEED_SIZE])
                del self.unfed[:FEED_SIZE]  # cheap: a bytearray drops its head in place
                super().data_received(data)
                if self.transport.is_closing() or time.perf_counter() >= deadline:
                    break
            self._resume_reading()

        def _drop_backlog(self) -> None:
            """The app has closed the connection while the client was still sending in
            bulk: nothing would read those messages, so they are not parsed, and reading
            stays paused until uvicorn's close timeout closes the transport. (A client
            that stops sending when told to close is read as usual.)"""
            self.unfed.clear()
            self.transport.pause_reading()

        def _waiting(self) -> bool:
            """Whether parsing must wait: for the app to take a message (uvicorn's flag),
            or for the write buffer to drain."""
            return self.write_paused or self.read_paused

        def _resume_reading(self) -> None:
            """Read again if no reason to wait holds; otherwise keep reading paused, and go
            on parsing on the next turn if only unparsed bytes hold it."""
            if self.transport.is_closing():
                return
            if self.unfed:
                self.transport.pause_reading()
                if not self._waiting() and not self._feed_scheduled:
                    self._feed_scheduled = True
                    self.loop.call_soon(self._feed)
            elif self._waiting():
                self.transport.pause_reading()
            else:
                self.transport.resume_reading()

        def pause_writing(self) -> None:
            super().pause_writing()
            self.write_paused = True
            self.transport.pause_reading()

        def resume_writing(self) -> None:
            super().resume_writing()
            self.write_paused = False
            self._resume_reading()

        async def send(self, message: Any) -> None:
            await super().send(message)
            if self.unfed and getattr(self, "close_sent", False):
                self._drop_backlog()  # without waiting for more bytes to arrive

        async def receive(self) -> Any:
            # uvicorn's receive and the queue's get, done in this one coroutine: each one
            # awaited here would stay suspended under it while the app waits (200 and 224
            # bytes per connection). uvicorn resumes reading once the app has taken every
            # queued message; a full write buffer or unparsed bytes keep it paused.
            queue = self.queue
            while queue.empty():
                waiter = queue.park()
                try:
                    await waiter
                finally:
                    queue.unpark(waiter)
            message = queue.get_nowait()
            if self.read_paused and self.queue.empty():
                self.read_paused = False
                self._resume_reading()
            elif self.write_paused or self.unfed:
                self._resume_reading()
            return message


class FairH11Protocol(H11Protocol):
    """uvicorn's h11 protocol that reads a connection sending in bulk once per turn of
    the event loop.

    Defined at module level so that ``--workers`` can pickle the configuration.
    """

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if len(data) > BULK_READ and self._reads_itself():
            # Not through uvicorn's flow control: its own pauses are left as they are.
            self.transport.pause_reading()
            self.loop.call_soon(self._read_again)

    def _reads_itself(self) -> bool:
        """Whether this protocol still reads the connection, and has not paused it itself
        (an upgrade hands the connection to the WebSocket protocol)."""
        transport = self.transport
        return (
            not self.flow.read_paused
            and not transport.is_closing()
            and transport.get_protocol() is self
        )

    def _read_again(self) -> None:
        if self._reads_itself():
            self.transport.resume_reading()


def http_protocol() -> Any:
    """The protocol class for ``uvicorn.Config(http=...)``: uvicorn's h11 protocol, reading
    a connection that sends in bulk once per turn of the event loop."""
    return FairH11Protocol


def websocket_protocol() -> Any:
    """The protocol class for ``uvicorn.Config(ws=...)``, or ``"auto"`` when this uvicorn
    has no sans-I/O ``websockets`` protocol to extend (uvicorn before 0.35)."""
    if _BASE is None:  # pragma: no cover - older uvicorn
        return "auto"
    return BackpressuredWebSocketProtocol
