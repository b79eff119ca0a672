"""What the backend contract tests share: a started backend (``Node``) and ``settled``."""

from __future__ import annotations

from bocadillo.realtime.backends import HubBackend
from bocadillo.realtime.hub import Hub
from tests.live import eventually

__all__ = ["Node", "settled"]


async def settled(*targets: HubBackend | Hub) -> None:
    """Wait until each backend (or hub's backend) has written all it queued: Redis
    queues its writes and acknowledges them later; the memory backend applies them at
    once (it has no ``queued`` counter)."""
    for target in targets:
        backend = target.backend if isinstance(target, Hub) else target
        await eventually(
            lambda b=backend: b.stats().get("queued", 0) == 0,  # type: ignore[misc]
            what=f"{type(backend).__name__} wrote all it queued",
        )


class Node:
    """One process's backend, used directly: started with a ``deliver`` callback that
    records the frames published by the other nodes."""

    def __init__(self, backend: HubBackend) -> None:
        self.backend = backend
        self.delivered: list[bytes] = []
        self.running = False

    async def start(self) -> None:
        await self.backend.start(self.delivered.append)
        self.running = True
        # Started means connected (Redis), so frames published from now on arrive.
        await eventually(lambda: self.backend.stats().get("connected", 1) == 1)

    async def received(self, frame: bytes) -> None:
        """Wait until ``frame`` has been delivered to this node."""
        await eventually(lambda: frame in self.delivered, what=f"{frame!r} delivered")

    async def stop(self) -> None:
        if self.running:
            self.running = False
            await self.backend.stop()
