"""Room history: the last publications of a room, each with its position. PURE: no I/O.

A room with history keeps its last ``size`` publications for ``ttl`` seconds. Each
publication gets the room's next ``offset`` (1, 2, 3...) and carries the room's
``epoch``, a random string made when the room's stream starts: if the stream is lost
(the process restarted, or the room was forgotten after its TTL), the epoch changes, so
a client holding an old position can tell that what it missed cannot be recovered.

``RoomRules`` says which rooms keep history (and emit presence events), from the app's
settings and per-room patterns. ``Histories`` holds the streams and answers recoveries:
either exactly the publications after a position, or nothing (``recovered: false``).
"""

from __future__ import annotations

import fnmatch
import secrets
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigurationError

__all__ = [
    "Histories",
    "Position",
    "Publication",
    "Recovery",
    "RoomHistory",
    "RoomOptions",
    "RoomRules",
    "new_epoch",
]


def new_epoch() -> str:
    """A new random epoch (8 URL-safe characters)."""
    return secrets.token_urlsafe(6)


@dataclass(frozen=True)
class Position:
    """Where a room's stream is: the last offset given, in an epoch."""

    epoch: str
    offset: int

    def as_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "offset": self.offset}


@dataclass(frozen=True)
class Publication:
    """One message published to a room with history."""

    offset: int
    data: Any
    type: str | None
    time: float


@dataclass(frozen=True)
class Recovery:
    """The answer to "what did I miss since this position?".

    ``recovered`` is true when ``publications`` are exactly what was published after
    the position (possibly none); false when that cannot be known (another epoch, or a
    gap longer than the history): then ``publications`` is empty and the client should
    reload. ``position`` is the room's current position either way.
    """

    recovered: bool
    position: Position
    publications: tuple[Publication, ...] = ()


@dataclass(frozen=True)
class RoomOptions:
    """What a room keeps: ``history_size`` publications (0: no history) for
    ``history_ttl`` seconds, and whether its members get ``join``/``leave`` events."""

    history_size: int = 0
    history_ttl: float = 300.0
    presence_events: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.history_size, int) or self.history_size < 0:
            raise ConfigurationError(
                f"history_size must be an int >= 0 (0: no history), not {self.history_size!r}"
            )
        if not self.history_ttl > 0:
            raise ConfigurationError(f"history_ttl must be > 0 seconds, not {self.history_ttl!r}")


@dataclass
class RoomRules:
    """Which options each room has: the first pattern (``fnmatch`` style, ``"game:*"``)
    that matches its name, else the defaults."""

    default: RoomOptions = field(default_factory=RoomOptions)
    patterns: list[tuple[str, RoomOptions]] = field(default_factory=list)
    _cache: dict[str, RoomOptions] = field(default_factory=dict, repr=False)

    def add(self, pattern: str, options: RoomOptions) -> None:
        """Give the rooms matching ``pattern`` these options (earlier patterns win)."""
        self.patterns.append((pattern, options))
        self._cache.clear()

    def for_room(self, room: str) -> RoomOptions:
        """The options of ``room``."""
        found = self._cache.get(room)
        if found is None:
            found = next(
                (opts for pattern, opts in self.patterns if fnmatch.fnmatchcase(room, pattern)),
                self.default,
            )
            if len(self._cache) < 10_000:  # bounded: room names come from clients
                self._cache[room] = found
        return found

    @property
    def any_history(self) -> bool:
        """Whether some room may keep history."""
        return self.default.history_size > 0 or any(o.history_size for _, o in self.patterns)


