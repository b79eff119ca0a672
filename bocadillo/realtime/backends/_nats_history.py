"""Room history on JetStream, for the NATS backend (``nats.py`` drives it).

Streams. The rooms that keep the same number of publications for the same time share one
stream, ``<prefix>_history_<size>_<ttl in ms>``, kept in the server's memory, with one
subject per room, ``<prefix>.hist.<size>_<ttl>.<room>`` (the room as a key token, see
``nats.py``). The stream keeps ``size`` messages per subject (``max_msgs_per_subject``),
each for ``ttl`` (``max_age``): the server bounds the history, nothing else trims it.

Offsets. Every message carries its room's epoch and offset in two headers. A process
publishes with ``Nats-Expected-Last-Subject-Sequence`` set to the stream sequence of the
room's last message and the offset after that message's: the server stores it only if no
other message reached the room in between, so a room's offsets are consecutive and follow
the stream's order, whichever process publishes. A process that loses the race reads the
room's last message again and tries again. The last message is read at the start of each
batch of publications, then followed from the server's acknowledgements: a sequence
remembered longer could, after the stream was lost and made again, match another
message's.

Delivery. The stream republishes every message it stores to ``<prefix>.hpub.<size>_<ttl>.
<room>``, in the stream's order (``republish``); a process subscribes to the room's
subjects while it has a member in the room, or reads its history (``_nats_bus.py``). A
message the server refused (a lost race) is never republished, so every process subscribed
to a room sees its publications once, in offset order, the publisher's own included.

Epochs. A room's epoch is made at random when its subject is empty: on its first
publication or read, after its messages expired (nothing published for ``ttl``), or when
the stream was lost (the server restarted: the stream is in memory). A read of an empty
room stores a marker (offset 0, no frame) with the new epoch, so the next publication
continues it; markers are never delivered.
"""

from __future__ import annotations

import asyncio
import base64
import calendar
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ...errors import MissingDependency
from .base import HistoryRead

try:
    import nats.errors
    from nats.aio.client import Client
    from nats.aio.msg import Msg
    from nats.js.errors import APIError, NoStreamResponseError, NotFoundError
except ImportError as exc:  # pragma: no cover - exercised without the extra installed
    raise MissingDependency(
        "the NATS hub backend needs the 'nats-py' package: pip install 'bocadillo[nats]'"
    ) from exc

__all__ = [
    "EPOCH",
    "OFFSET",
    "Entry",
    "QueuedPublication",
    "RoomStreams",
    "parse_headers",
    "publication_of",
]

logger = logging.getLogger("bocadillo.hub.nats")

#: The headers of a history message: its room's offset and epoch.
OFFSET = "Bocadillo-Offset"
EPOCH = "Bocadillo-Epoch"
#: The server's check: the stream sequence of the subject's last message (0: none).
_EXPECTED = "Nats-Expected-Last-Subject-Sequence"
#: JetStream API errors: a lost race, no such message, no such stream, a stream that
#: exists with another configuration.
_WRONG_LAST_SEQUENCE = 10071
_NO_MESSAGE = 10037
_STREAM_NOT_FOUND = 10059
_STREAM_EXISTS = 10058
#: Attempts at one publication when other processes keep winning the race for its room.
MAX_ATTEMPTS = 100
#: Gaps up to this many publications are read message by message, backwards from the
#: room's last one; longer ones through a consumer that sends the room's whole subject.
WALK = 16
#: Seconds after which the server removes a reading consumer left behind.
_CONSUMER_IDLE = 10.0
_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d+))?(?:Z|[+-]00:00)\Z")


def new_epoch() -> str:
    """A new random epoch (no spaces, ASCII: it travels in a header)."""
    return secrets.token_urlsafe(6)


@dataclass(frozen=True)
class Entry:
    """One stored message of a room: where it is in the stream and in the room."""

    seq: int
    #: The stream sequence of the room's message before it (0: none).
    previous: int
    epoch: str
    offset: int
    time: float
    frame: bytes


