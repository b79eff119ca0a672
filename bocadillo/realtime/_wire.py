"""Frames on the bus between processes: what one hub asks the others to deliver.

A frame is compact JSON in UTF-8, written and read by the JSON codec
(``bocadillo.jsoncodec``), whose rule holds here too: a payload JSON cannot carry
(``NaN``, ``Infinity``...) fails where it is published, and a frame holding one is
refused as undecodable. The payload of a broadcast travels as JSON, or, for
``bytes`` data (which only ``text``/``bytes`` routes can carry), as base64. Frames have
a version field so that a newer process can refuse an older frame clearly.

Pure code: no I/O, no asyncio; the backend treats frames as opaque ``bytes``.
"""

from __future__ import annotations

import base64
import binascii
import math
from dataclasses import dataclass
from typing import Any

from ..closecodes import CloseCode
from ..errors import WireError
from ..jsoncodec import dumps_bytes, loads
from ..types import JSONValue

__all__ = [
    "WIRE_VERSION",
    "BroadcastFrame",
    "DisconnectFrame",
    "Frame",
    "ReplyFrame",
    "RequestFrame",
    "WireError",
    "decode_frame",
    "encode_frame",
]

WIRE_VERSION = 1


@dataclass(frozen=True, slots=True)
class BroadcastFrame:
    """Deliver ``data`` to the matching local connections (``send`` is ``to=[id]``)."""

    data: JSONValue
    type: str | None = None
    room: str | None = None
    to: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class DisconnectFrame:
    """Close the connection ``conn_id`` wherever it lives, optionally after a notice."""

    conn_id: str
    code: int = CloseCode.NORMAL_CLOSURE
    reason: str = ""
    message: JSONValue = None
    type: str | None = None
    timeout: float = 5.0


@dataclass(frozen=True, slots=True)
class RequestFrame:
    """Ask the connection ``conn_id`` wherever it lives (``hub.request``); the process
    that has it answers with a ``ReplyFrame`` carrying ``request_id``, to the asking
    process's ``node`` (to every process when it is ``None``)."""

    conn_id: str
    request_id: str
    type: str
    data: JSONValue = None
    timeout: float = 10.0
    node: str | None = None


@dataclass(frozen=True, slots=True)
class ReplyFrame:
    """A client's answer to a ``RequestFrame``: ``data``, or ``error`` as
    ``(code, message)`` (``"timeout"`` when the client did not answer in time)."""

    request_id: str
    data: JSONValue = None
    error: tuple[str, str] | None = None


Frame = BroadcastFrame | DisconnectFrame | RequestFrame | ReplyFrame


def _pack_data(data: JSONValue | bytes) -> dict[str, Any]:
    if isinstance(data, (bytes, bytearray, memoryview)):
        return {"raw": base64.b64encode(bytes(data)).decode("ascii")}
    return {"data": data}


def _unpack_data(body: dict[str, Any]) -> Any:
    if "raw" in body:
        raw = body["raw"]
        if not isinstance(raw, str):
            raise WireError("'raw' must be a base64 string")
        try:
            return base64.b64decode(raw, validate=True)
        except (binascii.Error, ValueError):
            raise WireError("'raw' is not valid base64") from None
    return body.get("data")


