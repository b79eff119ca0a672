"""Fuzzing the message-type endpoint of a real uvicorn with generated frames.

``fuzz.frames`` generates ``FRAMES`` frames from a seed (``BOCADILLO_FUZZ_SEED``, 2024 by
default) and ``fuzz.oracle`` says, from docs/realtime.md alone, what the server must
answer to each: a response, an error envelope with its code and request id, or a close
code. Frames that leave the connection open are pipelined, a batch at a time, over a few
connections that joined ``lobby``; frames that close it (over the size limit, invalid
UTF-8 in a text frame, a header declaring more than uvicorn accepts) each get a
connection of their own. Meanwhile a bystander in ``lobby`` (a ``websockets`` client)
must receive every message another client says there, in order.

The server must never crash nor log anything but the handler errors the ``boom`` frames
cause on purpose and uvicorn's report of each invalid UTF-8 text frame.

A second test floods the endpoint over its rate limit: each flooder gets exactly its
allowance, then ``rate_limited`` errors, then a 1008 close, and the bystander still gets
everything it should.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
from collections import Counter
from typing import Any

import pytest
from websockets.asyncio.client import ClientConnection, connect

from .fuzz import ANY, Frame, frames, giant_frames
from .harness import eventually, record_figures, size
from .wsclient import BINARY, CONT, TEXT, WSClient, encode_frame, frame_header, open_ws

pytestmark = [pytest.mark.integration, pytest.mark.anyio]

FRAMES = size(10_000, 100_000)
GIANTS = size(2, 10)
SEED = int(os.environ.get("BOCADILLO_FUZZ_SEED", "2024"))
#: Connections the pipelined frames are spread over, and frames sent before reading.
WORKERS = 4
BATCH = 50
TIMEOUT = 60.0
TICK_PREFIX = "bystander-tick-"

#: What the server logs on purpose: the boom handler's exception, and uvicorn's report
#: of a text frame that is not UTF-8.
BOOM_LOG = r"(?s)^ERROR bocadillo\.dispatch: socket handler 'boom' failed\n.*RuntimeError: boom"
INVALID_UTF8_LOG = (
    r"(?s)^ERROR:\s+Invalid UTF-8 sequence received from client\..*UnicodeDecodeError"
)


def encode(frame: Frame) -> bytes:
    """The bytes of ``frame`` on the wire: one frame, or its fragments."""
    payload = frame.payload
    if frame.declared is not None:
        return frame_header(frame.opcode, frame.declared) + os.urandom(4) + payload
    if frame.fragments == 1:
        return encode_frame(frame.opcode, payload)
    rng = random.Random(frame.index)
    cuts = sorted(rng.sample(range(1, len(payload)), frame.fragments - 1))
    parts = [payload[a:b] for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True)]
    return b"".join(
        encode_frame(frame.opcode if n == 0 else CONT, part, fin=n == len(parts) - 1)
        for n, part in enumerate(parts)
    )


def describe(frame: Frame) -> str:
    return (
        f"frame {frame.index} ({frame.kind}, {len(frame.payload)} bytes): {frame.payload[:150]!r}"
    )


def check_reply(frame: Frame, reply: dict[str, Any]) -> str | None:
    """Why ``reply`` is not what the documentation promises for ``frame`` (None if it is)."""
    expect = frame.expect
    kind = reply.get("type")
    if expect.either:
        wanted = {"response", "error"}
        return None if kind in wanted else f"{describe(frame)} got {reply}"
    if kind != expect.outcome or reply.get("id") != expect.id:
        return f"{describe(frame)} expected {expect} got {reply}"
    data = reply.get("data")
    if expect.outcome == "response":
        if expect.data is not ANY and data != expect.data:
            return f"{describe(frame)} expected data {expect.data!r} got {data!r}"
        return None
    if not isinstance(data, dict) or data.get("code") != expect.code:
        return f"{describe(frame)} expected error {expect.code} got {reply}"
    message = data.get("message")
    if not isinstance(message, str) or "Traceback" in message or 'File "' in message:
        return f"{describe(frame)} error message {message!r}"
    return None


async def next_reply(client: WSClient) -> dict[str, Any]:
    """The next response or error envelope (broadcasts to the client's rooms are skipped)."""
    while True:
        opcode, payload = await client.next_message(TIMEOUT)
        assert opcode == TEXT, payload[:100]
        reply: dict[str, Any] = json.loads(payload)
        if reply.get("type") != "chat":
            return reply


async def join_lobby(client: WSClient) -> None:
    client.send_text(json.dumps({"type": "join", "data": "lobby", "id": "lobby"}))
    assert await next_reply(client) == {
        "type": "response",
        "data": {"joined": "lobby"},
        "id": "lobby",
    }


async def pipelined(port: int, batch: list[Frame], failures: list[str]) -> None:
    client = await open_ws(port, "/ws")
    try:
        await join_lobby(client)
        for start in range(0, len(batch), BATCH):
            chunk = batch[start : start + BATCH]
            client.send_raw(b"".join(encode(frame) for frame in chunk))
            for frame in chunk:
                problem = check_reply(frame, await next_reply(client))
                if problem is not None:
                    failures.append(problem)
        client.close()
        await client.wait_closed(TIMEOUT)
    finally:
        client.abort()


async def terminal(port: int, frame: Frame, failures: list[str]) -> None:
    """Send one frame that must close the connection, and check how it closes."""
    client = await open_ws(port, "/ws")
    try:
        client.send_raw(encode(frame))
        await asyncio.wait_for(asyncio.shield(client.lost), TIMEOUT)
        expect = frame.expect
        codes = [json.loads(payload)["data"]["code"] for _, payload in client.inbox]
        wanted = [expect.code] if expect.code else []
        if client.close_code != expect.close or codes != wanted:
            failures.append(f"{describe(frame)} closed {client.close_code} after {codes}")
    finally:
        client.abort()


class Bystander:
    """A ``websockets`` client in ``lobby``, and another one that talks there."""

    def __init__(self, listener: ClientConnection, sender: ClientConnection) -> None:
        self.listener = listener
        self.sender = sender
        #: What the listener received from the sender, and from each flooder.
        self.ticks: list[int] = []
        self.heard: list[str] = []
        self.said = 0
        self.answers = 0
        self._tasks: list[asyncio.Task[None]] = []

    async def start(self) -> None:
        await self.listener.send(json.dumps({"type": "join", "data": "lobby", "id": 0}))
        reply = json.loads(await asyncio.wait_for(self.listener.recv(), TIMEOUT))
        assert reply == {"type": "response", "data": {"joined": "lobby"}, "id": 0}
        loop = asyncio.get_running_loop()
        self._tasks = [loop.create_task(self._listen()), loop.create_task(self._answers())]

    async def _listen(self) -> None:
        async for text in self.listener:
            message = json.loads(text)
            if message.get("type") != "chat":
                continue
            said = message["data"]["text"]
            if said.startswith(TICK_PREFIX):
                self.ticks.append(int(said[len(TICK_PREFIX) :]))
            else:
                self.heard.append(said)

    async def _answers(self) -> None:
        async for text in self.sender:
            assert json.loads(text)["type"] == "response", text
            self.answers += 1

    async def say(self) -> None:
        text = f"{TICK_PREFIX}{self.said}"
        await self.sender.send(
            json.dumps({"type": "say", "data": {"room": "lobby", "text": text}, "id": self.said})
        )
        self.said += 1

    async def tick_until(self, done: asyncio.Event, period: float, most: int) -> None:
        while not done.is_set() and self.said < most:
            await self.say()
            await asyncio.sleep(period)

    async def heard_everything(self) -> None:
        async def all_in() -> bool:
            return len(self.ticks) >= self.said and self.answers >= self.said

        await eventually(all_in, timeout=TIMEOUT, what="the bystander heard every tick")
        assert self.ticks == list(range(self.said))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


@pytest.mark.timeout(size(240, 1800))
async def test_fuzzed_frames_get_their_documented_answers(serve):
    asyncio.get_running_loop().set_debug(False)
    # A rate limit high enough never to trigger here (floods have their own test).
    server = serve(BOCADILLO_RATE_LIMIT="1000000/1")
    await server.wait_ready()
    generated = list(frames(SEED, FRAMES)) + giant_frames(FRAMES, GIANTS)
    open_frames = [f for f in generated if f.expect.outcome != "close"]
    closing = [f for f in generated if f.expect.outcome == "close"]
    failures: list[str] = []

    async with (
        connect(f"ws://127.0.0.1:{server.port}/ws") as listener,
        connect(f"ws://127.0.0.1:{server.port}/ws") as sender,
    ):
        bystander = Bystander(listener, sender)
        await bystander.start()
        done = asyncio.Event()
        ticker = asyncio.ensure_future(bystander.tick_until(done, 0.01, 100_000))
        try:
            shares = [open_frames[n::WORKERS] for n in range(WORKERS)]
            await asyncio.gather(*(pipelined(server.port, share, failures) for share in shares))
            for frame in closing:
                await terminal(server.port, frame, failures)
        finally:
            done.set()
            await ticker
        await bystander.heard_everything()
        await bystander.stop()

    assert failures == [], f"{len(failures)} wrong answers:\n" + "\n".join(failures[:20])

    async def forgotten() -> bool:
        return bool((await server.state())["count"] == 0)

    await eventually(forgotten, timeout=TIMEOUT, what="every fuzz connection forgotten")
    assert server.alive
    booms = sum(1 for f in generated if f.expect.code == "handler_error")
    invalid_utf8 = sum(1 for f in generated if f.expect.close == 1007)
    server.assert_clean_log(expected={BOOM_LOG: booms, INVALID_UTF8_LOG: invalid_utf8})
    outcomes = Counter(f.expect.code or f.expect.outcome for f in generated)
    record_figures(
        "fuzz",
        {
            "frames": len(generated),
            "seed": SEED,
            "kinds": dict(Counter(f.kind for f in generated)),
            "answers": dict(outcomes),
            "close_codes": dict(Counter(str(f.expect.close) for f in closing)),
            "bystander_messages": len(bystander.ticks),
        },
    )


async def flood(port: int, number: int, frames: int) -> tuple[list[dict[str, Any]], WSClient]:
    """Send ``frames`` say messages at once, reading nothing, then collect the answers."""
    client = await open_ws(port, "/ws")
    batch = b"".join(
        encode_frame(
            TEXT,
            json.dumps(
                {"type": "say", "data": {"room": "lobby", "text": f"flood-{number}-{n}"}, "id": n}
            ).encode(),
        )
        for n in range(frames)
    )
    client.send_raw(batch)
    await asyncio.wait_for(asyncio.shield(client.lost), TIMEOUT)
    replies = [json.loads(payload) for opcode, payload in client.inbox]
    return [r for r in replies if r["type"] != "chat"], client


@pytest.mark.timeout(size(120, 600))
async def test_floods_over_the_rate_limit_are_cut_off_and_spare_the_room(serve):
    asyncio.get_running_loop().set_debug(False)
    allowance, violations = 50, 5
    flooders = size(8, 40)
    flood_frames = size(2_000, 20_000)
    server = serve(
        BOCADILLO_RATE_LIMIT=f"{allowance}/60", BOCADILLO_RATE_LIMIT_VIOLATIONS=violations
    )
    await server.wait_ready()
    async with (
        connect(f"ws://127.0.0.1:{server.port}/ws") as listener,
        connect(f"ws://127.0.0.1:{server.port}/ws") as sender,
    ):
        bystander = Bystander(listener, sender)
        await bystander.start()
        # The sender talks throughout the floods, within its own allowance, so every one
        # of its messages must reach the bystander.
        ticker = asyncio.ensure_future(bystander.tick_until(asyncio.Event(), 0.005, allowance))
        try:
            results = await asyncio.gather(
                *(flood(server.port, n, flood_frames) for n in range(flooders))
            )
        finally:
            await ticker
        await bystander.heard_everything()
        assert bystander.said == allowance

        for n, (replies, client) in enumerate(results):
            responses = [r for r in replies if r["type"] == "response"]
            errors = [r["data"]["code"] for r in replies if r["type"] == "error"]
            assert [r["id"] for r in responses] == list(range(allowance))
            assert errors == ["rate_limited"] * (violations - 1)
            assert (client.close_code, client.close_reason) == (1008, "rate limit exceeded")
            # The room heard each flooder's allowance, in order, and nothing more.
            heard = [t for t in bystander.heard if t.startswith(f"flood-{n}-")]
            assert heard == [f"flood-{n}-{i}" for i in range(allowance)]
        assert len(bystander.heard) == flooders * allowance
        await bystander.stop()

    async def forgotten() -> bool:
        return bool((await server.state())["count"] == 0)

    await eventually(forgotten, timeout=TIMEOUT, what="every connection forgotten")
    stats = (await server.state())["stats"]
    assert stats["dropped"] == flooders * violations
    server.assert_clean_log()
    record_figures(
        "flood",
        {
            "flooders": flooders,
            "frames_per_flooder": flood_frames,
            "allowed_per_flooder": allowance,
            "bystander_messages": len(bystander.ticks),
        },
    )


async def test_numbers_json_cannot_hold_are_invalid_json(serve):
    server = serve()
    await server.wait_ready()
    client = await open_ws(server.port, "/ws")
    try:
        for n, number in enumerate(["NaN", "Infinity", "-Infinity", "1e999", "-1e400"]):
            client.send_text(f'{{"type": "echo", "id": {n}, "data": {number}}}')
            reply = await next_reply(client)
            assert reply["type"] == "error", reply
            assert (reply["data"]["code"], reply["id"]) == ("invalid_json", n)
    finally:
        client.abort()


async def test_lone_surrogates_are_invalid_json(serve):
    server = serve()
    await server.wait_ready()
    client = await open_ws(server.port, "/ws")
    try:
        client.send_text('{"type": "echo", "id": 1, "data": "\\ud800"}')
        reply = await next_reply(client)
        assert (reply["type"], reply["data"]["code"], reply["id"]) == ("error", "invalid_json", 1)
    finally:
        client.abort()
    server.assert_clean_log()


def test_the_generator_covers_every_documented_answer():
    generated = list(frames(SEED, 3_000)) + giant_frames(3_000, 1)
    answers = Counter(f.expect.code or f.expect.outcome for f in generated)
    documented = {
        "response",
        "invalid_json",
        "invalid_envelope",
        "unknown_type",
        "invalid_data",
        "handler_error",
        "message_too_large",
        "close",  # 1007 and 1009 without an error envelope
    }
    assert documented <= set(answers), answers
    assert {f.opcode for f in generated} == {TEXT, BINARY}
    assert any(f.fragments > 1 for f in generated)