class QueuedPublication:
    """A publication waiting for the writer."""

    __slots__ = ("frame", "size", "token", "ttl_ms")

    def __init__(self, token: str, frame: bytes, size: int, ttl_ms: int) -> None:
        self.token = token
        self.frame = frame
        self.size = size
        self.ttl_ms = ttl_ms

    @property
    def room_key(self) -> tuple[int, int, str]:
        return (self.size, self.ttl_ms, self.token)


def publication_of(headers: dict[str, str] | None) -> tuple[int, str] | None:
    """``(offset, epoch)`` of a republished history message; ``None`` for a marker or
    a message without the headers."""
    if not headers:
        return None
    try:
        offset = int(headers[OFFSET])
        epoch = headers[EPOCH]
    except (KeyError, ValueError):
        return None
    if offset < 1 or not epoch:
        return None
    return offset, epoch


def parse_headers(raw: bytes) -> dict[str, str]:
    """``NATS/1.0\\r\\nName: value\\r\\n...`` as a dict."""
    found: dict[str, str] = {}
    for line in raw.decode("utf-8", "replace").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        if sep:
            found[name.strip()] = value.strip()
    return found


def _unix_time(stamp: str) -> float:
    """An RFC 3339 UTC time from the server (nanoseconds at most) as Unix seconds."""
    match = _TIME.match(stamp)
    if match is None:
        return time.time()
    whole = calendar.timegm(time.strptime(match.group(1), "%Y-%m-%dT%H:%M:%S"))
    return whole + float(f"0.{match.group(2) or 0}")


def _entry(seq: int, headers: dict[str, str], stamp: float, frame: bytes) -> Entry | None:
    try:
        return Entry(
            seq, int(headers.get(_EXPECTED, 0)), headers[EPOCH], int(headers[OFFSET]), stamp, frame
        )
    except (KeyError, ValueError):
        return None  # not ours: ignored


