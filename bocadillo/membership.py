"""What a ``WebSocket`` does through the app's hub: rooms, broadcasts, presence,
resume and requests to its client.

``HubMembership`` is a base of ``WebSocket``: every method here is a thin call to the
hub (``realtime/``), which owns the connection's session.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypedDict

from .errors import InvalidState, JoinRefused
from .realtime.history import Recovery
from .realtime.hub import Hub
from .realtime.session import Session
from .types import ConnectionId, JSONValue

__all__ = ["HubMembership"]

if TYPE_CHECKING:
    from typing_extensions import Unpack

    class Broadcast(TypedDict, total=False):
        """The options of ``Hub.broadcast`` that ``ws.broadcast`` passes on."""

        type: str | None
        room: str | None
        to: Iterable[str] | None
        exclude: Iterable[str] | None


class HubMembership:
    """The hub side of a ``WebSocket`` (see the module docstring)."""

    id: ConnectionId
    #: The app's hub, once the route hands the connection to it.
    hub: Hub | None
    # The hub's session for this connection (see realtime/session.py).
    _session: Session | None

    def _require_hub(self) -> Hub:
        if self.hub is None or self._session is None or not self._session.registered:
            raise InvalidState("this WebSocket is not registered with a hub (accept it first)")
        return self.hub

    def join(self, room: str) -> None:
        """Join ``room`` (created on first join); left automatically on disconnect.

        Raises:
            InvalidState: before the connection is accepted.
            TypeError, InvalidArgument: for a room name that is not a ``str`` of 1 to 200
                printable characters.
            RoomFull: if the room has reached ``max_room_members``.
            TooManyRooms: if the connection is in ``max_rooms_per_connection`` rooms.
        """
        self._require_hub().join(self.id, room)

    def leave(self, room: str) -> None:
        """Leave ``room`` (a no-op if not in it)."""
        self._require_hub().leave(self.id, room)

    @property
    def rooms(self) -> frozenset[str]:
        """The rooms this connection is in."""
        if self.hub is None:
            return frozenset()
        return self.hub.local_rooms_of(self.id)

    def broadcast(
        self, data: JSONValue, *, exclude_self: bool = False, **options: Unpack[Broadcast]
    ) -> int:
        """Broadcast through the app's hub; never waits.

        Args:
            data: The payload.
            exclude_self: Not to this connection.
            **options: ``type``, ``room``, ``to`` and ``exclude``, as ``Hub.broadcast``.

        Returns:
            How many connections took the message. A plain call: do not ``await`` it.
        """
        hub = self._require_hub()
        if exclude_self:
            options["exclude"] = [*(options.get("exclude") or ()), self.id]
        return hub.broadcast(data, **options)

    @property
    def user(self) -> Any:
        """Who this connection is, for presence (``hub.presence(room)``): any JSON value,
        such as ``{"name": "ann"}``; ``None`` until set."""
        return self._session.user if self._session is not None else None

    @user.setter
    def user(self, value: Any) -> None:
        # JSON only (it may cross processes), recorded where presence is read.
        self._require_hub().set_user(self.id, value)

    async def request(self, type: str, data: Any = None, *, timeout: float = 10.0) -> Any:
        """Ask the client (a message-type connection) and return its reply.

        Sends ``{"type": type, "data": data, "id": <new id>}``; the client answers with
        ``{"type": "response", "data": ..., "id": <that id>}``.

        Raises:
            RequestTimeout: no reply within ``timeout`` seconds.
            RequestFailed: the client answered with an error envelope.
            InvalidState: not a message-type connection, or called from this
                connection's own handler (run it in another task).
        """
        self._require_hub()
        assert self._session is not None
        return await self._session.request(type, data, timeout)

    async def resume(
        self, positions: Mapping[str, tuple[str, int] | None]
    ) -> dict[str, Recovery | None]:
        """Re-join rooms and get what this connection missed in each (for
        ``websocket_route`` views; the message-type endpoint has a ``resume`` message).

        Each room is checked with the app's ``can_join`` hook first; then it works as
        ``Hub.resume``: the missed publications are sent (with this route's codec)
        before anything newer.

        Args:
            positions: ``{room: (epoch, offset)}`` as the client last saw them, or
                ``{room: None}`` to join without a position.

        Returns:
            ``{room: Recovery}`` (``None`` for a room that keeps no history); tell the
            client ``recovery.recovered`` and ``recovery.position``.

        Raises:
            JoinRefused: if ``can_join`` refuses a room (nothing is joined).
            InvalidArgument: for an offset ahead of the room's stream, or a bad name.
            BackendUnavailable: if a shared backend (Redis) cannot be reached.
        """
        hub = self._require_hub()
        for room in positions:
            if not await hub.may_join(self, room):
                raise JoinRefused(room)
        return await hub.resume(self.id, positions)
