"""The ``resume`` message of the message-type endpoint, and its reply.

A client that comes back sends, with the last position it saw in each room::

    {"type": "resume", "id": 1,
     "data": {"rooms": {"lobby": {"epoch": "Xy3k_a9Q", "offset": 41}, "news": null}}}

The server checks the whole request first (shape, room names, the app's ``can_join``
hook, offsets that cannot exist): any problem answers one error envelope and nothing is
joined or replayed. Otherwise it re-joins every room, replays what the client missed in
each (publications carry ``room``, ``offset`` and ``epoch``), then answers::

    {"type": "response", "id": 1,
     "data": {"rooms": {"lobby": {"recovered": true, "epoch": "Xy3k_a9Q", "offset": 57},
                        "news": {"recovered": false}}}}

``recovered: false`` with a position means the gap could not be filled (another epoch,
or longer than the history): the client should reload that room and keep the position.
A room without a position (``null``) is simply joined.
"""

from __future__ import annotations

from typing import Any

from ..errors import InvalidArgument
from .envelope import Envelope, encode_error, encode_response, room_error
from .rooms import check_room_name

__all__ = ["MAX_EPOCH_LENGTH", "MAX_RESUME_ROOMS", "resume_request"]

#: Rooms one ``resume`` may name when the app sets no ``max_rooms_per_connection``.
MAX_RESUME_ROOMS = 100
#: The longest epoch a client may send back.
MAX_EPOCH_LENGTH = 64
_SHAPE = 'resume data is {"rooms": {room: {"epoch": str, "offset": int} or null}}'


def _position(room: str, value: Any) -> tuple[str, int] | None:
    if value is None:
        return None
    if isinstance(value, dict):
        epoch, offset = value.get("epoch"), value.get("offset")
        if (
            isinstance(epoch, str)
            and 0 < len(epoch) <= MAX_EPOCH_LENGTH
            and isinstance(offset, int)
            and not isinstance(offset, bool)
            and offset >= 0
        ):
            return epoch, offset
    raise InvalidArgument(f'room {room!r}: a position is {{"epoch": str, "offset": int >= 0}}')


async def resume_request(ws: Any, envelope: Envelope) -> str:
    """Serve one ``resume`` message from ``ws`` (see the module docstring).

    Returns:
        The reply: a ``response`` envelope, or an ``error`` envelope (``invalid_data``,
        ``forbidden``, ``room_full``, ``too_many_rooms``).
    """
    hub = ws.hub
    data = envelope.data
    rooms = data.get("rooms") if isinstance(data, dict) else None
    if not isinstance(rooms, dict):
        return encode_error("invalid_data", _SHAPE, envelope.id)
    limit = hub.limits.max_rooms_per_connection or MAX_RESUME_ROOMS
    if len(rooms) > limit:
        return encode_error("invalid_data", f"resume names at most {limit} rooms", envelope.id)
    try:
        positions = {check_room_name(room): _position(room, value) for room, value in rooms.items()}
    except (TypeError, InvalidArgument) as exc:
        return encode_error("invalid_data", str(exc), envelope.id)
    for room in positions:
        if not await hub.may_join(ws, room):
            return encode_error("forbidden", f"you may not join room {room!r}", envelope.id)
    try:
        recoveries = await hub.resume(ws.id, positions)
    except Exception as exc:
        reply = room_error(exc, envelope.id)
        if reply is None:
            raise
        return reply
    answer: dict[str, Any] = {}
    for room, recovery in recoveries.items():
        if recovery is None:
            answer[room] = {"recovered": False}
        else:
            answer[room] = {"recovered": recovery.recovered, **recovery.position.as_dict()}
    return encode_response({"rooms": answer}, envelope.id)
