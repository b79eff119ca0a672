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
from typing import Any, Literal, TypeVar
from urllib.parse import quote

from starlette.background import BackgroundTasks
from starlette.concurrency import iterate_in_threadpool
from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import FileResponse, Response as _StarletteResponse, StreamingResponse

from .errors import InvalidArgument
from .jsoncodec import dumps_bytes
from .types import JSONValue, Receive, Scope, Send

__all__ = ["Response", "check_header", "content_disposition", "encode_json"]

F = TypeVar("F", bound=Callable[..., Any])

_TEXT = "text/plain; charset=utf-8"
_HTML = "text/html; charset=utf-8"
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


class Response:
    """What a view answers: body, status code, headers, cookies and background tasks.

    Set exactly one body: ``text``, ``html``, ``json`` (alias ``media``) or ``content``
    (bytes), or call ``stream()``, ``file()`` or ``attachment()``. The last one set wins.
    ``Content-Type`` follows the body unless ``headers["content-type"]`` is set;
    ``Content-Length`` is computed, except for streams and ``chunked = True``.
    """

    def __init__(self, status_code: int = 200) -> None:
        self.status_code = status_code
        self._headers: MutableHeaders | None = None  # made on first use
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
    def content(self, value: bytes) -> None:
        self._set_body(bytes(value), _OCTETS)

    def stream(self, source: Any) -> Any:
        """Send the body from an (async) iterable of ``str``/``bytes`` chunks, chunked.

        Usable as a decorator on an async generator function taking no arguments::

            @res.stream
            async def numbers():
                for n in range(10):
                    yield str(n)

        Returns:
            ``source`` unchanged, so the decorated function keeps its name.
        """
        iterable = source() if inspect.isasyncgenfunction(source) else source
        self._body = b""
        self._file = None
        self._events = None
        self._stream = iterable
        return source

    def event_stream(self, source: Any) -> Any:
        """Send server-sent events from an async generator of ``server_event(...)`` strings.

        Usable as a decorator, like ``stream``. The response is ``text/event-stream``;
        a client disconnect cancels and closes the generator.
        """
        iterable = source() if inspect.isasyncgenfunction(source) else source
        self._body = b""
        self._file = None
        self._stream = None
        self._events = iterable
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

    def attachment(
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
        if (path is None) == (content is None):
            raise InvalidArgument("attachment() takes either a path or content=...")
        if path is not None:
            self.file(path, attach=True, filename=filename)
            return
        if filename is None:
            raise InvalidArgument("attachment(content=...) needs a filename")
        body = content.encode("utf-8") if isinstance(content, str) else bytes(content or b"")
        from mimetypes import guess_type

        header = content_disposition("attachment", filename)
        self._set_body(body, guess_type(filename)[0] or _OCTETS)
        self.headers["content-disposition"] = header

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

    def _starlette_response(self) -> _StarletteResponse:
        headers = dict(self.headers.items())
        response: _StarletteResponse
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
        elif self._stream is not None or self.chunked:
            source = self._stream if self._stream is not None else _single_chunk(self._body)
            response = StreamingResponse(
                _ensure_async(source),
                status_code=self.status_code,
                headers=headers,
                media_type=self._media_type or _OCTETS,
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
        for action, options in self._cookies:
            if action == "set":
                response.set_cookie(**options)
            else:
                response.delete_cookie(**options)
        return response

    @property
    def headers(self) -> MutableHeaders:
        """The response headers (``Content-Type`` and ``Content-Length`` are added)."""
        if self._headers is None:
            self._headers = _CheckedHeaders()
        return self._headers

    @headers.setter
    def headers(self, value: MutableHeaders | Mapping[str, str]) -> None:
        headers = _CheckedHeaders()
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

            await EventStream(self._events, headers=list(self.headers.raw))(scope, receive, send)
            if self._tasks is not None:
                await self._tasks()
            return
        if self._stream is not None or self._file is not None or self.chunked or self._cookies:
            await self._starlette_response()(scope, receive, send)
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


async def _single_chunk(body: bytes) -> AsyncIterator[bytes]:
    yield body


def _ensure_async(source: AsyncIterable[bytes | str] | Iterable[bytes | str]) -> AsyncIterable[Any]:
    if isinstance(source, AsyncIterable):
        return source
    return iterate_in_threadpool(iter(source))
