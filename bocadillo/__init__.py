"""Bocadillo: a fast ASGI micro-framework for real-time web apps."""

from __future__ import annotations

from .applications import App
from .closecodes import CloseCode
from .config import Settings, configure, plugin, settings
from .errors import (
    ArgumentTypeError,
    BackendUnavailable,
    BocadilloError,
    ClientDisconnect,
    ConfigurationError,
    EnvelopeError,
    ExpectedAsync,
    HTTPError,
    HubError,
    InvalidArgument,
    InvalidData,
    InvalidState,
    JoinRefused,
    MissingDependency,
    ParameterError,
    PatternError,
    PayloadTooLarge,
    Redirect,
    RequestFailed,
    RequestTimeout,
    RoomFull,
    SettingsError,
    TooManyRooms,
    UnknownConnection,
    WebSocketDisconnect,
    WireError,
)
from .injection import discover_providers, provider, useprovider
from .middleware.base import Middleware
from .recipes import Recipe, Router
from .request import Request
from .response import Response
from .routing import HTTPRoute, WebSocketRoute
from .sse import EventStream, server_event
from .staticfiles import static
from .templates import Templates
from .testing import LiveServer, create_client
from .viewhooks import after, before
from .websockets import WebSocket

__version__ = "1.0.0.dev0"

__all__ = [
    "App",
    "ArgumentTypeError",
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
    "InvalidData",
    "InvalidState",
    "JoinRefused",
    "LiveServer",
    "Middleware",
    "MissingDependency",
    "ParameterError",
    "PatternError",
    "PayloadTooLarge",
    "Recipe",
    "Redirect",
    "Request",
    "RequestFailed",
    "RequestTimeout",
    "Response",
    "RoomFull",
    "Router",
    "Settings",
    "SettingsError",
    "Templates",
    "TooManyRooms",
    "UnknownConnection",
    "WebSocket",
    "WebSocketDisconnect",
    "WebSocketRoute",
    "WireError",
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
