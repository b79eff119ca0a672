"""Routing: patterns, HTTP and WebSocket routes, their registration and compilation.

- ``patterns``: Bocadillo's pattern syntax into Starlette paths;
- ``http``: ``HTTPRoute`` (as registered) and ``HTTPEndpoint`` (as an app serves it);
- ``websocket``: ``WebSocketRoute`` and ``WebSocketEndpoint``, which hands each
  connection's life to the hub's session;
- ``registry``: ``RouteRegistry``, the decorators shared by ``App`` and ``Recipe``;
- ``compiler``: an app's registry into Starlette routes, and ``AppRouter``.
"""

from __future__ import annotations

from .compiler import AppRouter, compile_routes
from .http import HTTPEndpoint, HTTPRoute
from .patterns import expand_pattern
from .registry import RouteRegistry
from .websocket import WebSocketEndpoint, WebSocketRoute

__all__ = [
    "AppRouter",
    "HTTPEndpoint",
    "HTTPRoute",
    "RouteRegistry",
    "WebSocketEndpoint",
    "WebSocketRoute",
    "compile_routes",
    "expand_pattern",
]
