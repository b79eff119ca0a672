"""Test helpers: an in-process client and a real uvicorn server on a free loopback port."""

from __future__ import annotations

from .client import create_client
from .server import LiveServer

__all__ = ["LiveServer", "create_client"]
