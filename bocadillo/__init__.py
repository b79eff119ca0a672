"""Bocadillo: a fast ASGI micro-framework for real-time web apps."""

from __future__ import annotations

from .applications import App
from .closecodes import CloseCode
from .errors import (
    BackendUnavailable,
    BocadilloError,
    ConfigurationError,
    EnvelopeError,
    ExpectedAsync,
    HTTPError,
    HubError,
    InvalidState,
    MissingDependency,
    UnknownConnection,
    WebSocketDisconnect,
)
from .recipes import Recipe
from .request import ClientDisconnect, Request
from .response import Response
from .routing import HTTPRoute, WebSocketRoute
from .testing import LiveServer, create_client
from .websockets import WebSocket

__version__ = "1.0.0.dev0"

__all__ = [
    "App",
    "BackendUnavailable",
    "BocadilloError",
    "ClientDisconnect",
    "CloseCode",
    "ConfigurationError",
    "EnvelopeError",
    "ExpectedAsync",
    "HTTPError",
    "HTTPRoute",
    "HubError",
    "InvalidState",
    "LiveServer",
    "MissingDependency",
    "Recipe",
    "Request",
    "Response",
    "UnknownConnection",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketRoute",
    "create_client",
]
