"""Feed clients for the load scenarios: many ``/feed`` connections, churned and checked.

Every client of ``soak_app``'s ``/feed?room=R`` route gets its connection id first, then
the room's paced broadcasts ``{"r": room, "s": seq}`` (see ``POST /pace``) and any
``POST /broadcast``. A ``FeedPool`` opens clients, churns them (closing some gracefully,
dropping others without a close frame, opening as many new ones) and keeps, for every
client it ever had, what it received: a gap in a room's sequence numbers is a lost
message.
"""

from __future__ import annotations

import asyncio
import json
import random
from dataclasses import dataclass, field
from typing import Any

from .wsclient import WSClient, open_ws

__all__ = ["Feed", "FeedPool"]


@dataclass
class Feed:
    """What one client knows and received."""

    port: int
    room: str
    id: str | None = None
    #: Paced sequence numbers received, first and last (None before the first).
    first: int | None = None
    last: int | None = None
    received: int = 0
    #: Sequence numbers missing between two received ones (``(after, got)`` pairs).
    gaps: list[tuple[int, int]] = field(default_factory=list)
    #: Values of ``{"final": value}`` broadcasts received.
    finals: list[Any] = field(default_factory=list)
    #: Paced messages received, as (seq, time received) pairs, when ``keep`` is on.
    times: list[tuple[int, float]] = field(default_factory=list)
    keep: bool = False
    id_arrived: asyncio.Future[str] | None = None


def _feed(client: WSClient) -> Feed:
    feed = client.state
    assert isinstance(feed, Feed)
    return feed


