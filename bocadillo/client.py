"""Bocadillo's Python client, for services, scripts and tests (``docs/clients.md``).

The same client as ``clients/js/client.js``, with asyncio names: envelopes and
message-type handlers, requests resolved by their id, answers to the server's requests,
rooms that are resumed after every reconnection (with the last position seen in each),
reconnection with backoff, jitter, a cap and the server's suggested delay, connection
events, and a bounded queue of what is sent while offline::

    async with connect("ws://127.0.0.1:8000/ws") as client:
        client.on("chat", lambda data, message: print(data["text"]))
        await client.join("lobby")
        print(await client.request("add", {"a": 1, "b": 2}, timeout=5))

It runs on the ``websockets`` package: ``pip install 'bocadillo[client]'``.
"""

from __future__ import annotations

import asyncio
import logging
import random
import re
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

from .closecodes import CloseCode
from .errors import InvalidState, MissingDependency, RequestFailed, RequestTimeout
from .jsoncodec import dumps, loads

if TYPE_CHECKING:
    from websockets.asyncio.client import ClientConnection

__all__ = [
    "Client",
    "Position",
    "State",
    "connect",
    "reconnect_delay",
    "should_reconnect",
]

logger = logging.getLogger("bocadillo.client")

State = Literal["idle", "connecting", "open", "reconnecting", "closed"]
Handler = Callable[[Any, dict[str, Any]], Any]
Listener = Callable[[dict[str, Any]], Any]
Answerer = Callable[[Any, dict[str, Any]], Any]
F = TypeVar("F", bound=Callable[..., Any])

#: The longest delay a server may ask for in a close reason (``retry=<seconds>``).
MAX_SUGGESTED_DELAY = 3600.0
_RETRY = re.compile(r"(?:^|[\s;,])retry=(\d+(?:\.\d+)?)(?:$|[\s;,])")
#: Codes of the failures the client itself reports (the server's are in ``ERROR_CODES``).
_LOCAL_CODES = frozenset({"disconnected", "closed", "queue_full"})


def _websockets_connect() -> Any:
    try:
        from websockets.asyncio.client import connect as ws_connect
    except ImportError as exc:
        raise MissingDependency(
            "bocadillo.client needs the 'websockets' package: pip install 'bocadillo[client]'"
        ) from exc
    return ws_connect


@dataclass(frozen=True)
class Position:
    """A room's last position: its stream's ``epoch`` and the ``offset`` of the last
    publication seen."""

    epoch: str
    offset: int

    @classmethod
    def parse(cls, value: Any) -> Position | None:
        """The position in ``value`` (a dict with ``epoch`` and ``offset``), or None."""
        if not isinstance(value, dict):
            return None
        epoch, offset = value.get("epoch"), value.get("offset")
        if isinstance(epoch, str) and isinstance(offset, int) and not isinstance(offset, bool):
            return cls(epoch, offset)
        return None

    def as_dict(self) -> dict[str, Any]:
        """``{"epoch": ..., "offset": ...}``, as the ``resume`` message wants it."""
        return {"epoch": self.epoch, "offset": self.offset}


def should_reconnect(code: int) -> bool:
    """Whether the client reconnects after a close with ``code``, by default: always, but
    after a normal closure (1000: the server's app closed it on purpose) and the
    application codes 4000-4499 (an app's way to say "do not come back")."""
    return not (code == CloseCode.NORMAL_CLOSURE or 4000 <= code < 4500)


