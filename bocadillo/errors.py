"""Every exception Bocadillo raises.

Each class also inherits the builtin it resembles, so callers can catch by category::

    BocadilloError
    ├── ConfigurationError (ValueError)         bad settings or registration, at import/startup
    │   ├── ExpectedAsync (TypeError)           a sync view where an async one is required
    │   ├── PatternError (TypeError)            a route pattern that cannot be compiled
    │   └── SettingsError (RuntimeError)        a setting is missing or invalid; configure() twice
    ├── InvalidArgument (ValueError)            a call's arguments cannot work, at call time
    │   └── ArgumentTypeError (TypeError, AssertionError)  an argument of the wrong kind
    ├── InvalidData (ValueError)                a Pydantic or msgspec model refused the data
    ├── ParameterError (ValueError)             a route or query parameter is missing or invalid
    ├── HTTPError (starlette HTTPException)      rendered as an HTTP error response
    │   └── PayloadTooLarge                     a request body over ``max_body_size`` (413)
    ├── Redirect                                a signal, not an error: answered with a 3xx
    ├── InvalidState (RuntimeError)             e.g. a second ``close()``; a hub used before startup
    ├── EnvelopeError (ValueError)              a bad realtime envelope, with a stable ``.code``
    ├── HubError
    │   ├── UnknownConnection (LookupError)     no connection with that id
    │   ├── RoomFull                            a join over ``max_room_members``
    │   ├── JoinRefused (PermissionError)       the app's can_join hook said no
    │   ├── TooManyRooms                        a join over ``max_rooms_per_connection``
    │   ├── RequestTimeout (TimeoutError)       no reply to ``ws.request()`` in time
    │   ├── RequestFailed                       the client answered ``ws.request()`` with an error
    │   ├── BackendUnavailable (ConnectionError) the hub backend cannot be reached
    │   └── WireError (ValueError)              a frame from the hub bus cannot be decoded
    └── MissingDependency (ImportError)         an optional package is not installed

``WebSocketDisconnect`` and ``ClientDisconnect`` are Starlette's classes, re-exported so
one ``except`` catches both Starlette's and ours.
"""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.websockets import WebSocketDisconnect

__all__ = [
    "ArgumentTypeError",
    "BackendUnavailable",
    "BocadilloError",
    "ClientDisconnect",
    "ConfigurationError",
    "EnvelopeError",
    "ExpectedAsync",
    "HTTPError",
    "HubError",
    "InvalidArgument",
    "InvalidData",
    "InvalidState",
    "JoinRefused",
    "MissingDependency",
    "ParameterError",
    "PatternError",
    "PayloadTooLarge",
    "Redirect",
    "RequestFailed",
    "RequestTimeout",
    "RoomFull",
    "SettingsError",
    "TooManyRooms",
    "UnknownConnection",
    "WebSocketDisconnect",
    "WireError",
]


class BocadilloError(Exception):
    """Root of every exception defined by Bocadillo."""


class ConfigurationError(BocadilloError, ValueError):
    """A setting or a registration is wrong. Raised at import or startup, never per request."""


class ExpectedAsync(ConfigurationError, TypeError):
    """A synchronous callable was given where a coroutine function is required."""


class PatternError(ConfigurationError, TypeError):
    """A route pattern cannot be compiled, for example ``{x:d}`` (no parameter type ``d``).

    It is also a ``TypeError``, as in Bocadillo 0.18.
    """


class SettingsError(ConfigurationError, RuntimeError):
    """A setting is missing or invalid, or ``configure()`` was called twice for one app.

    It is a ``ConfigurationError``, and also a ``RuntimeError`` as in Bocadillo 0.18.
    """


class InvalidData(BocadilloError, ValueError):
    """Data that a model (a Pydantic model or msgspec Struct) refuses.

    Args:
        details: What is wrong, by field path (``"items.0.price"``; ``"data"`` for the
            whole value).
    """

    def __init__(self, details: dict[str, str]) -> None:
        text = "; ".join(f"{key}: {value}" for key, value in details.items())
        super().__init__(text or "invalid data")
        self.details = details


