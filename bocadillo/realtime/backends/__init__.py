"""Hub backends, resolved lazily from a URL scheme.

``App(hub_backend="redis://localhost:6379/0")`` imports only the backend it names, so
optional packages load only when chosen.
"""

from __future__ import annotations

import importlib
from typing import Any
from urllib.parse import urlsplit

from ...errors import ConfigurationError
from .base import EVERYONE, HubBackend, Route

__all__ = ["BACKENDS", "EVERYONE", "HubBackend", "Route", "backend_from_url"]

#: URL scheme -> "module:attribute" of the backend class.
BACKENDS: dict[str, str] = {
    "memory": "bocadillo.realtime.backends.memory:MemoryBackend",
    "nats": "bocadillo.realtime.backends.nats:NatsBackend",
    "redis": "bocadillo.realtime.backends.redis:RedisBackend",
    "redis+cluster": "bocadillo.realtime.backends.redis_cluster:RedisClusterBackend",
    "rediss": "bocadillo.realtime.backends.redis:RedisBackend",
    "rediss+cluster": "bocadillo.realtime.backends.redis_cluster:RedisClusterBackend",
}


def backend_from_url(url: str | None, **options: Any) -> HubBackend:
    """Make the backend for ``url`` (``None`` or ``"memory://"``: in-process memory).

    ``options`` go to the backend (for Redis: ``prefix``, ``heartbeat_ttl``...).

    Raises:
        ConfigurationError: for an unknown scheme.
        MissingDependency: if the backend's package is not installed.
    """
    scheme = urlsplit(url).scheme if url else "memory"
    target = BACKENDS.get(scheme)
    if target is None:
        known = ", ".join(sorted(BACKENDS))
        raise ConfigurationError(f"unknown hub backend scheme {scheme!r} (known: {known})")
    module_name, attr = target.split(":")
    module = importlib.import_module(module_name)
    cls = getattr(module, attr)
    backend: HubBackend = cls.from_url(url or "memory://", **options)
    return backend