def reconnect_delay(
    attempt: int,
    code: int,
    reason: str,
    *,
    min_delay: float = 0.5,
    max_delay: float = 30.0,
    busy_delay: float = 5.0,
    restart_delay: float = 1.0,
    rand: Callable[[], float] = random.random,
) -> float:
    """Seconds to wait before the next attempt (``docs/clients.md``, "Reconnection").

    Exponential backoff (``min_delay * 2**attempt``, capped at ``max_delay``) with half
    of it random, and never less than the server suggests: the ``retry=<seconds>`` of the
    close reason, else ``busy_delay`` after 1013 and ``restart_delay`` after 1001 or
    1012, plus up to 20% of it at random.

    Args:
        attempt: Attempts made since the last stable connection (0 for the first).
        code: The last close code (1006 when no connection opened).
        reason: The last close reason.
        min_delay: As the ``Client`` option.
        max_delay: As the ``Client`` option.
        busy_delay: As the ``Client`` option.
        restart_delay: As the ``Client`` option.
        rand: A number in ``[0, 1)``.
    """
    base = min(max_delay, min_delay * 2.0 ** min(attempt, 30))
    delay = base / 2 + rand() * base / 2
    suggested = _RETRY.search(reason or "")
    floor = 0.0
    if suggested:
        floor = min(float(suggested.group(1)), MAX_SUGGESTED_DELAY)
    elif code == CloseCode.TRY_AGAIN_LATER:
        floor = busy_delay
    elif code in (CloseCode.GOING_AWAY, CloseCode.SERVICE_RESTART):
        floor = restart_delay
    if floor > 0:
        delay = max(delay, floor + rand() * floor * 0.2)
    return delay


class _Pending:
    __slots__ = ("future", "sent", "timer")

    def __init__(self, future: asyncio.Future[Any]) -> None:
        self.future = future
        #: The connection (its wire queue) the request went out on; None while queued.
        self.sent: asyncio.Queue[str | None] | None = None
        self.timer: asyncio.TimerHandle | None = None