class RoomStreams:
    """The history streams of one app (one prefix), on the backend's connection.

    Args:
        prefix: The backend's prefix.
        api: Makes a JetStream API request and returns its answer (raises ``APIError``).
        client: The connected client (raises when NATS is unreachable).
        timeout: Seconds a request may take.
    """

    def __init__(
        self,
        prefix: str,
        api: Callable[[str, dict[str, Any]], Awaitable[dict[str, Any]]],
        client: Callable[[], Client],
        timeout: float,
    ) -> None:
        self.prefix = prefix
        self._api = api
        self._client = client
        self.timeout = timeout
        #: Streams known to exist on the server this connection reaches.
        self._made: set[str] = set()

    def forget_streams(self) -> None:
        """The server may have changed (a reconnection): make the streams again."""
        self._made.clear()

    def stream_name(self, size: int, ttl_ms: int) -> str:
        return f"{self.prefix}_history_{size}_{ttl_ms}"

    def subject(self, size: int, ttl_ms: int, token: str) -> str:
        return f"{self.prefix}.hist.{size}_{ttl_ms}.{token}"

    async def _stream(self, size: int, ttl_ms: int) -> str:
        """The stream of rooms of ``size`` and ``ttl_ms``, made if need be."""
        name = self.stream_name(size, ttl_ms)
        if name in self._made:
            return name
        group = f"{self.prefix}.hist.{size}_{ttl_ms}"
        config = {
            "name": name,
            "subjects": [f"{group}.*"],
            "retention": "limits",
            "storage": "memory",
            "discard": "old",
            "max_msgs_per_subject": size,
            "max_age": ttl_ms * 1_000_000,  # nanoseconds
            "num_replicas": 1,
            # Never changed: see ``_nats_bus.py`` (a stream's republish is fixed for life).
            "republish": {"src": f"{group}.>", "dest": f"{self.prefix}.hpub.{size}_{ttl_ms}.>"},
        }
        try:
            await self._api(f"STREAM.CREATE.{name}", config)
        except APIError as exc:
            if exc.err_code != _STREAM_EXISTS:
                raise
            # Made with another configuration (by hand, say): used as it is.
            logger.warning("the NATS stream %s exists with another configuration", name)
        self._made.add(name)
        return name

    async def _get(self, stream: str, request: dict[str, Any]) -> Entry | None:
        """A stored message (``{"seq": n}`` or ``{"last_by_subj": subject}``), or None."""
        try:
            answer = await self._api(f"STREAM.MSG.GET.{stream}", request)
        except NotFoundError as exc:
            if exc.err_code == _STREAM_NOT_FOUND:
                self._made.discard(stream)
                raise
            return None  # no such message (expired, or never stored)
        message = answer["message"]
        headers = parse_headers(base64.b64decode(message.get("hdrs") or ""))
        frame = base64.b64decode(message.get("data") or "")
        return _entry(int(message["seq"]), headers, _unix_time(message["time"]), frame)

    # Publishing ------------------------------------------------------------------------------

    async def publish(
        self, publications: list[QueuedPublication], done: Callable[[bool], None]
    ) -> None:
        """Store ``publications`` (all to one room), in order, each with the room's next
        offset; ``done(True)`` for each one stored, ``done(False)`` for each one given up.

        Raises:
            nats.errors.Error, OSError: if NATS is unreachable (those not done may not
                have been stored).
        """
        finished = 0

        def counted(stored: bool) -> None:
            nonlocal finished
            finished += 1
            done(stored)

        try:
            await self._publish(publications, counted)
        except APIError as exc:
            # JetStream refused the room's stream or a message (no memory left, another
            # stream on these subjects, JetStream not ready yet...): the rest is lost.
            logger.warning(
                "JetStream refused publications to a room with history: %s",
                exc.description or repr(exc),
            )
            for _ in range(len(publications) - finished):
                done(False)

    async def _publish(
        self, publications: list[QueuedPublication], done: Callable[[bool], None]
    ) -> None:
        size, ttl_ms, token = publications[0].room_key
        subject = self.subject(size, ttl_ms, token)
        stream, head = await self._last(size, ttl_ms, subject)
        js = self._client().jetstream(timeout=self.timeout)
        for publication in publications:
            for _ in range(MAX_ATTEMPTS):
                seq, epoch, offset = (
                    (head.seq, head.epoch, head.offset) if head else (0, new_epoch(), 0)
                )
                headers = {_EXPECTED: str(seq), OFFSET: str(offset + 1), EPOCH: epoch}
                try:
                    ack = await js.publish(subject, publication.frame, headers=headers)
                except APIError as exc:
                    if exc.err_code != _WRONG_LAST_SEQUENCE:
                        raise
                    stream, head = await self._last(size, ttl_ms, subject)  # lost the race
                    continue
                except NoStreamResponseError:
                    self._made.discard(stream)  # the stream is gone: make it again
                    stream = await self._stream(size, ttl_ms)
                    head = None
                    continue
                except nats.errors.MaxPayloadError:
                    logger.error(
                        "a publication of %d bytes exceeds NATS's max_payload",
                        len(publication.frame),
                    )
                    done(False)
                    break
                head = Entry(ack.seq, seq, epoch, offset + 1, 0.0, b"")
                done(True)
                break
            else:
                logger.warning(
                    "gave up a publication to a room after %d attempts: other processes "
                    "kept publishing to it first",
                    MAX_ATTEMPTS,
                )
                done(False)

    # Reading ---------------------------------------------------------------------------------

    async def read(self, token: str, since: int, size: int, ttl_ms: int) -> HistoryRead:
        """The room's epoch (made if it has none), last offset, and kept publications
        after offset ``since``, oldest first, all consecutive."""
        since = max(since, 0)
        subject = self.subject(size, ttl_ms, token)
        stream, head = await self._head(size, ttl_ms, subject)
        if since >= head.offset:
            return head.epoch, head.offset, []
        gap = head.offset - since
        if gap == 1:
            entries = [head]
        elif gap <= WALK:
            entries = await self._walk_back(stream, subject, head, since)
        else:
            entries = await self._read_subject(stream, subject, head, since)
        last = max(head.offset, entries[-1].offset) if entries else head.offset
        return head.epoch, last, [(e.offset, e.time, e.frame) for e in entries]

    async def _last(self, size: int, ttl_ms: int, subject: str) -> tuple[str, Entry | None]:
        """The room's stream and last message (None: the room is empty); the stream made
        again if it was lost."""
        stream = await self._stream(size, ttl_ms)
        try:
            return stream, await self._get(stream, {"last_by_subj": subject})
        except NotFoundError:  # the stream is gone (``_get`` forgot it): make it again
            return await self._stream(size, ttl_ms), None

    async def _head(self, size: int, ttl_ms: int, subject: str) -> tuple[str, Entry]:
        """The room's stream and last message; in an empty room, a marker with a new
        epoch."""
        for _ in range(MAX_ATTEMPTS):
            stream, head = await self._last(size, ttl_ms, subject)
            if head is not None:
                return stream, head
            epoch = new_epoch()
            js = self._client().jetstream(timeout=self.timeout)
            try:
                ack = await js.publish(
                    subject, b"", headers={_EXPECTED: "0", OFFSET: "0", EPOCH: epoch}
                )
            except APIError as exc:
                if exc.err_code != _WRONG_LAST_SEQUENCE:
                    raise
                continue  # another process published first: read its message
            return stream, Entry(ack.seq, 0, epoch, 0, time.time(), b"")
        raise nats.errors.TimeoutError  # pragma: no cover - a hundred lost races in a row

    async def _walk_back(self, stream: str, subject: str, head: Entry, since: int) -> list[Entry]:
        """The room's messages after ``since``, read one by one from the last."""
        entries = [head]
        while entries[0].offset > since + 1 and entries[0].previous > 0:
            found = await self._get(stream, {"seq": entries[0].previous})
            if found is None or found.epoch != head.epoch or found.offset != entries[0].offset - 1:
                break  # gone (the gap is longer than what is kept): the rest is all there is
            entries.insert(0, found)
        return entries

    async def _read_subject(
        self, stream: str, subject: str, head: Entry, since: int
    ) -> list[Entry]:
        """The room's messages after ``since``, through a consumer of its subject."""
        nc = self._client()
        messages: list[Msg] = []
        arrived = asyncio.Event()

        async def collect(msg: Msg) -> None:
            messages.append(msg)
            arrived.set()

        subscription = await nc.subscribe(nc.new_inbox(), cb=collect)
        consumer = None
        try:
            config = {
                "deliver_subject": subscription.subject,
                "filter_subject": subject,
                "deliver_policy": "all",
                "ack_policy": "none",
                "replay_policy": "instant",
                "mem_storage": True,
                "inactive_threshold": int(_CONSUMER_IDLE * 1e9),
            }
            info = await self._api(
                f"CONSUMER.CREATE.{stream}", {"stream_name": stream, "config": config}
            )
            consumer = info["name"]
            # What the subject held when the consumer was made: enough, once the room's
            # last message (or a later one) is in.
            pending = int(info.get("num_pending", 0))
            while len(messages) < pending and not (
                messages and messages[-1].metadata.sequence.stream >= head.seq
            ):
                arrived.clear()
                try:
                    await asyncio.wait_for(arrived.wait(), self.timeout)
                except asyncio.TimeoutError:
                    raise nats.errors.TimeoutError from None
        finally:
            await subscription.unsubscribe()
            if consumer is not None:
                try:
                    await self._api(f"CONSUMER.DELETE.{stream}.{consumer}", {})
                except (APIError, nats.errors.Error, OSError):
                    pass  # removed by the server once idle
        found: list[Entry] = []
        for msg in messages:
            meta = msg.metadata
            entry = _entry(
                meta.sequence.stream, msg.headers or {}, meta.timestamp.timestamp(), msg.data
            )
            if entry is None or entry.epoch != head.epoch or entry.offset <= since:
                continue
            if found and entry.offset != found[-1].offset + 1:
                found.clear()  # a hole: only what follows it is consecutive
            found.append(entry)
            if entry.seq >= head.seq:
                break
        return found
