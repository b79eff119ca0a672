"""Per-room traffic on the backends that route frames (Redis, then NATS; the Redis
Cluster module runs it too): a process receives a room's frames only while it has a member
in the room.

``backend_url`` is the ``broker`` fixture's server, so the same test runs on each. What
differs is said where it is asserted: a Redis subscriber also reads the frames of its own
process back (and drops them), where a NATS connection is made with ``no_echo`` and the
server never sends them; and on a Redis Cluster (``ordered`` false) one process's frames
keep their order per route only.
"""

from __future__ import annotations

import pytest

from bocadillo.realtime.backends.nats import NatsBackend
from tests.backends.support import settled
from tests.hub_client import HubClient
from tests.live import eventually
from tests.nats_server import NatsServer
from tests.redis_server import RedisServer

pytestmark = pytest.mark.anyio


@pytest.fixture
def backend_url(broker: RedisServer | NatsServer) -> str:
    return broker.url


async def test_a_process_receives_only_the_rooms_it_has_members_in(make_hub):
    first, second = await make_hub(), await make_hub()
    own_frames_read = 0 if isinstance(second.backend, NatsBackend) else 1
    ordered = second.backend.ordered
    a1 = HubClient(first, "a1")
    b1 = HubClient(second, "b1")
    for room in ("A", "B"):
        first.join("a1", room)
    second.join("b1", "B")
    await first.wait_subscribed(["A", "B"])
    await second.wait_subscribed(["B"])
    before = second.backend.stats()

    for n in range(20):
        first.broadcast(f"A{n}", room="A")
        second.broadcast(f"from two {n}", room="A")  # no member here: published only
    for n in range(3):
        first.broadcast(f"B{n}", room="B")
    # A last broadcast to everyone from each process: once both clients have both,
    # everything published before has arrived (where order holds per route only, once
    # everything before is acknowledged: hence ``settled``).
    await settled(first, second)
    first.broadcast("end one")
    second.broadcast("end two")
    await eventually(
        lambda: all("end one" in c.received and "end two" in c.received for c in (a1, b1))
    )

    after = second.backend.stats()
    # Room A's 40 publications never reached the second process; B's 3 did, and the
    # first process's broadcast to everyone (and, on Redis, its own, read and dropped).
    assert after["received_frames_room"] - before["received_frames_room"] == 3
    everyone = after["received_frames_everyone"] - before["received_frames_everyone"]
    assert everyone == 1 + own_frames_read
    assert after["received_frames"] - before["received_frames"] == 4 + own_frames_read
    assert after["received_bytes"] > before["received_bytes"]
    assert after["rooms_subscribed"] == 1
    assert first.backend.stats()["rooms_subscribed"] == 2
    remote = [f"from two {n}" for n in range(20)] + ["end two"]
    assert [m for m in b1.received if not m.startswith("end")] == ["B0", "B1", "B2"]
    if ordered:  # what came from the other process came in the order it was published
        assert [m for m in b1.received if m != "end two"] == ["B0", "B1", "B2", "end one"]
        assert [m for m in a1.received if m in remote] == remote
    assert sorted(a1.received) == sorted(
        [f"A{n}" for n in range(20)] + remote + ["B0", "B1", "B2", "end one"]
    )