class Client:
    """One client connection to a message-type endpoint, reconnected until closed.

    Args:
        url: The endpoint, ``ws://host:port/ws`` or ``wss://...``.
        min_delay: First reconnection delay (seconds), doubled at every attempt.
        max_delay: Cap of the backoff.
        busy_delay: Least delay after a 1013 close (server busy, or too slow a client).
        restart_delay: Least delay after a 1001 or 1012 close (a server going away).
        stable_after: A connection open this long resets the backoff.
        connect_timeout: Give up an opening handshake after this long.
        request_timeout: Default timeout of ``request()``.
        queue_limit: Messages and requests kept while offline.
        join_type: Message type of the app's join handler.
        leave_type: Message type of the app's leave handler.
        reconnect: Reconnect after a close: True (see ``should_reconnect``), False, or a
            function of the close code and reason.
        **options: More options for ``websockets.asyncio.client.connect``
            (``additional_headers``, ``origin``, ``ssl``...).
    """

    def __init__(
        self,
        url: str,
        *,
        min_delay: float = 0.5,
        max_delay: float = 30.0,
        busy_delay: float = 5.0,
        restart_delay: float = 1.0,
        stable_after: float = 5.0,
        connect_timeout: float = 10.0,
        request_timeout: float = 10.0,
        queue_limit: int = 100,
        join_type: str = "join",
        leave_type: str = "leave",
        reconnect: bool | Callable[[int, str], bool] = True,
        **options: Any,
    ) -> None:
        self._ws_connect = _websockets_connect()
        self.url = url
        self.min_delay = min_delay
        self.max_delay = max_delay
        self.busy_delay = busy_delay
        self.restart_delay = restart_delay
        self.stable_after = stable_after
        self.connect_timeout = connect_timeout
        self.request_timeout = request_timeout
        self.queue_limit = queue_limit
        self.join_type = join_type
        self.leave_type = leave_type
        self.reconnect = reconnect
        self.options = options
        #: "idle", "connecting", "open", "reconnecting" or "closed" (for good).
        self.state: State = "idle"
        #: Rooms joined through ``join()``, with the last position seen in each (or None).
        self.rooms: dict[str, Position | None] = {}
        #: Messages dropped because the offline queue was full (or the client closed).
        self.dropped = 0
        self._handlers: dict[str, list[Handler]] = {}
        self._listeners: dict[str, list[Listener]] = {}
        self._answerers: dict[str, Answerer] = {}
        self._joining: set[str] = set()
        self._pending: dict[int, _Pending] = {}
        self._queue: deque[tuple[str, int | None]] = deque()
        self._seq = 0
        self._attempt = 0
        self._wire: asyncio.Queue[str | None] | None = None
        self._ws: ClientConnection | None = None
        self._task: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopped = False
        self._wakeup = asyncio.Event()
        self._opened = asyncio.Event()

    # Handlers and listeners ---------------------------------------------------------------

    @overload
    def on(self, type: str) -> Callable[[F], F]: ...

    @overload
    def on(self, type: str, handler: F) -> F: ...

    def on(self, type: str, handler: F | None = None) -> Any:
        """Call ``handler(data, message)`` for every message of ``type`` (``"*"``: every
        message that is not a reply). Usable as a decorator. A coroutine function runs
        in a task of its own, so it may await the client's requests."""

        def register(func: F) -> F:
            self._handlers.setdefault(type, []).append(func)
            return func

        return register(handler) if handler is not None else register

    def off(self, type: str, handler: Callable[..., Any]) -> None:
        """Remove a handler given to ``on()``."""
        handlers = self._handlers.get(type, [])
        if handler in handlers:
            handlers.remove(handler)

    @overload
    def on_event(self, name: str) -> Callable[[F], F]: ...

    @overload
    def on_event(self, name: str, listener: F) -> F: ...

    def on_event(self, name: str, listener: F | None = None) -> Any:
        """Listen to a connection event with ``listener(detail)``: ``"connecting"``
        (``attempt``), ``"open"``, ``"closed"`` (``code``, ``reason``, ``was_clean``),
        ``"reconnecting"`` (``delay``, ``attempt``, ``code``, ``reason``), ``"resumed"``
        (``rooms``, or ``error``). A coroutine function runs in a task of its own."""

        def register(func: F) -> F:
            self._listeners.setdefault(name, []).append(func)
            return func

        return register(listener) if listener is not None else register

    @overload
    def on_request(self, type: str) -> Callable[[F], F]: ...

    @overload
    def on_request(self, type: str, answerer: F) -> F: ...

    def on_request(self, type: str, answerer: F | None = None) -> Any:
        """Answer the server's requests of ``type`` (``ws.request()`` on the server) with
        what ``answerer(data, message)`` returns (or its coroutine's result). An exception
        answers an ``error`` envelope with its ``code`` attribute (default
        ``handler_error``) and its message. One answerer per type."""

        def register(func: F) -> F:
            self._answerers[type] = func
            return func

        return register(answerer) if answerer is not None else register

    # Life -----------------------------------------------------------------------------------

    def start(self) -> None:
        """Start connecting (in a task of the running loop); returns at once.

        Raises:
            InvalidState: if the client was started already.
        """
        if self._task is not None:
            raise InvalidState("the client was started already")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def wait_open(self, timeout: float | None = None) -> None:
        """Wait until the client is open (at once if it is).

        Raises:
            TimeoutError: not open within ``timeout`` seconds.
            RequestFailed: ``closed``: the client closed for good.
        """

        async def wait() -> None:
            while self.state != "open":
                if self._stopped:
                    raise RequestFailed("closed", "the client is closed")
                self._opened.clear()
                await self._opened.wait()

        await asyncio.wait_for(wait(), timeout)

    async def close(self, code: int = CloseCode.NORMAL_CLOSURE, reason: str = "") -> None:
        """Close for good: no reconnection; queued messages and requests are dropped (their
        requests fail with ``closed``)."""
        if self._stopped:
            return
        self._stopped = True
        self._wakeup.set()
        self._opened.set()
        self._fail(lambda pending: True, "closed", "the client was closed")
        self._queue.clear()
        ws = self._ws
        was_open = self.state == "open"
        self.state = "closed"
        if ws is not None:
            await ws.close(code, reason)
        elif self._task is not None:
            self._task.cancel()  # connecting, or waiting to: nothing to close
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._emit("closed", {"code": code, "reason": reason, "was_clean": was_open})

    async def __aenter__(self) -> Client:
        self.start()
        await self.wait_open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    # Sending ------------------------------------------------------------------------------

    @property
    def queued(self) -> int:
        """Messages and requests waiting in the offline queue."""
        return len(self._queue)

    def send(self, type: str, data: Any = None) -> bool:
        """Send ``{"type", "data"}``. Open: sent now (in order). Otherwise queued (up to
        ``queue_limit`` messages and requests) and sent in order after the next
        connection's resume.

        Returns:
            False when the message was dropped: the queue is full, or the client closed.
        """
        return self._post(dumps({"type": type, "data": data}), None)

    async def request(self, type: str, data: Any = None, *, timeout: float | None = None) -> Any:
        """Send a request and return the data of its ``response``.

        Raises:
            RequestFailed: the server answered an ``error`` envelope (its ``code``, such as
                ``rate_limited``, and ``message``), or the client gave up: ``disconnected``
                (the connection it went out on closed; it is not sent again), ``closed``,
                ``queue_full``.
            RequestTimeout: no answer within ``timeout`` (default ``request_timeout``).
        """
        return await self._request(type, data, timeout, direct=False)

    async def join(self, room: str, data: Any = None, *, timeout: float | None = None) -> Any:
        """Join ``room``: send the app's join message (``join_type``; data: ``data``, or the
        room's name) and remember the room, to resume it after every reconnection.

        Returns:
            The answer. When it is the room's position (``{"epoch", "offset"}``) the
            client keeps it, so that a reconnection before any publication misses nothing.

        Raises:
            RequestFailed, RequestTimeout: as ``request()``. An error answer forgets the
                room again; a timeout, ``disconnected`` or ``queue_full`` keeps it (it will
                be resumed): ``leave()`` gives it up.
        """
        known = room in self.rooms
        if not known:
            self.rooms[room] = None
        # While its join is on its way, a reconnection does not resume the room: the
        # join itself (queued, or failed with "disconnected" before the next attempt) says.
        self._joining.add(room)
        try:
            answer = await self.request(
                self.join_type, room if data is None else data, timeout=timeout
            )
        except RequestFailed as exc:
            if not known and exc.code not in _LOCAL_CODES:
                self.rooms.pop(room, None)
            raise
        finally:
            self._joining.discard(room)
        position = Position.parse(answer)
        if position is not None and room in self.rooms and self.rooms[room] is None:
            self.rooms[room] = position
        return answer

    async def leave(self, room: str, data: Any = None, *, timeout: float | None = None) -> Any:
        """Leave ``room``: forget it and send the app's leave message (``leave_type``).

        Returns:
            The answer.
        """
        self.rooms.pop(room, None)
        return await self.request(self.leave_type, room if data is None else data, timeout=timeout)

    # Internals ------------------------------------------------------------------------------

    def _emit(self, name: str, detail: dict[str, Any]) -> None:
        for listener in list(self._listeners.get(name, ())):
            self._call(listener, (detail,), f"{name!r} listener")

    def _call(self, func: Callable[..., Any], args: tuple[Any, ...], what: str) -> None:
        try:
            result = func(*args)
        except Exception:
            logger.exception("bocadillo client: a %s failed", what)
            return
        if isinstance(result, Awaitable):
            self._spawn(self._guard(result, what))

    async def _guard(self, awaitable: Awaitable[Any], what: str) -> None:
        try:
            await awaitable
        except Exception:
            logger.exception("bocadillo client: a %s failed", what)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _post(self, frame: str, request_id: int | None) -> bool:
        wire = self._wire
        if self.state == "open" and wire is not None:
            wire.put_nowait(frame)
            if request_id is not None:
                self._pending[request_id].sent = wire
            return True
        if self._stopped or len(self._queue) >= self.queue_limit:
            self.dropped += 1
            return False
        self._queue.append((frame, request_id))
        return True

    def _request(
        self, type: str, data: Any, timeout: float | None, *, direct: bool
    ) -> asyncio.Future[Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        if self._stopped:
            future.set_exception(RequestFailed("closed", "the client is closed"))
            return future
        self._seq += 1
        request_id = self._seq
        pending = self._pending[request_id] = _Pending(future)
        seconds = self.request_timeout if timeout is None else timeout

        def expire() -> None:
            if self._pending.pop(request_id, None) is not None and not future.done():
                self._queue = deque(item for item in self._queue if item[1] != request_id)
                future.set_exception(RequestTimeout(type, seconds))

        pending.timer = loop.call_later(seconds, expire)
        frame = dumps({"type": type, "data": data, "id": request_id})
        if direct:
            assert self._wire is not None
            self._wire.put_nowait(frame)
            pending.sent = self._wire
        elif not self._post(frame, request_id):
            self._settle(request_id, None, RequestFailed("queue_full", "the offline queue is full"))
        return future

    def _settle(self, request_id: Any, value: Any, error: BaseException | None) -> None:
        pending = self._pending.pop(request_id, None) if isinstance(request_id, int) else None
        if pending is None:
            return
        if pending.timer is not None:
            pending.timer.cancel()
        if pending.future.done():
            return
        if error is not None:
            pending.future.set_exception(error)
        else:
            pending.future.set_result(value)

    def _fail(self, which: Callable[[_Pending], bool], code: str, message: str) -> None:
        for request_id, pending in list(self._pending.items()):
            if which(pending):
                self._settle(request_id, None, RequestFailed(code, message))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopped:
            self.state = "connecting"
            self._emit("connecting", {"attempt": self._attempt})
            code, reason, was_clean = int(CloseCode.ABNORMAL_CLOSURE), "", False
            opened_at: float | None = None
            try:
                ws = await asyncio.wait_for(
                    self._ws_connect(self.url, open_timeout=None, **self.options),
                    self.connect_timeout,
                )
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # refused, handshake failed, timed out...
                reason = str(exc) or type(exc).__name__
            else:
                opened_at = loop.time()
                code, reason, was_clean = await self._serve(ws)
            if opened_at is not None and loop.time() - opened_at >= self.stable_after:
                self._attempt = 0
            # Requests sent on that connection can no longer be answered; queued ones wait.
            self._fail(lambda pending: pending.sent is not None, "disconnected", "connection lost")
            if self._stopped:
                return
            again = self.reconnect
            retry = again(code, reason) if callable(again) else again and should_reconnect(code)
            if not retry:
                self._stopped = True
                self.state = "closed"
                self._fail(lambda pending: True, "closed", "the connection closed for good")
                self._queue.clear()
                self._opened.set()
                self._emit("closed", {"code": code, "reason": reason, "was_clean": was_clean})
                return
            self.state = "reconnecting"
            self._emit("closed", {"code": code, "reason": reason, "was_clean": was_clean})
            delay = reconnect_delay(
                self._attempt,
                code,
                reason,
                min_delay=self.min_delay,
                max_delay=self.max_delay,
                busy_delay=self.busy_delay,
                restart_delay=self.restart_delay,
            )
            self._attempt += 1
            self._emit(
                "reconnecting",
                {"delay": delay, "attempt": self._attempt, "code": code, "reason": reason},
            )
            try:
                await asyncio.wait_for(self._wakeup.wait(), delay)
            except asyncio.TimeoutError:
                pass

    async def _serve(self, ws: ClientConnection) -> tuple[int, str, bool]:
        from websockets.exceptions import ConnectionClosed

        wire: asyncio.Queue[str | None] = asyncio.Queue()
        self._ws, self._wire = ws, wire
        writer = asyncio.ensure_future(self._write(ws, wire))
        try:
            if self._stopped:
                return int(CloseCode.NORMAL_CLOSURE), "", True
            self.state = "open"
            self._opened.set()
            self._emit("open", {})
            if any(room not in self._joining for room in self.rooms) and self._wire is wire:
                self._resume(wire)
            queue, self._queue = self._queue, deque()
            for frame, request_id in queue:
                if request_id is not None:
                    pending = self._pending.get(request_id)
                    if pending is None:
                        continue  # timed out while queued
                    pending.sent = wire
                wire.put_nowait(frame)
            try:
                async for received in ws:
                    if isinstance(received, str):
                        self._received(received, wire)
            except ConnectionClosed:
                pass
        finally:
            self._ws = self._wire = None
            wire.put_nowait(None)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)
        code = ws.close_code
        if code is None or code == CloseCode.ABNORMAL_CLOSURE:
            return int(CloseCode.ABNORMAL_CLOSURE), "", False
        return int(code), ws.close_reason or "", True

    @staticmethod
    async def _write(ws: ClientConnection, wire: asyncio.Queue[str | None]) -> None:
        from websockets.exceptions import ConnectionClosed

        while (frame := await wire.get()) is not None:
            try:
                await ws.send(frame)
            except ConnectionClosed:
                return

    def _resume(self, wire: asyncio.Queue[str | None]) -> None:
        """Put the ``resume`` request on the wire now (before the offline queue), and
        handle its answer in a task."""
        asked = {room: pos for room, pos in self.rooms.items() if room not in self._joining}
        rooms = {room: None if pos is None else pos.as_dict() for room, pos in asked.items()}
        answer = self._request("resume", {"rooms": rooms}, self.request_timeout, direct=True)
        self._spawn(self._resumed(asked, answer, wire))

    async def _resumed(
        self,
        asked: dict[str, Position | None],
        future: asyncio.Future[Any],
        wire: asyncio.Queue[str | None],
    ) -> None:
        try:
            answer = await future
        except RequestFailed as exc:
            if exc.code not in ("disconnected", "closed"):
                self._emit("resumed", {"error": exc})
            return
        except RequestTimeout as exc:
            self._emit("resumed", {"error": exc})
            return
        answered = answer.get("rooms", {}) if isinstance(answer, dict) else {}
        result: dict[str, dict[str, Any]] = {}
        for room, before in asked.items():
            state = answered.get(room) or {}
            now = Position.parse(state)
            current = self.rooms.get(room)
            if room in self.rooms and now is not None:
                # Keep a newer position a publication brought meanwhile.
                if current is None or current.epoch != now.epoch or current.offset < now.offset:
                    self.rooms[room] = now
            # None: there was nothing to recover (no position was known).
            recovered = None if before is None else bool(state.get("recovered"))
            result[room] = {"recovered": recovered, "position": now}
        if self._wire is wire:
            self._emit("resumed", {"rooms": result})

    def _received(self, text: str, wire: asyncio.Queue[str | None]) -> None:
        try:
            message = loads(text)
        except ValueError:
            return
        if not isinstance(message, dict) or not isinstance(message.get("type"), str):
            return
        kind, request_id = message["type"], message.get("id")
        if request_id is not None and kind in ("response", "error"):
            if kind == "response":
                self._settle(request_id, message.get("data"), None)
            else:
                data = message.get("data")
                data = data if isinstance(data, dict) else {}
                error = RequestFailed(str(data.get("code", "error")), str(data.get("message", "")))
                self._settle(request_id, None, error)
            return
        if request_id is not None:
            self._spawn(self._answer(message, wire))
            return
        room, offset = message.get("room"), message.get("offset")
        if isinstance(room, str) and isinstance(offset, int) and room in self.rooms:
            known = self.rooms[room]
            if known is not None and known.epoch == message.get("epoch") and offset <= known.offset:
                return  # seen already
            epoch = message.get("epoch")
            if isinstance(epoch, str):
                self.rooms[room] = Position(epoch, offset)
        data = message.get("data")
        for key in (kind, "*"):
            for handler in list(self._handlers.get(key, ())):
                self._call(handler, (data, message), f"{key!r} handler")

    async def _answer(self, message: dict[str, Any], wire: asyncio.Queue[str | None]) -> None:
        kind, request_id = message["type"], message["id"]
        answerer = self._answerers.get(kind)
        reply: dict[str, Any]
        if answerer is None:
            error = {"code": "unknown_type", "message": f"no answerer for {kind}"}
            reply = {"type": "error", "data": error, "id": request_id}
        else:
            try:
                result = answerer(message.get("data"), message)
                if isinstance(result, Awaitable):
                    result = await result
                reply = {"type": "response", "data": result, "id": request_id}
            except Exception as exc:
                code = getattr(exc, "code", None)
                error = {
                    "code": code if isinstance(code, str) else "handler_error",
                    "message": str(exc),
                }
                reply = {"type": "error", "data": error, "id": request_id}
        # Only the connection the request came on can answer it.
        if self._wire is wire:
            wire.put_nowait(dumps(reply))


def connect(url: str, **options: Any) -> Client:
    """A ``Client`` for ``url`` (see its options); ``async with connect(url) as client``
    starts it and waits until it is open, and closes it at the end of the block."""
    return Client(url, **options)