class FeedPool:
    """Feed clients of one scenario (see the module docstring).

    Args:
        rooms: The rooms clients are spread over (client ``i`` joins ``rooms[i % n]``).
        seed: Seeds the choice of who leaves and how.
    """

    def __init__(self, rooms: list[str], seed: int = 9) -> None:
        self.rooms = rooms
        self.rng = random.Random(seed)
        self.live: list[WSClient] = []
        self.departed: list[Feed] = []
        self.opened = 0
        self.open_failures: list[str] = []
        self.graceful = 0
        self.abrupt = 0
        self.unexpected_closes: list[tuple[int | None, str]] = []
        self._next_room = 0
        self._tasks: set[asyncio.Task[Any]] = set()
        self._loop = asyncio.get_running_loop()

    # Receiving --------------------------------------------------------------------------

    def _on_message(self, client: WSClient, opcode: int, payload: bytes) -> None:
        feed = _feed(client)
        message = json.loads(payload)
        seq = message.get("s")
        if seq is not None:
            if feed.last is not None and seq != feed.last + 1:
                feed.gaps.append((feed.last, seq))
            if feed.first is None:
                feed.first = seq
            feed.last = seq
            feed.received += 1
            if feed.keep:
                feed.times.append((seq, self._loop.time()))
        elif "id" in message:
            feed.id = message["id"]
            if feed.id_arrived is not None and not feed.id_arrived.done():
                feed.id_arrived.set_result(feed.id)
        elif "final" in message:
            feed.finals.append(message["final"])

    # Opening and closing ------------------------------------------------------------------

    async def open(self, port: int, room: str | None = None, *, keep: bool = False) -> WSClient:
        """Open one client in ``room`` (the next room in turn by default) and wait for its id."""
        if room is None:
            room = self.rooms[self._next_room % len(self.rooms)]
            self._next_room += 1
        feed = Feed(port=port, room=room, keep=keep, id_arrived=self._loop.create_future())
        client = await open_ws(port, f"/feed?room={room}", on_message=self._on_message, state=feed)
        assert feed.id_arrived is not None
        await asyncio.wait_for(asyncio.shield(feed.id_arrived), 60)
        self.live.append(client)
        self.opened += 1
        return client

    async def open_many(self, port: int, count: int, *, concurrency: int = 100) -> None:
        """Open ``count`` clients, at most ``concurrency`` handshakes at a time."""
        semaphore = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with semaphore:
                await self.open(port)

        results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
        failures = [repr(r) for r in results if isinstance(r, BaseException)]
        self.open_failures += failures
        assert not failures, f"{len(failures)} connections failed, e.g. {failures[:3]}"

    def _take(self, index: int) -> WSClient:
        live = self.live
        client = live[index]
        live[index] = live[-1]
        live.pop()
        return client

    def leave(self, client: WSClient, *, abrupt: bool) -> None:
        """Take ``client`` out of the live set: drop its TCP connection (no close frame),
        or start a normal close whose end is awaited in the background."""
        self.departed.append(_feed(client))
        if abrupt:
            self.abrupt += 1
            client.abort()
        else:
            self.graceful += 1
            client.close(1000)
            self._spawn(client.wait_closed(30))

    def _spawn(self, coro: Any) -> None:
        task = self._loop.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _replace(self, port: int, room: str) -> None:
        try:
            await self.open(port, room)
        except (OSError, asyncio.TimeoutError) as exc:
            self.open_failures.append(repr(exc))

    async def churn(
        self,
        duration: float,
        rate: float,
        *,
        abrupt_share: float = 0.2,
        ports: list[int] | None = None,
        tick: float = 0.05,
    ) -> int:
        """For ``duration`` seconds, ``rate`` times a second: a random live client leaves
        (``abrupt_share`` of them without a close frame) and a new one joins its room on
        the same server (or on a random one of ``ports``). Returns how many left."""
        loop = self._loop
        start = loop.time()
        done = 0
        ticks = int(duration / tick)
        for n in range(1, ticks + 1):
            due = int(rate * n * tick) - done
            for _ in range(due):
                if not self.live:
                    break
                client = self._take(self.rng.randrange(len(self.live)))
                feed = _feed(client)
                self.leave(client, abrupt=self.rng.random() < abrupt_share)
                port = feed.port if not ports else self.rng.choice(ports)
                self._spawn(self._replace(port, feed.room))
                done += 1
            delay = start + n * tick - loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
        return done

    async def settle(self, timeout: float = 60) -> None:
        """Wait for every background open and close to end."""
        if self._tasks:
            await asyncio.wait_for(asyncio.gather(*list(self._tasks)), timeout)

    async def close_all(self, *, timeout: float = 60) -> None:
        """Close every live client normally and wait for the TCP connections to end."""
        clients, self.live = self.live, []
        for client in clients:
            self.departed.append(_feed(client))
            client.close(1000)
        await asyncio.wait_for(asyncio.gather(*(c.wait_closed(30) for c in clients)), timeout + 30)
        await self.settle(timeout)

    def forget(self, port: int) -> int:
        """Count the clients of the server on ``port`` as departed (it was killed)."""
        gone = [c for c in self.live if _feed(c).port == port]
        self.live = [c for c in self.live if _feed(c).port != port]
        for client in gone:
            self.departed.append(_feed(client))
            client.abort()
        return len(gone)

    def abort_all(self) -> None:
        """Drop every connection at once (cleanup after a failure)."""
        for client in self.live:
            client.abort()
        self.live = []

    # What the checks read ------------------------------------------------------------------

    def feeds(self) -> list[Feed]:
        return [_feed(c) for c in self.live]

    def all_feeds(self) -> list[Feed]:
        return self.feeds() + self.departed

    def live_ids(self, port: int | None = None) -> set[str]:
        return {f.id for f in self.feeds() if f.id is not None and port in (None, f.port)}

    def members(self, port: int | None = None) -> dict[str, list[str]]:
        """Room -> sorted ids of the live clients (on ``port``), as ``/state`` lists them."""
        rooms: dict[str, list[str]] = {}
        for feed in self.feeds():
            if port in (None, feed.port):
                assert feed.id is not None
                rooms.setdefault(feed.room, []).append(feed.id)
        return {room: sorted(ids) for room, ids in sorted(rooms.items())}

    def gaps(self) -> list[tuple[str | None, int, int]]:
        return [(f.id, a, b) for f in self.all_feeds() for a, b in f.gaps]

    def received(self) -> int:
        return sum(f.received for f in self.all_feeds())
