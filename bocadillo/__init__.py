"""Bocadillo: a fast ASGI micro-framework for real-time web apps."""

from __future__ import annotations

from .applications import App
from .closecodes import CloseCode
from .config import Settings, configure, plugin, settings
from .errors import (
    BackendUnavailable,
    BocadilloError,
    ConfigurationError,
    EnvelopeError,
    ExpectedAsync,
    HTTPError,
    HubError,
    InvalidArgument,
    InvalidState,
    MissingDependency,
    SettingsError,
    UnknownConnection,
    WebSocketDisconnect,
)
from .hooks import after, before
from .injection import discover_providers, provider, useprovider
from .middleware.base import Middleware
from .recipes import Recipe, Router
from .redirection import Redirect
from .request import ClientDisconnect, Request
from .response import Response
from .routing import HTTPRoute, WebSocketRoute
from .sse import EventStream, server_event
from .staticfiles import static
from .templates import Templates
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
    "EventStream",
    "ExpectedAsync",
    "HTTPError",
    "HTTPRoute",
    "HubError",
    "InvalidArgument",
    "InvalidState",
    "LiveServer",
    "Middleware",
    "MissingDependency",
    "Recipe",
    "Redirect",
    "Request",
    "Response",
    "Router",
    "Settings",
    "SettingsError",
    "Templates",
    "UnknownConnection",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketRoute",
    "after",
    "before",
    "configure",
    "create_client",
    "discover_providers",
    "plugin",
    "provider",
    "server_event",
    "settings",
    "static",
    "useprovider",
]
