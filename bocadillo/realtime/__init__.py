"""The real-time layer: connection registry, rooms, envelopes, limits, outboxes and the hub."""

from __future__ import annotations

__all__: list[str] = []
