"""Pure ASGI middleware shipped with Bocadillo, one per module."""

from __future__ import annotations

__all__: list[str] = []
