"""The outbox: eager writes, ordering, overflow policies, failures (no sockets)."""

from __future__ import annotations

import asyncio

import pytest

from bocadillo.realtime.outbox import Driver, Outbox, OverflowPolicy

pytestmark = pytest.mark.anyio


class FakeClient:
    """An ASGI send that can be paused like a transport whose buffer is full."""

    def __init__(self) -> None:
        self.writable = asyncio.Event()
        self.writable.set()
        self.received: list[int] = []
        self.suspensions = 0
        self.fail = False

    async def send(self, message):
        if not self.writable.is_set():
            self.suspensions += 1
        await self.writable.wait()
        if self.fail:
            raise ConnectionResetError("gone")
        self.received.append(message["n"])


def msg(n: int):
    return {"type": "websocket.send", "n": n}


async def test_outbox_writes_eagerly_to_a_healthy_client():
    client = FakeClient()
    outbox = Outbox(client.send)
    for n in range(100):
        assert outbox.put(msg(n))
    # Written before any await: no task was needed.
    assert client.received == list(range(100))
    assert outbox.idle
    assert outbox.messages_sent == 100


async def test_outbox_queues_in_order_while_the_client_is_paused():
    client = FakeClient()
    outbox = Outbox(client.send, limit=1000)
    client.writable.clear()
    for n in range(50):
        assert outbox.put(msg(n))
    assert client.received == []
    assert outbox.pending == 49
    client.writable.set()
    assert await outbox.wait_drained(5)
    assert client.received == list(range(50))


async def test_outbox_drop_oldest_keeps_the_newest_messages():
    client = FakeClient()
    drops: list[Outbox] = []
    outbox = Outbox(client.send, limit=3, policy="drop_oldest", on_drop=drops.append)
    client.writable.clear()
    for n in range(10):
        assert outbox.put(msg(n))
    assert len(drops) == 6
    client.writable.set()
    await outbox.wait_drained(5)
    # 0 was already being written; the queue kept the last three.
    assert client.received == [0, 7, 8, 9]


async def test_outbox_drop_newest_refuses_new_messages():
    client = FakeClient()
    drops: list[Outbox] = []
    outbox = Outbox(client.send, limit=2, policy="drop_newest", on_drop=drops.append)
    client.writable.clear()
    results = [outbox.put(msg(n)) for n in range(5)]
    assert results == [True, True, True, False, False]
    client.writable.set()
    await outbox.wait_drained(5)
    assert client.received == [0, 1, 2]
    assert len(drops) == 2


async def test_outbox_close_policy_reports_overflow_once():
    client = FakeClient()
    overflows: list[Outbox] = []
    outbox = Outbox(client.send, limit=2, policy="close", on_overflow=overflows.append)
    client.writable.clear()
    for n in range(6):
        outbox.put(msg(n))
    assert overflows == [outbox]
    assert outbox.overflowed
    await outbox.aclose()


async def test_outbox_send_waits_in_order_behind_queued_messages():
    client = FakeClient()
    outbox = Outbox(client.send, limit=10)
    client.writable.clear()
    outbox.put(msg(1))
    outbox.put(msg(2))
    direct = asyncio.ensure_future(outbox.send(msg(3)))
    await asyncio.sleep(0)
    assert not direct.done()
    client.writable.set()
    await asyncio.wait_for(direct, 5)
    assert client.received == [1, 2, 3]


async def test_outbox_failure_closes_it_and_reports_the_error():
    client = FakeClient()
    errors: list[BaseException] = []
    outbox = Outbox(client.send, on_error=lambda box, exc: errors.append(exc))
    client.fail = True
    assert not outbox.put(msg(1))
    assert outbox.closed
    assert isinstance(errors[0], ConnectionResetError)
    assert not outbox.put(msg(2))


async def test_outbox_aclose_cancels_a_stalled_pump():
    client = FakeClient()
    outbox = Outbox(client.send)
    client.writable.clear()
    outbox.put(msg(1))
    outbox.put(msg(2))
    await outbox.aclose()
    assert outbox.closed
    assert outbox.idle
    assert client.received == []


async def test_outboxes_sharing_a_driver_keep_going_when_one_client_stalls():
    driver = Driver()
    healthy, stalled, failing = FakeClient(), FakeClient(), FakeClient()
    errors: list[BaseException] = []
    boxes = {
        name: Outbox(
            client.send, limit=100, driver=driver, on_error=lambda box, exc: errors.append(exc)
        )
        for name, client in (("healthy", healthy), ("stalled", stalled), ("failing", failing))
    }
    stalled.writable.clear()
    failing.fail = True
    for n in range(20):
        for box in boxes.values():
            box.put(msg(n))
    # The stalled send took the driver's runner with it, and the failing one ended
    # another: the healthy client got every message, written on the spot.
    assert healthy.received == list(range(20))
    assert boxes["healthy"].idle and boxes["healthy"].messages_sent == 20
    assert boxes["stalled"].pending == 19
    assert boxes["failing"].closed and len(errors) == 1
    stalled.writable.set()
    assert await boxes["stalled"].wait_drained(5)
    assert stalled.received == list(range(20))
    assert boxes["stalled"].messages_sent == 20


async def test_a_send_that_puts_into_another_outbox_of_its_driver():
    driver = Driver()
    inner = FakeClient()
    inner_box = Outbox(inner.send, driver=driver)
    relayed: list[int] = []

    async def relaying_send(message):
        # Uses the driver while the driver is running this very send.
        inner_box.put(msg(message["n"] * 10))
        relayed.append(message["n"])

    outer_box = Outbox(relaying_send, driver=driver)
    for n in range(3):
        assert outer_box.put(msg(n))
    assert relayed == [0, 1, 2]
    assert inner.received == [0, 10, 20]
    assert outer_box.idle and inner_box.idle


async def test_outbox_reports_each_dropped_message():
    client = FakeClient()
    drops: list[int] = []
    policies: list[OverflowPolicy] = ["drop_oldest", "drop_newest", "close"]
    for policy in policies:
        outbox = Outbox(
            client.send, limit=3, policy=policy, on_drop=lambda box: drops.append(len(drops) + 1)
        )
        client.writable.clear()
        for n in range(10):
            outbox.put(msg(n))
        # One message in flight and three queued: six of the ten are dropped.
        assert len(drops) == 6, policy
        assert drops == [1, 2, 3, 4, 5, 6], policy
        drops.clear()
        await outbox.aclose()


async def test_outbox_never_drops_a_message_someone_is_waiting_for():
    client = FakeClient()
    drops: list[Outbox] = []
    outbox = Outbox(client.send, limit=2, policy="drop_oldest", on_drop=drops.append)
    client.writable.clear()
    outbox.put(msg(0))  # being written
    waiting = [asyncio.ensure_future(outbox.send(msg(n))) for n in (1, 2)]
    await asyncio.sleep(0)
    assert outbox.put(msg(3))  # the queue holds only awaited messages: nothing to drop
    assert drops == []
    client.writable.set()
    await asyncio.wait_for(asyncio.gather(*waiting), 5)
    await outbox.wait_drained(5)
    assert client.received == [0, 1, 2, 3]


def test_outbox_rejects_bad_settings():
    async def send(message):
        return None

    with pytest.raises(ValueError):
        Outbox(send, policy="explode")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        Outbox(send, limit=0)