def encode_frame(frame: Frame) -> bytes:
    """The bytes that carry ``frame`` on the bus.

    Raises:
        ValueError: if the payload holds what JSON cannot carry (``NaN``, ``Infinity``...).
        TypeError: if the payload is not JSON-serialisable.
    """
    body: dict[str, Any]
    if isinstance(frame, BroadcastFrame):
        body = {"v": WIRE_VERSION, "op": "broadcast", **_pack_data(frame.data)}
        if frame.type is not None:
            body["type"] = frame.type
        if frame.room is not None:
            body["room"] = frame.room
        if frame.to is not None:
            body["to"] = list(frame.to)
        if frame.exclude:
            body["exclude"] = list(frame.exclude)
    elif isinstance(frame, RequestFrame):
        body = {
            "v": WIRE_VERSION,
            "op": "request",
            "id": frame.conn_id,
            "rid": frame.request_id,
            "type": frame.type,
            "timeout": frame.timeout,
            **_pack_data(frame.data),
        }
        if frame.node is not None:
            body["node"] = frame.node
    elif isinstance(frame, ReplyFrame):
        body = {"v": WIRE_VERSION, "op": "reply", "rid": frame.request_id}
        if frame.error is not None:
            body["error"] = list(frame.error)
        else:
            body.update(_pack_data(frame.data))
    else:
        body = {
            "v": WIRE_VERSION,
            "op": "disconnect",
            "id": frame.conn_id,
            "code": frame.code,
            "reason": frame.reason,
            # No time limit (inf) travels as null: JSON has no Infinity.
            "timeout": frame.timeout if math.isfinite(frame.timeout) else None,
            **_pack_data(frame.message),
        }
        if frame.type is not None:
            body["type"] = frame.type
    return dumps_bytes(body)


def _optional_str(body: dict[str, Any], key: str) -> str | None:
    value = body.get(key)
    if value is not None and not isinstance(value, str):
        raise WireError(f"{key!r} must be a string")
    return value


def _id_list(body: dict[str, Any], key: str) -> tuple[str, ...] | None:
    value = body.get(key)
    if value is None:
        return None
    if not isinstance(value, list) or not all(isinstance(i, str) for i in value):
        raise WireError(f"{key!r} must be a list of connection ids")
    return tuple(value)


def decode_frame(raw: bytes) -> Frame:
    """The frame carried by ``raw``.

    Raises:
        WireError: if ``raw`` is not a frame this version understands.
    """
    try:
        body = loads(raw)
    except ValueError:
        raise WireError("a frame must be JSON in UTF-8") from None
    if not isinstance(body, dict):
        raise WireError("a frame must be a JSON object")
    if body.get("v") != WIRE_VERSION:
        raise WireError(f"unsupported frame version {body.get('v')!r}")
    op = body.get("op")
    if op == "broadcast":
        return BroadcastFrame(
            data=_unpack_data(body),
            type=_optional_str(body, "type"),
            room=_optional_str(body, "room"),
            to=_id_list(body, "to"),
            exclude=_id_list(body, "exclude") or (),
        )
    if op == "request":
        conn_id, rid, kind, timeout = (body.get(k) for k in ("id", "rid", "type", "timeout"))
        if not isinstance(conn_id, str) or not isinstance(rid, str):
            raise WireError("'id' and 'rid' must be strings")
        if not isinstance(kind, str):
            raise WireError("'type' must be a string")
        if not isinstance(timeout, (int, float)) or isinstance(timeout, bool) or timeout <= 0:
            raise WireError("'timeout' must be a positive number")
        return RequestFrame(
            conn_id, rid, kind, _unpack_data(body), float(timeout), _optional_str(body, "node")
        )
    if op == "reply":
        rid, error = body.get("rid"), body.get("error")
        if not isinstance(rid, str):
            raise WireError("'rid' must be a string")
        if error is None:
            return ReplyFrame(rid, _unpack_data(body))
        if not (
            isinstance(error, list) and len(error) == 2 and all(isinstance(e, str) for e in error)
        ):
            raise WireError("'error' must be [code, message]")
        return ReplyFrame(rid, None, (error[0], error[1]))
    if op == "disconnect":
        conn_id, code, timeout = body.get("id"), body.get("code"), body.get("timeout")
        if not isinstance(conn_id, str):
            raise WireError("'id' must be a connection id")
        if not isinstance(code, int) or isinstance(code, bool):
            raise WireError("'code' must be an integer")
        if timeout is None and "timeout" in body:
            timeout = math.inf  # null: no time limit
        elif not isinstance(timeout, (int, float)) or isinstance(timeout, bool):
            raise WireError("'timeout' must be a number")
        return DisconnectFrame(
            conn_id=conn_id,
            code=code,
            reason=_optional_str(body, "reason") or "",
            message=_unpack_data(body),
            type=_optional_str(body, "type"),
            timeout=float(timeout),
        )
    raise WireError(f"unknown frame operation {op!r}")
