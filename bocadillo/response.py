"""The mutable response object handed to views as ``res``.

Views set attributes on it (``res.json = {...}``, ``res.status_code = 201``) instead of
building and returning a response; the framework turns it into ASGI messages once the
view (and its after-hooks) are done.
"""

from __future__ import annotations

import inspect
import os
import unicodedata
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Mapping
from datetime import datetime
from mimetypes import guess_type
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from starlette.background import BackgroundTasks
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import FileResponse, Response as _StarletteResponse

from .errors import ArgumentTypeError, InvalidArgument
from .jsoncodec import dumps_bytes
from .streaming import StreamingBody, as_async_iterable
from .types import JSONValue, Receive, Scope, Send

__all__ = [
    "Response",
    "ResponseHeaders",
    "check_header",
    "content_disposition",
    "encode_json",
]

F = TypeVar("F", bound=Callable[..., Any])

_TEXT = "text/plain"
_HTML = "text/html"
_JSON = "application/json"
_OCTETS = "application/octet-stream"
#: The JSON codec's ``dumps_bytes`` under its former name (``bocadillo.jsoncodec``).
encode_json = dumps_bytes


#: Characters that would end a header line (or confuse the server's writer) if sent.
_BREAKS = str.maketrans("", "", "\r\n\0")


def check_header(name: str, value: str) -> None:
    """Refuse a header that would split the response: CR, LF or NUL in its name or value.

    Raises:
        ValueError: naming the header; the view fails there, and the client gets a 500
            error response instead of a connection dropped by the server.
    """
    if len(value.translate(_BREAKS)) != len(value) or len(name.translate(_BREAKS)) != len(name):
        raise InvalidArgument(
            f"the {name!r} header contains CR, LF or NUL ({value!r}): a header value is "
            "one line; remove them or encode the value (urllib.parse.quote)"
        )
    if ":" in name or not name.strip():
        raise InvalidArgument(f"{name!r} is not a header name")


class _CheckedHeaders(MutableHeaders):
    """Response headers that refuse CR, LF and NUL where they are set (see ``check_header``)."""

    def __setitem__(self, key: str, value: str) -> None:
        check_header(key, value)
        super().__setitem__(key, value)

    def setdefault(self, key: str, value: str) -> str:
        check_header(key, value)
        return super().setdefault(key, value)

    def append(self, key: str, value: str) -> None:
        check_header(key, value)
        super().append(key, value)


#: Characters kept as they are in ``filename="..."``: printable ASCII without quotes,
#: backslashes or percent signs (which some browsers decode there).
_PLAIN_NAME = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 !#$&'()+,-.;=@[]^_`{}~"
)


def content_disposition(disposition: str, filename: str) -> str:
    """The ``Content-Disposition`` value for a download named ``filename`` (RFC 6266).

    A name of plain ASCII is sent as ``filename="..."``. Any other name is sent twice: an
    ASCII fallback in ``filename="..."`` (accents dropped, anything unsafe replaced by
    ``_``) for old clients, and the exact name, UTF-8 and percent-encoded, in
    ``filename*=UTF-8''...`` (RFC 5987), which clients prefer.

    Args:
        disposition: ``"attachment"`` or ``"inline"``.
        filename: The name the client should save the file under.

    Raises:
        ValueError: if the name is empty.
    """
    if not filename:
        raise InvalidArgument("a download needs a non-empty filename")
    if all(char in _PLAIN_NAME for char in filename):
        return f'{disposition}; filename="{filename}"'
    ascii_name = unicodedata.normalize("NFKD", filename).encode("ascii", "ignore").decode()
    fallback = "".join(char if char in _PLAIN_NAME else "_" for char in ascii_name).strip()
    encoded = quote(filename, safe="!#$&+^`|~", encoding="utf-8")
    return f"{disposition}; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


class ResponseHeaders(_CheckedHeaders):
    """Response headers: checked as they are set (see ``check_header``), plus ``pop``.

    Until ``Content-Type`` is set explicitly, reading it gives the type the body implies
    (``text/plain...`` after ``res.text = ...``), so hooks and middleware can read it.
    """

    _response: Response | None = None

    def _implied(self, key: str) -> str | None:
        response = self._response
        if response is None or key.lower() != "content-type":
            return None
        return response._media_type

    def __getitem__(self, key: str) -> str:
        try:
            return super().__getitem__(key)
        except KeyError:
            implied = self._implied(key)
            if implied is None:
                raise
            return implied

    def __contains__(self, key: object) -> bool:
        if super().__contains__(key):
            return True
        return isinstance(key, str) and self._implied(key) is not None

    def pop(self, key: str, default: Any = None) -> Any:
        """Remove the header ``key`` and return its value (``default`` if it was not set)."""
        value = self.get(key, default)
        if key in self:
            del self[key]
        return value


