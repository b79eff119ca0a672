"""A normal user of the example chat, in its own process: the probe of ``test_attacks.py``.

``python -m tests.reliability.chat_probe ws://127.0.0.1:<port>/ws USERS SERVER_PID``
connects ``USERS`` users (``websockets`` clients) from 127.0.0.1. Each says hello, joins
``general``, then sends a message every ``INTERVAL`` seconds and times the round trip:
from just before the send to the arrival of its own message, broadcast back to the room.
The rate stays under the chat's rate limit (30 messages per 10 s per connection).

Around each round trip it also reads ``/proc/<SERVER_PID>/schedstat``: how long the
server's event loop (its main thread) ran on a CPU during the round trip, and how long it
waited for one while it could have run. On a machine shared with other work, the wall-clock
round trip includes the time the server was not given a CPU; the time the loop *ran* while
the user waited is the server's own share, and the same on a busy machine as on an idle
one: an event loop blocked by an attack (inflating a deflate bomb, parsing a gigabyte)
shows there in full.

It prints ``ready`` once every user has joined, then one line per round trip,
``sample <monotonic time of the send> <seconds> <server ran> <server waited>``, and on a
line ``error <text>`` anything a normal user should never see (an error envelope, a closed
connection, a message not back within ``TIMEOUT``). It stops when its standard input
closes, and prints ``done``. The clock is ``time.monotonic()``, which on Linux is the same
in every process, so the test can tell which round trips happened while it attacked.

Measuring in a process of its own keeps the test process's work (hundreds of attacking
sockets) out of the round trips: what is timed is the server, the loopback and this
small client.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path
from typing import Any

from websockets.asyncio.client import ClientConnection, connect

#: Seconds between two messages of one user: 2 a second, under the chat's 3 a second.
INTERVAL = 0.5
#: Seconds a message may take to come back before it counts as lost.
TIMEOUT = 10.0


def schedstat(path: Path) -> tuple[float, float]:
    """Seconds a thread has run on a CPU, and waited for one while runnable."""
    running, waiting, _ = path.read_text().split()
    return int(running) / 1e9, int(waiting) / 1e9


def say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


class User:
    """One chat user: its connection, and what it waits for (replies by id, its own
    messages by text)."""

    def __init__(self, ws: ClientConnection, name: str, server: Path) -> None:
        self.ws = ws
        self.name = name
        self.server = server
        self.replies: dict[int, asyncio.Future[Any]] = {}
        self.echoes: dict[str, asyncio.Future[float]] = {}

    async def read(self) -> None:
        """Every frame the server sends: resolve what waits for it."""
        try:
            async for frame in self.ws:
                envelope = json.loads(frame)
                kind, data = envelope.get("type"), envelope.get("data")
                if kind == "response" and envelope.get("id") in self.replies:
                    self.replies.pop(envelope["id"]).set_result(data)
                elif kind == "message" and data.get("name") == self.name:
                    echo = self.echoes.pop(data["text"], None)
                    if echo is not None:
                        echo.set_result(time.monotonic())
                elif kind == "error":
                    say(f"error {self.name} got {json.dumps(envelope)}")
        except Exception as exc:  # the connection ended: a normal user never sees it
            say(f"error {self.name} lost its connection: {exc!r}")

    async def call(self, kind: str, data: Any, request_id: int) -> Any:
        reply = self.replies[request_id] = asyncio.get_running_loop().create_future()
        await self.ws.send(json.dumps({"type": kind, "data": data, "id": request_id}))
        return await asyncio.wait_for(reply, TIMEOUT)

    async def round_trip(self, n: int) -> None:
        """Send message ``n`` to the room; report how long it took to come back."""
        text = f"{self.name} says {n}"
        echo = self.echoes[text] = asyncio.get_running_loop().create_future()
        reply = self.replies[n] = asyncio.get_running_loop().create_future()
        ran, waited = schedstat(self.server)
        sent = time.monotonic()
        await self.ws.send(
            json.dumps({"type": "message", "data": {"room": "general", "text": text}, "id": n})
        )
        arrived = await asyncio.wait_for(echo, TIMEOUT)
        ran_after, waited_after = schedstat(self.server)
        assert await asyncio.wait_for(reply, TIMEOUT) is True
        say(
            f"sample {sent:.6f} {arrived - sent:.6f} {ran_after - ran:.6f} "
            f"{waited_after - waited:.6f}"
        )


async def chat(
    url: str,
    server: Path,
    n: int,
    slots: tuple[float, float],
    joined: asyncio.Queue[str],
    stop: asyncio.Event,
) -> None:
    """User ``n``: its round trips start on its own slots, ``first + k * INTERVAL``. A slot
    missed while a round trip was slow is skipped, so users never fall into step after a
    pause (round trips bunched together would all measure the same moment)."""
    name = f"probe-{n}"
    async with connect(url, open_timeout=TIMEOUT, max_size=2**20) as ws:
        assert json.loads(await asyncio.wait_for(ws.recv(), TIMEOUT))["type"] == "welcome"
        user = User(ws, name, server)
        reader = asyncio.create_task(user.read())
        try:
            await user.call("hello", {"name": name}, 1)
            await user.call("join", "general", 2)
            await joined.put(name)
            loop = asyncio.get_running_loop()
            first, spacing = slots
            count = 3
            while not stop.is_set():
                missed = max(0.0, loop.time() - first) // spacing + 1
                await asyncio.sleep(max(0.0, first + missed * spacing - loop.time()))
                try:
                    await user.round_trip(count)
                except (asyncio.TimeoutError, AssertionError) as exc:
                    say(f"error {name} message {count} did not come back: {exc!r}")
                count += 1
        finally:
            reader.cancel()


async def main(url: str, users: int, server_pid: int) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    joined: asyncio.Queue[str] = asyncio.Queue()
    server = Path(f"/proc/{server_pid}/schedstat")
    # The users' slots interleave: one user's message leaves every INTERVAL / users.
    epoch = loop.time()
    tasks = [
        asyncio.create_task(
            chat(url, server, n, (epoch + INTERVAL * n / users, INTERVAL), joined, stop)
        )
        for n in range(users)
    ]
    for _ in range(users):
        await asyncio.wait_for(joined.get(), TIMEOUT * 3)
    say("ready")
    # Standard input closing is the signal to stop.
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    await reader.read()
    stop.set()
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, BaseException):
            say(f"error a user failed: {result!r}")
    say("done")


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3])))
