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
"""

from __future__ import annotations

import time
from typing import Any

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

try:
    from uvicorn.protocols.websockets.websockets_sansio_impl import WebSocketsSansIOProtocol
except ImportError:  # pragma: no cover - uvicorn before 0.35 has no sans-I/O protocol
    _BASE: Any = None
else:
    _BASE = WebSocketsSansIOProtocol


if _BASE is not None:

    class BackpressuredWebSocketProtocol(_BASE):  # type: ignore[misc]
        """uvicorn's sans-I/O WebSocket protocol that stops reading while it cannot write,
        and parses one connection's bytes for at most ``FEED_SECONDS`` per turn of the
        event loop.

        Defined at module level so that ``--workers`` can pickle the configuration.
        """

        write_paused = False
        _feed_scheduled = False

        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            #: Bytes read but not yet given to the parser (reading is paused while any wait).
            self.unfed = bytearray()

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
            return self.write_paused or bool(getattr(self, "read_paused", False))

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
            message = await super().receive()
            # uvicorn resumes reading once the app has taken every queued message; a full
            # write buffer or unparsed bytes keep it paused.
            if self.write_paused or self.unfed:
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
