"""Room membership tables. PURE: no I/O, no asyncio.

``join``/``leave``/``leave_all`` report which rooms became non-empty or empty, so the
hub knows when to subscribe to or unsubscribe from a backend channel. Empty rooms are
forgotten.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from typing import Generic, TypeVar

from ..errors import ArgumentTypeError, InvalidArgument, RoomFull, TooManyRooms

__all__ = ["MAX_ROOM_NAME", "RoomFull", "Rooms", "TooManyRooms", "check_room_name"]

K = TypeVar("K", bound=Hashable)
#: The longest room name, in characters.
MAX_ROOM_NAME = 200


def check_room_name(room: object) -> str:
    """Return ``room`` if it is a valid room name.

    A room name is a non-empty ``str`` of at most ``MAX_ROOM_NAME`` printable characters
    (spaces allowed; no control characters or line breaks).

    Raises:
        ArgumentTypeError: (a ``TypeError`` and an ``InvalidArgument``) if ``room`` is not a
            ``str``: a handler on ``/ws`` joining what a client sent answers
            ``invalid_data``, as for the other bad names.
        InvalidArgument: if it is empty, too long, or holds a character that is not
            printable.
    """
    if not isinstance(room, str):
        raise ArgumentTypeError(f"a room name is a str, not {type(room).__name__}")
    if not room or len(room) > MAX_ROOM_NAME:
        raise InvalidArgument(f"a room name has 1 to {MAX_ROOM_NAME} characters, not {len(room)}")
    if not room.isprintable():
        raise InvalidArgument("a room name holds only printable characters (no control characters)")
    return room


class Rooms(Generic[K]):
    """Who is in which room, both ways."""

    def __init__(self) -> None:
        self._members: dict[str, set[K]] = {}
        self._rooms_of: dict[K, set[str]] = {}

    def join(
        self, member: K, room: str, *, limit: int | None = None, max_rooms: int | None = None
    ) -> bool:
        """Add ``member`` to ``room``.

        Returns:
            True if the room was empty before (it has just been created).

        Raises:
            RoomFull: if the room already has ``limit`` members (and ``member`` is not one).
            TooManyRooms: if ``member`` is already in ``max_rooms`` rooms.
        """
        members = self._members.get(room)
        if members is not None and member in members:
            return False
        if limit is not None and (len(members) if members else 0) >= limit:
            raise RoomFull(room, limit)
        if max_rooms is not None and len(self._rooms_of.get(member, ())) >= max_rooms:
            raise TooManyRooms(max_rooms)
        created = members is None
        if members is None:
            members = self._members[room] = set()
        members.add(member)
        self._rooms_of.setdefault(member, set()).add(room)
        return created

    def leave(self, member: K, room: str) -> bool:
        """Remove ``member`` from ``room`` (no-op if it is not there).

        Returns:
            True if the room is now empty (and forgotten).
        """
        members = self._members.get(room)
        if members is None or member not in members:
            return False
        members.discard(member)
        rooms = self._rooms_of.get(member)
        if rooms is not None:
            rooms.discard(room)
            if not rooms:
                del self._rooms_of[member]
        if not members:
            del self._members[room]
            return True
        return False

    def leave_all(self, member: K) -> list[str]:
        """Remove ``member`` from every room.

        Returns:
            The rooms that became empty.
        """
        emptied = []
        for room in list(self._rooms_of.get(member, ())):
            if self.leave(member, room):
                emptied.append(room)
        return emptied

    def members(self, room: str) -> frozenset[K]:
        """The members of ``room`` (empty if it does not exist)."""
        return frozenset(self._members.get(room, ()))

    def members_view(self, room: str) -> Iterable[K]:
        """The live member set of ``room`` (do not mutate; copy before awaiting)."""
        return self._members.get(room, ())

    def rooms_of(self, member: K) -> frozenset[str]:
        """The rooms ``member`` is in."""
        return frozenset(self._rooms_of.get(member, ()))

    @property
    def names(self) -> frozenset[str]:
        """Every non-empty room."""
        return frozenset(self._members)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, room: object) -> bool:
        return room in self._members
