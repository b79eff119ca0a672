"""Every exception Bocadillo raises.

Each class also inherits the builtin it resembles, so callers can catch by category::

    BocadilloError
    ├── ConfigurationError (ValueError)         bad settings or registration, at import/startup
    │   ├── ExpectedAsync (TypeError)           a sync view where an async one is required
    │   ├── SettingsError (RuntimeError)        a setting is missing or invalid; configure() twice
    │   └── InvalidArgument (TypeError, AssertionError)  a hook, stream or status of the wrong kind
    ├── HTTPError (starlette HTTPException)      rendered as an HTTP error response
    ├── InvalidState (RuntimeError)             e.g. a second ``close()``; a hub used before startup
    ├── EnvelopeError (ValueError)              a bad realtime envelope, with a stable ``.code``
    ├── HubError
    │   ├── UnknownConnection (LookupError)     no connection with that id
    │   └── BackendUnavailable (ConnectionError) the hub backend cannot be reached
    └── MissingDependency (ImportError)         an optional package is not installed

``WebSocketDisconnect`` is Starlette's class, re-exported so one ``except`` catches both.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.websockets import WebSocketDisconnect

__all__ = [
    "BackendUnavailable",
    "BocadilloError",
    "ConfigurationError",
    "EnvelopeError",
    "ExpectedAsync",
    "HTTPError",
    "HubError",
    "InvalidArgument",
    "InvalidState",
    "MissingDependency",
    "SettingsError",
    "UnknownConnection",
    "WebSocketDisconnect",
]


class BocadilloError(Exception):
    """Root of every exception defined by Bocadillo."""


class ConfigurationError(BocadilloError, ValueError):
    """A setting or a registration is wrong. Raised at import or startup, never per request."""


class ExpectedAsync(ConfigurationError, TypeError):
    """A synchronous callable was given where a coroutine function is required."""


class SettingsError(ConfigurationError, RuntimeError):
    """A setting is missing or invalid, or ``configure()`` was called twice for one app.

    It is a ``ConfigurationError``, and also a ``RuntimeError`` as in Bocadillo 0.18.
    """


class InvalidArgument(ConfigurationError, TypeError, AssertionError):
    """A callable or value of the wrong kind was given (a hook that is not callable, a
    stream that is not an async generator function, an HTTP status that is not a number).

    It is also an ``AssertionError``, which is what Bocadillo 0.18 raised for these.
    """


class HTTPError(BocadilloError, HTTPException):
    """Abort the current request with an HTTP error response.

    Args:
        status: The HTTP status code (or an ``http.HTTPStatus``).
        detail: Extra information for the client: any JSON-serialisable value.
            Defaults to the status phrase.
        headers: Headers to add to the error response.

    The default handler answers ``{"error": <phrase>, "status": <code>, "detail": <detail>}``
    as JSON, or the detail as plain text when the client accepts text but not JSON.
    """

    def __init__(
        self,
        status: int | HTTPStatus,
        detail: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        if isinstance(status, bool) or not isinstance(status, int):
            raise InvalidArgument(
                f"an HTTP status must be an int or HTTPStatus, not {type(status).__name__}"
            )
        code = int(status)
        self.title = HTTPStatus(code).phrase if code in HTTPStatus._value2member_map_ else "Error"
        self.detail_value: Any = self.title if detail is None else detail
        HTTPException.__init__(self, status_code=code, detail=str(self.detail_value))
        self.headers = headers

    def __str__(self) -> str:
        """The status line, such as ``404 Not Found``."""
        return f"{self.status_code} {self.title}"

    @property
    def status(self) -> int:
        """The HTTP status code, as an ``int``."""
        return self.status_code

    def as_json(self) -> dict[str, Any]:
        """The JSON body of the default error response."""
        return {"error": self.title, "status": self.status_code, "detail": self.detail_value}


class InvalidState(BocadilloError, RuntimeError):
    """An operation is not allowed in the object's current state."""


class EnvelopeError(BocadilloError, ValueError):
    """A realtime message could not be handled; ``code`` is stable and sent to the client.

    Args:
        code: One of ``invalid_json``, ``invalid_envelope``, ``unknown_type``,
            ``invalid_data``, ``handler_error``, ``rate_limited``, ``message_too_large``,
            ``room_full``.
        message: A human-readable explanation, safe to show to the client.
        request_id: The ``id`` of the client's message, echoed in the error envelope.
    """

    def __init__(self, code: str, message: str, *, request_id: str | int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.request_id = request_id


class HubError(BocadilloError):
    """Root of the errors raised by the realtime hub."""


class UnknownConnection(HubError, LookupError):
    """No connection with the given id is registered."""


class BackendUnavailable(HubError, ConnectionError):
    """The hub backend (for example Redis) cannot be reached."""


class MissingDependency(BocadilloError, ImportError):
    """An optional dependency is needed for the chosen feature but is not installed."""
