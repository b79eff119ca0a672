"""The test client ``create_client`` returns: Starlette's, which also takes requests' spellings.

Bocadillo 0.18's ``create_client`` returned Starlette's test client of the time, built on
requests, so the test suites written for it call it with requests' keyword arguments.
Starlette's test client is now built on httpx2, which names some of them differently and
refuses others. ``TestClient`` takes both spellings, on ``request()`` and on every verb:

- ``allow_redirects=`` is requests' name for ``follow_redirects=``;
- ``data=`` is accepted on every verb, ``GET`` included: a mapping is sent as a form, text
  or bytes as the raw body (what httpx2 calls ``content=``), any other iterable of bytes
  or text (a generator...) as a streamed body, in chunks;
- ``stream=True`` returns the response before its body is read, as requests does: its
  ``iter_lines()`` and ``iter_content()`` yield bytes (see ``StreamedResponse``).

Everything else is Starlette's test client, unchanged: the app is called the same way
whichever spelling a test uses. This module imports httpx2 (through Starlette), so
``create_client`` imports it only once it has checked that httpx2 is installed.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypedDict, cast

import httpx2
from starlette.testclient import TestClient as StarletteTestClient

if TYPE_CHECKING:
    from httpx2._client import UseClientDefault
    from httpx2._types import (
        AuthTypes,
        CookieTypes,
        HeaderTypes,
        QueryParamTypes,
        RequestContent,
        RequestExtensions,
        RequestFiles,
        TimeoutTypes,
        URLTypes,
    )
    from typing_extensions import Unpack

    #: What ``data=`` takes: a form (a mapping), or a body as requests took it.
    RequestBody = Mapping[str, Any] | str | bytes | Iterable[bytes | str]

    class RequestOptions(TypedDict, total=False):
        """The keywords of ``TestClient.request`` that every verb method passes on."""

        content: RequestContent | None
        data: RequestBody | None
        files: RequestFiles | None
        json: Any
        params: QueryParamTypes | None
        headers: HeaderTypes | None
        cookies: CookieTypes | None
        auth: AuthTypes | UseClientDefault | None
        follow_redirects: bool | UseClientDefault
        timeout: TimeoutTypes | UseClientDefault
        extensions: RequestExtensions | None
        allow_redirects: bool | None
        stream: bool


__all__ = ["StreamedResponse", "TestClient"]


def _chunks(data: Iterable[bytes | str]) -> Iterator[bytes]:
    """The chunks of a body given to ``data=`` as an iterable, text sent as UTF-8 (requests
    allowed text chunks; httpx2 does not)."""
    for chunk in data:
        yield chunk.encode() if isinstance(chunk, str) else chunk


class _ChunkedRequest(httpx2.Request):
    """A request whose body the app receives one chunk per ASGI message, as it received a
    body that requests streamed from Bocadillo 0.18's test client.

    Starlette's test transport asks the request for its body with ``read()``. Given bytes
    (what ``httpx2.Request.read()`` returns: every chunk, joined) it sends one
    ``http.request`` message; given a generator, it sends a message per chunk, with
    ``more_body`` until the generator ends. This ``read()`` returns that generator, the
    same one on every call.
    """

    _body: Iterator[bytes] | None = None

    def read(self) -> Iterator[bytes]:  # type: ignore[override]
        if self._body is None:
            # The request was built from an iterable of bytes: its stream is synchronous.
            stream = cast("Iterable[bytes]", self.stream)
            self._body = (chunk for chunk in stream)  # a generator, as Starlette checks
        return self._body


class StreamedResponse(httpx2.Response):
    """What ``stream=True`` returns: an httpx2 response whose body is read as it is iterated.

    ``iter_lines()`` and ``iter_content()`` yield bytes, as requests' methods of those
    names do; everything else is the httpx2 response's (``iter_bytes()``, ``iter_text()``,
    ``read()``, ``close()``...). Reading the whole body (``read()``, or iterating to the
    end) ends the request; so does leaving the client's ``with`` block.
    """

    def iter_content(self, chunk_size: int | None = 1) -> Iterator[bytes]:
        """Yield the body in pieces of ``chunk_size`` bytes (the last may be shorter).

        Args:
            chunk_size: The size of each piece: 1 byte by default, as in requests. With
                ``None``, each piece is what the app sent in one message, as soon as it
                is sent; a larger size waits until that many bytes have come, or the end.
        """
        return self.iter_bytes(chunk_size)

    def iter_lines(self, chunk_size: int | None = None) -> Iterator[bytes]:  # type: ignore[override]
        """Yield the body's lines as bytes, without their line endings (``\\n``, ``\\r\\n``
        or ``\\r``); an empty line is ``b""``. Each line comes once it has ended, so
        an endless event stream can be read line by line.

        ``httpx2.Response.iter_lines()`` yields ``str``. A line split across chunks, even
        between its ``\\r`` and ``\\n``, is yielded once.

        Args:
            chunk_size: Read the body in pieces of this size (requests' keyword). ``None``,
                the default, reads each message of the app as it comes.
        """
        pending = b""
        for chunk in self.iter_bytes(chunk_size):
            lines = (pending + chunk).splitlines(keepends=True)
            pending = b""
            # The last piece waits for the next chunk unless it ends with "\n": its line
            # has not ended yet, or it ends with a "\r" that a "\n" may follow.
            if lines and not lines[-1].endswith(b"\n"):
                pending = lines.pop()
            for line in lines:
                yield line.rstrip(b"\r\n")
        if pending:
            yield pending.rstrip(b"\r\n")


class TestClient(StarletteTestClient):
    """Starlette's test client (an ``httpx2.Client``) that also takes requests' spellings.

    ``create_client(app)`` returns one. Each verb method (``get``, ``head``, ``options``,
    ``delete``, ``post``, ``put``, ``patch``) takes the keywords of ``request()``.
    """

    def request(
        self,
        method: str,
        url: URLTypes,
        *,
        content: RequestContent | None = None,
        data: RequestBody | None = None,
        files: RequestFiles | None = None,
        json: Any = None,
        params: QueryParamTypes | None = None,
        headers: HeaderTypes | None = None,
        cookies: CookieTypes | None = None,
        auth: AuthTypes | UseClientDefault | None = httpx2.USE_CLIENT_DEFAULT,
        follow_redirects: bool | UseClientDefault = httpx2.USE_CLIENT_DEFAULT,
        timeout: TimeoutTypes | UseClientDefault = httpx2.USE_CLIENT_DEFAULT,
        extensions: RequestExtensions | None = None,
        allow_redirects: bool | None = None,
        stream: bool = False,
    ) -> httpx2.Response:
        """Send a request to the app; the keywords are httpx2's, plus three of requests'.

        Args:
            method: The HTTP method.
            url: A path (``"/items"``) or a full URL.
            content: The raw body: text, bytes, or an iterable of bytes (which the app
                receives joined, in one message).
            data: A mapping, sent as a form (multipart with ``files=``); or, as requests
                took it, the body: text or bytes, sent as ``content=`` is; or an iterable
                (a generator...) of bytes or text (sent as UTF-8), streamed in chunks.
                Given with ``content=``, it is passed to httpx2 as it is.
            files: Files, sent as a multipart form.
            json: A value, sent as JSON.
            params: The query string's parameters.
            headers: Headers, added to the client's.
            cookies: Cookies for this request (httpx2 prefers them set on the client).
            auth: httpx2's authentication (``None``: none, even if the client has some).
            follow_redirects: Follow redirects (the default: yes).
            timeout: httpx2's timeout (Starlette warns that the test client ignores it).
            extensions: httpx2's request extensions.
            allow_redirects: requests' name for ``follow_redirects``.
            stream: Return the response before its body is read (a
                ``StreamedResponse``), as requests does; the request ends once the body
                is read to the end, or the response or the client is closed. Without it,
                the body is read before this returns.

        Returns:
            An ``httpx2.Response``; a ``StreamedResponse`` with ``stream=True``.

        Raises:
            TypeError: if ``allow_redirects`` and ``follow_redirects`` are both given.
        """
        if allow_redirects is not None:
            if follow_redirects is not httpx2.USE_CLIENT_DEFAULT:
                raise TypeError(
                    "allow_redirects= is requests' name for httpx2's follow_redirects=: "
                    "give only one of them (follow_redirects= is the one to keep)"
                )
            follow_redirects = allow_redirects
        # requests sent text, bytes and iterables given as data= as the body; httpx2 does
        # too, on the verbs that take a body, but with a DeprecationWarning. Here it is a
        # spelling that this client supports, the same on every verb: no warning.
        form: Mapping[str, Any] | None = None
        chunked = False
        if data is None or isinstance(data, Mapping):
            form = data
        elif content is not None:  # Two bodies: httpx2 sends data= (and warns), as it did.
            form = cast("Mapping[str, Any]", data)
        elif isinstance(data, (str, bytes)):
            content = data
        else:
            content, chunked = _chunks(data), True
        if not (stream or chunked):
            return super().request(
                method,
                url,
                content=content,
                data=form,
                files=files,
                json=json,
                params=params,
                headers=headers,
                cookies=cookies,
                # Starlette's annotations leave out two values that httpx2 takes and that
                # Starlette passes on to it: auth=None and a read-only mapping.
                auth=cast("AuthTypes | UseClientDefault", auth),
                follow_redirects=follow_redirects,
                timeout=timeout,
                extensions=None if extensions is None else dict(extensions),
            )
        # requests' spellings that httpx2 has no keyword for: what httpx2's client.stream()
        # does, without the context manager that would close the response on leaving it.
        request = self.build_request(
            method,
            url,
            content=content,
            data=form,
            files=files,
            json=json,
            params=params,
            headers=headers,
            cookies=cookies,
            timeout=timeout,
            extensions=extensions,
        )
        if chunked:
            request.__class__ = _ChunkedRequest
        response = self.send(request, auth=auth, follow_redirects=follow_redirects, stream=stream)
        if stream:
            # The same response, with requests' two iterators: nothing is copied or read.
            response.__class__ = StreamedResponse
        return response

    def get(self, url: URLTypes, **options: Unpack[RequestOptions]) -> httpx2.Response:
        """Send a ``GET`` request: ``request("GET", url, **options)``."""
        return self.request("GET", url, **options)

    def head(self, url: URLTypes, **options: Unpack[RequestOptions]) -> httpx2.Response:
        """Send a ``HEAD`` request: ``request("HEAD", url, **options)``."""
        return self.request("HEAD", url, **options)

    def options(self, url: URLTypes, **options: Unpack[RequestOptions]) -> httpx2.Response:
        """Send an ``OPTIONS`` request: ``request("OPTIONS", url, **options)``."""
        return self.request("OPTIONS", url, **options)

    def delete(self, url: URLTypes, **options: Unpack[RequestOptions]) -> httpx2.Response:
        """Send a ``DELETE`` request: ``request("DELETE", url, **options)``."""
        return self.request("DELETE", url, **options)

    def post(self, url: URLTypes, **options: Unpack[RequestOptions]) -> httpx2.Response:
        """Send a ``POST`` request: ``request("POST", url, **options)``."""
        return self.request("POST", url, **options)

    def put(self, url: URLTypes, **options: Unpack[RequestOptions]) -> httpx2.Response:
        """Send a ``PUT`` request: ``request("PUT", url, **options)``."""
        return self.request("PUT", url, **options)

    def patch(self, url: URLTypes, **options: Unpack[RequestOptions]) -> httpx2.Response:
        """Send a ``PATCH`` request: ``request("PATCH", url, **options)``."""
        return self.request("PATCH", url, **options)