class RoomHistory:
    """One room's stream: its epoch, its last offset and its last publications."""

    __slots__ = ("_items", "epoch", "last", "offset", "options")

    def __init__(self, options: RoomOptions, epoch: str, now: float = 0.0) -> None:
        self.options = options
        self.epoch = epoch
        self.offset = 0
        #: When the room was last published to (or its stream made).
        self.last = now
        self._items: deque[Publication] = deque(maxlen=options.history_size)

    @property
    def position(self) -> Position:
        return Position(self.epoch, self.offset)

    def append(self, data: Any, type: str | None, now: float) -> Publication:
        """Record a publication; returns it with its offset."""
        self.offset += 1
        self.last = now
        publication = Publication(self.offset, data, type, now)
        self._items.append(publication)
        return publication

    def prune(self, now: float) -> None:
        """Forget publications older than the TTL."""
        oldest = now - self.options.history_ttl
        items = self._items
        while items and items[0].time <= oldest:
            items.popleft()

    def since(self, epoch: str, offset: int, now: float) -> Recovery:
        """What was published after ``offset`` of ``epoch``: all of it, or nothing."""
        self.prune(now)
        position = self.position
        if epoch != self.epoch or offset > self.offset or offset < 0:
            return Recovery(False, position)
        if offset == self.offset:
            return Recovery(True, position)
        first = self._items[0].offset if self._items else self.offset + 1
        if offset + 1 < first:
            return Recovery(False, position)  # the gap is longer than the history
        return Recovery(True, position, tuple(p for p in self._items if p.offset > offset))

    def __len__(self) -> int:
        return len(self._items)


class Histories:
    """Every room's stream, made on the room's first publication.

    Args:
        rules: Which rooms keep history.
        epochs: Makes a new epoch (random by default).
        max_rooms: Streams kept at most; past it, the stream whose last publication is
            oldest is dropped (its next publication starts a new epoch).
    """

    def __init__(
        self,
        rules: RoomRules,
        *,
        epochs: Callable[[], str] = new_epoch,
        max_rooms: int = 100_000,
    ) -> None:
        self.rules = rules
        self._epochs = epochs
        self.max_rooms = max_rooms
        self._rooms: dict[str, RoomHistory] = {}

    def keeps(self, room: str) -> bool:
        """Whether ``room`` keeps history."""
        return self.rules.for_room(room).history_size > 0

    def stream(self, room: str, now: float = 0.0) -> RoomHistory | None:
        """The room's stream, made (at ``now``) if the room keeps history (``None`` if it
        does not)."""
        found = self._rooms.get(room)
        if found is not None:
            return found
        options = self.rules.for_room(room)
        if options.history_size <= 0:
            return None
        if len(self._rooms) >= self.max_rooms:
            # Dicts keep insertion order and ``append`` moves a room to the end: the
            # first one is the least recently published to.
            del self._rooms[next(iter(self._rooms))]
        found = self._rooms[room] = RoomHistory(options, self._epochs(), now)
        return found

    def append(self, room: str, data: Any, type: str | None, now: float) -> Publication | None:
        """Record a publication to ``room``; ``None`` if the room keeps no history."""
        stream = self.stream(room, now)
        if stream is None:
            return None
        publication = stream.append(data, type, now)
        # Keep the most recently published-to rooms last (see ``stream``).
        self._rooms[room] = self._rooms.pop(room)
        return publication

    def recover(self, room: str, epoch: str, offset: int, now: float) -> Recovery | None:
        """What ``room`` published after a position (``None`` if it keeps no history)."""
        stream = self.stream(room, now)
        if stream is None:
            return None
        return stream.since(epoch, offset, now)

    def position(self, room: str, now: float = 0.0) -> Position | None:
        """The room's current position (``None`` if it keeps no history)."""
        stream = self.stream(room, now)
        return None if stream is None else stream.position

    def read(self, room: str, since: int, now: float) -> list[Publication]:
        """The kept publications of ``room`` after offset ``since``."""
        stream = self._rooms.get(room)
        if stream is None:
            return []
        stream.prune(now)
        return [p for p in stream._items if p.offset > since]

    def prune(self, now: float) -> None:
        """Forget expired publications, and the streams nothing was published to for a
        TTL (a later publication starts a new epoch)."""
        for room in list(self._rooms):
            stream = self._rooms[room]
            stream.prune(now)
            if not stream and now - stream.last >= stream.options.history_ttl:
                del self._rooms[room]

    @property
    def rooms(self) -> Iterable[str]:
        return self._rooms.keys()

    def __len__(self) -> int:
        return len(self._rooms)