class InvalidArgument(BocadilloError, ValueError):
    """A function was called with arguments that cannot work together or hold a
    forbidden value (for example a newline in a server-sent event's id).

    Unlike ``ConfigurationError``, it is raised when the call is made, which may be
    while handling a request.
    """


class ParameterError(BocadilloError, ValueError):
    """One or more route or query parameters are missing or could not be converted.

    Args:
        errors: Each parameter's name mapped to a human-readable reason.

    An HTTP view answers it with 400; a WebSocket route refuses the handshake (HTTP 403).
    """

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {reason}" for name, reason in errors.items()))
        self.errors = errors


class ArgumentTypeError(InvalidArgument, TypeError, AssertionError):
    """An argument of the wrong kind: a hook that is not callable, a stream that is not an
    async generator function, an HTTP status that is not a number.

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
            raise ArgumentTypeError(
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


class Redirect(BocadilloError):
    """Redirect the client: raise it in a view (or hook). A signal, not an error.

    Args:
        url: Where to go (absolute or a path).
        name: Instead of ``url``, the name of a route (``"recipe:view"`` in a recipe);
            ``params`` fill its path parameters.
        permanent: Answer 301 (permanent) instead of 302 (found).
        status: Any other 3xx status, such as 303, 307 or 308.
        **params: The path parameters of the route ``name``.

    Raises:
        InvalidArgument: with neither or both of ``url`` and ``name``, or a ``url``
            containing CR, LF or NUL.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        name: str | None = None,
        permanent: bool = False,
        status: int | None = None,
        **params: Any,
    ) -> None:
        if (url is None) == (name is None):
            raise InvalidArgument("Redirect() takes a url or a route name=..., not both")
        if url is not None and any(char in url for char in "\r\n\0"):
            # It would split the response's Location header.
            raise InvalidArgument(f"a redirect URL is one line: no CR, LF or NUL ({url!r})")
        super().__init__(url or name)
        self.url = url
        self.name = name
        self.params = params
        self.status = status or (301 if permanent else 302)


class PayloadTooLarge(HTTPError):
    """The request body is over the limit: answered 413 (``Connection: close``).

    Args:
        limit: The limit that applied, in bytes.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            detail=f"the request body is larger than {limit} bytes",
            headers={"connection": "close"},
        )
        self.limit = limit


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


class RoomFull(HubError):
    """A join would take a room over its member limit (``max_room_members``).

    Args:
        room: The room that is full.
        limit: Its member limit.
    """

    def __init__(self, room: str, limit: int) -> None:
        super().__init__(f"room {room!r} is full ({limit} members)")
        self.room = room
        self.limit = limit


class JoinRefused(HubError, PermissionError):
    """The app's ``can_join`` hook refused a room.

    Args:
        room: The room.
    """

    def __init__(self, room: str) -> None:
        super().__init__(f"joining room {room!r} is not allowed")
        self.room = room


class TooManyRooms(HubError):
    """A join would put a connection in more rooms than ``max_rooms_per_connection``.

    Args:
        limit: The most rooms a connection may be in.
    """

    def __init__(self, limit: int) -> None:
        super().__init__(f"a connection may be in at most {limit} rooms")
        self.limit = limit


class RequestTimeout(HubError, TimeoutError):
    """A client did not answer a server-to-client request (``ws.request``) in time.

    Args:
        type: The request's message type.
        timeout: The seconds waited.
    """

    def __init__(self, type: str, timeout: float) -> None:
        super().__init__(f"no reply to the {type!r} request within {timeout} s")
        self.type = type
        self.timeout = timeout


class RequestFailed(HubError):
    """A client answered a server-to-client request with an error envelope.

    Args:
        code: The error's code, as the client sent it.
        message: The error's message.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class BackendUnavailable(HubError, ConnectionError):
    """The hub backend (for example Redis) cannot be reached."""


class WireError(HubError, ValueError):
    """A frame from the hub bus could not be decoded."""


class MissingDependency(BocadilloError, ImportError):
    """An optional dependency is needed for the chosen feature but is not installed."""