class Response:
    """What a view answers: body, status code, headers, cookies and background tasks.

    Set exactly one body: ``text``, ``html``, ``json`` (alias ``media``) or ``content``
    (bytes), or call ``stream()``, ``file()`` or ``attachment()``. The last one set wins.
    ``Content-Type`` follows the body unless ``headers["content-type"]`` is set;
    ``Content-Length`` is computed, except for streams and ``chunked = True``.
    """

    def __init__(self, status_code: int = 200) -> None:
        self.status_code = status_code
        self._headers: ResponseHeaders | None = None  # made on first use
        #: Send the body with chunked transfer encoding instead of a Content-Length.
        self.chunked = False
        self._body: bytes = b""
        self._media_type: str | None = None
        self._json: JSONValue = None
        self._text: str | None = None
        self._stream: AsyncIterable[bytes | str] | Iterable[bytes | str] | None = None
        self._file: tuple[str, str | None, Literal["attachment", "inline"]] | None = None
        self._cookies: list[tuple[str, dict[str, Any]]] = []
        self._tasks: BackgroundTasks | None = None
        self._events: AsyncIterable[str | bytes] | None = None
        self._raise_on_disconnect = False

    def _set_body(self, body: bytes, media_type: str | None) -> None:
        self._body = body
        self._media_type = media_type
        # The last body set wins: the getters of the others read None again.
        self._json = None
        self._text = None
        self._stream = None
        self._file = None

    # Body setters ------------------------------------------------------------------------

    @property
    def text(self) -> str | None:
        """The body as plain text (``text/plain``)."""
        return self._text

    @text.setter
    def text(self, value: str) -> None:
        self._set_body(value.encode("utf-8"), _TEXT)
        self._text = value

    @property
    def html(self) -> str | None:
        """The body as HTML (``text/html``)."""
        return self._text if self._media_type == _HTML else None

    @html.setter
    def html(self, value: str) -> None:
        self._set_body(value.encode("utf-8"), _HTML)
        self._text = value

    @property
    def json(self) -> JSONValue:
        """The body as a JSON-serialisable value (``application/json``).

        Setting it encodes the value at once (``bocadillo.jsoncodec``): ``NaN``,
        ``Infinity`` or anything else JSON cannot carry raises ``ValueError`` (a value
        that is not JSON, ``TypeError``) in the view, and the client gets a 500.
        """
        return self._json

    @json.setter
    def json(self, value: JSONValue) -> None:
        self._set_body(dumps_bytes(value), _JSON)
        self._json = value

    media = json

    @property
    def content(self) -> bytes:
        """The raw body (``application/octet-stream`` unless ``headers["content-type"]`` is set)."""
        return self._body

    @content.setter
    def content(self, value: bytes | str) -> None:
        if isinstance(value, str):
            self._set_body(value.encode("utf-8"), _TEXT)
        else:
            self._set_body(bytes(value), _OCTETS)

    def stream(self, source: Any = None, *, raise_on_disconnect: bool = False) -> Any:
        """Send the body from an (async) iterable of ``str``/``bytes`` chunks, chunked.

        Usable as a decorator on an async generator function taking no arguments, bare or
        with options::

            @res.stream
            async def numbers():
                for n in range(10):
                    yield str(n)

        Args:
            source: The iterable, or an async generator function.
            raise_on_disconnect: When the client leaves, raise ``ClientDisconnect`` in the
                generator at its next ``yield`` (default: cancel it at its ``await``).

        Returns:
            ``source`` unchanged, so the decorated function keeps its name (or, without
            ``source``, the decorator).

        Raises:
            ArgumentTypeError: if ``source`` is a function but not an async generator function.
        """
        if source is None:
            return lambda func: self.stream(func, raise_on_disconnect=raise_on_disconnect)
        self._body = b""
        self._file = None
        self._events = None
        self._stream = _iterable_of(source, "res.stream")
        self._raise_on_disconnect = raise_on_disconnect
        return source

    def event_stream(self, source: Any = None, *, raise_on_disconnect: bool = False) -> Any:
        """Send server-sent events from an async generator of ``server_event(...)`` strings.

        Usable as a decorator, like ``stream``. The response is ``text/event-stream``;
        a client disconnect cancels and closes the generator (or raises
        ``ClientDisconnect`` in it with ``raise_on_disconnect=True``).

        Raises:
            ArgumentTypeError: if ``source`` is a function but not an async generator function.
        """
        if source is None:
            return lambda func: self.event_stream(func, raise_on_disconnect=raise_on_disconnect)
        self._body = b""
        self._file = None
        self._stream = None
        self._events = as_async_iterable(_iterable_of(source, "res.event_stream"))
        self._raise_on_disconnect = raise_on_disconnect
        return source

    def file(
        self, path: str | os.PathLike[str], *, attach: bool = False, filename: str | None = None
    ) -> None:
        """Send a file from disk; its type is guessed from the name.

        Args:
            path: The file to send.
            attach: If true, ask the browser to download it (``Content-Disposition:
                attachment``) rather than display it.
            filename: The name to give the client (defaults to the file's own name).
        """
        name = filename or (os.path.basename(os.fspath(path)) if attach else None)
        self._file = (os.fspath(path), name, "attachment" if attach else "inline")
        self._stream = None

    @property
    def attachment(self) -> _Attachment:
        """Send a download: ``res.attachment(path)`` or ``res.attachment(content=...,
        filename=...)`` (see ``_Attachment.__call__``).

        Assigning a file name (``res.attachment = "report.csv"``, as in Bocadillo 0.18)
        keeps the body already set and asks the browser to save it under that name.
        """
        return _Attachment(self)

    @attachment.setter
    def attachment(self, filename: str) -> None:
        self.headers["content-disposition"] = content_disposition("attachment", filename)

    # Cookies and background tasks ----------------------------------------------------------

    def set_cookie(
        self,
        key: str,
        value: str = "",
        *,
        max_age: int | None = None,
        expires: datetime | str | int | None = None,
        path: str = "/",
        domain: str | None = None,
        secure: bool = False,
        httponly: bool = False,
        samesite: Literal["lax", "strict", "none"] | None = "lax",
    ) -> None:
        """Set a cookie on the client (see Starlette's ``Response.set_cookie``)."""
        self._cookies.append(
            (
                "set",
                dict(
                    key=key,
                    value=value,
                    max_age=max_age,
                    expires=expires,
                    path=path,
                    domain=domain,
                    secure=secure,
                    httponly=httponly,
                    samesite=samesite,
                ),
            )
        )

    def delete_cookie(self, key: str, *, path: str = "/", domain: str | None = None) -> None:
        """Ask the client to forget a cookie."""
        self._cookies.append(("delete", dict(key=key, path=path, domain=domain)))

    def background(self, func: F, *args: Any, **kwargs: Any) -> F:
        """Run ``func(*args, **kwargs)`` after the response has been sent.

        ``func`` may be sync (run in a thread) or async. Usable as a decorator.

        Returns:
            ``func`` unchanged.
        """
        if self._tasks is None:
            self._tasks = BackgroundTasks()
        self._tasks.add_task(func, *args, **kwargs)
        return func

    # Sending -----------------------------------------------------------------------------

    def _asgi_response(self) -> _StarletteResponse | StreamingBody:
        headers = dict(self.headers.items())
        response: _StarletteResponse
        if self._stream is not None or (self.chunked and self._file is None):
            source = self._stream if self._stream is not None else _single_chunk(self._body)
            # A bodiless response carries the headers (cookies included) of the stream.
            carrier = _StarletteResponse(
                status_code=self.status_code,
                headers=headers,
                media_type=self._media_type or _OCTETS,
            )
            self._apply_cookies(carrier)
            raw = [item for item in carrier.raw_headers if item[0] != b"content-length"]
            if self.chunked and b"transfer-encoding" not in {key for key, _ in raw}:
                raw.append((b"transfer-encoding", b"chunked"))
            return StreamingBody(
                source,
                status_code=self.status_code,
                headers=raw,
                raise_on_disconnect=self._raise_on_disconnect,
                background=self._tasks,
            )
        if self._file is not None:
            path, filename, disposition = self._file
            if filename is not None and "content-disposition" not in headers:
                headers["content-disposition"] = content_disposition(disposition, filename)
            response = FileResponse(
                path,
                status_code=self.status_code,
                headers=headers,
                filename=filename,
                content_disposition_type=disposition,
                background=self._tasks,
            )
        else:
            response = _StarletteResponse(
                self._body,
                status_code=self.status_code,
                headers=headers,
                media_type=self._media_type,
                background=self._tasks,
            )
        self._apply_cookies(response)
        return response

    def _apply_cookies(self, response: _StarletteResponse) -> None:
        for action, options in self._cookies:
            if action == "set":
                response.set_cookie(**options)
            else:
                response.delete_cookie(**options)

    @property
    def headers(self) -> ResponseHeaders:
        """The response headers (``Content-Type`` and ``Content-Length`` are added)."""
        if self._headers is None:
            self._headers = ResponseHeaders()
            self._headers._response = self
        return self._headers

    @headers.setter
    def headers(self, value: MutableHeaders | Mapping[str, str]) -> None:
        headers = ResponseHeaders()
        headers._response = self
        if isinstance(value, Headers):  # repeated names (set-cookie) kept
            for raw_key, raw_value in value.raw:
                headers.append(raw_key.decode("latin-1"), raw_value.decode("latin-1"))
        else:
            for key, item in value.items():
                headers[key] = item
        self._headers = headers

    def _raw_headers(self) -> list[tuple[bytes, bytes]]:
        if self._headers is None:  # the common case: only what the body implies
            raw = []
            if self._media_type is not None:
                raw.append((b"content-type", self._media_type.encode("latin-1")))
            if not (self.status_code < 200 or self.status_code in (204, 304)):
                raw.append((b"content-length", str(len(self._body)).encode("latin-1")))
            return raw
        raw = list(self._headers.raw)
        keys = {key for key, _ in raw}
        if self._media_type is not None and b"content-type" not in keys:
            raw.append((b"content-type", self._media_type.encode("latin-1")))
        if b"content-length" not in keys and not (
            self.status_code < 200 or self.status_code in (204, 304)
        ):
            raw.append((b"content-length", str(len(self._body)).encode("latin-1")))
        return raw

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Send this response as ASGI messages, then run the background tasks."""
        if self._events is not None:
            from .sse import EventStream

            events = EventStream(
                self._events,
                headers=list(self.headers.raw),
                raise_on_disconnect=self._raise_on_disconnect,
            )
            await events(scope, receive, send)
            if self._tasks is not None:
                await self._tasks()
            return
        if self._stream is not None or self._file is not None or self.chunked or self._cookies:
            await self._asgi_response()(scope, receive, send)
            return
        # The common case (a body in memory) is written directly: no intermediate object.
        await send(
            {
                "type": "http.response.start",
                "status": self.status_code,
                "headers": self._raw_headers(),
            }
        )
        await send({"type": "http.response.body", "body": self._body})
        if self._tasks is not None:
            await self._tasks()


class _Attachment:
    """``res.attachment``: call it to send a download."""

    def __init__(self, res: Response) -> None:
        self._res = res

    def __call__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        content: bytes | str | None = None,
        filename: str | None = None,
    ) -> None:
        """Send a download: a file from disk, or ``content`` made in memory.

        Args:
            path: A file to send as an attachment.
            content: The bytes (or text) to send when there is no file.
            filename: The name the browser saves it under (required with ``content``).

        Raises:
            InvalidArgument: with neither or both of ``path`` and ``content``, or ``content``
                without ``filename``.
        """
        res = self._res
        if (path is None) == (content is None):
            raise InvalidArgument("attachment() takes either a path or content=...")
        if path is not None:
            res.file(path, attach=True, filename=filename)
            return
        if filename is None:
            raise InvalidArgument("attachment(content=...) needs a filename")
        body = content.encode("utf-8") if isinstance(content, str) else bytes(content or b"")
        header = content_disposition("attachment", filename)
        res._set_body(body, guess_type(filename)[0] or _OCTETS)
        res.headers["content-disposition"] = header


def _iterable_of(source: Any, where: str) -> AsyncIterable[Any] | Iterable[Any]:
    if inspect.isasyncgenfunction(source):
        return source()  # type: ignore[no-any-return]
    if callable(source) and not isinstance(source, (AsyncIterable, Iterable)):
        raise ArgumentTypeError(
            f"{where} takes an async generator function (async def with yield) or an "
            f"iterable, not {getattr(source, '__qualname__', source)!r}"
        )
    if not isinstance(source, (AsyncIterable, Iterable)) or isinstance(source, (str, bytes)):
        raise ArgumentTypeError(f"{where} takes an async generator function or an iterable")
    return source


async def _single_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body
