"""Frames on the bus between processes: round trips and refusals, table-style."""

from __future__ import annotations

import json

import pytest

from bocadillo.realtime._wire import (
    WIRE_VERSION,
    BroadcastFrame,
    DisconnectFrame,
    ReplyFrame,
    RequestFrame,
    WireError,
    decode_frame,
    encode_frame,
)


@pytest.mark.parametrize(
    "frame",
    [
        BroadcastFrame("hello"),
        BroadcastFrame({"n": 1, "nested": [1, {"é": None}]}, type="tick", room="lobby"),
        BroadcastFrame(None, to=("a", "b"), exclude=("c",)),
        BroadcastFrame(b"\x00\xffraw", room="bin"),
        BroadcastFrame([], to=()),
        DisconnectFrame("abc"),
        DisconnectFrame("abc", 4000, "bye", {"last": True}, "notice", 1.5),
        DisconnectFrame("abc", 1001, message=b"bytes notice"),
        RequestFrame("abc", "n1.1", "confirm", {"q": "ok?"}, 2.5),
        RequestFrame("abc", "n1.2", "ping"),
        RequestFrame("abc", "n1.3", "ping", None, 1.0, "0123abcd"),
        ReplyFrame("n1.1", {"yes": True}),
        ReplyFrame("n1.1", None, ("nope", "refused")),
    ],
)
def test_frames_round_trip(frame):
    assert decode_frame(encode_frame(frame)) == frame


def test_a_frame_is_compact_utf8_json_with_a_version():
    raw = encode_frame(BroadcastFrame("é", type="t"))
    assert raw == '{"v":1,"op":"broadcast","data":"é","type":"t"}'.encode()
    assert json.loads(raw)["v"] == WIRE_VERSION


def test_unserialisable_data_fails_to_encode():
    with pytest.raises(TypeError):
        encode_frame(BroadcastFrame({"when": object()}))


@pytest.mark.parametrize(
    "frame",
    [
        BroadcastFrame(float("nan")),
        BroadcastFrame({"score": float("inf")}, room="lobby"),
        BroadcastFrame(["\ud800"]),
        DisconnectFrame("abc", message=[float("-inf")]),
    ],
)
def test_data_json_cannot_carry_fails_to_encode(frame):
    with pytest.raises(ValueError):
        encode_frame(frame)


def test_a_disconnect_without_time_limit_travels_as_null():
    raw = encode_frame(DisconnectFrame("abc", timeout=float("inf")))
    assert json.loads(raw)["timeout"] is None
    assert decode_frame(raw) == DisconnectFrame("abc", timeout=float("inf"))


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b"\xff\xfe", "JSON in UTF-8"),
        (b"{not json", "JSON in UTF-8"),
        (b'{"v": 1, "op": "broadcast", "data": NaN}', "JSON in UTF-8"),
        (b'{"v": 1, "op": "broadcast", "data": [1e999]}', "JSON in UTF-8"),
        (b'{"v": 1, "op": "broadcast", "data": "\\ud800"}', "JSON in UTF-8"),
        (b'{"v": 1, "op": "broadcast", "data": ' + b"[" * 100_000, "JSON in UTF-8"),
        ('{"v": 1, "op": "broadcast"}'.encode("utf-16"), "JSON in UTF-8"),
        (b"[1, 2]", "JSON object"),
        (b'{"op": "broadcast"}', "version None"),
        (b'{"v": 99, "op": "broadcast"}', "version 99"),
        (b'{"v": 1, "op": "explode"}', "unknown frame operation 'explode'"),
        (b'{"v": 1, "op": "broadcast", "type": 3}', "'type' must be a string"),
        (b'{"v": 1, "op": "broadcast", "room": ["x"]}', "'room' must be a string"),
        (b'{"v": 1, "op": "broadcast", "to": "abc"}', "'to' must be a list"),
        (b'{"v": 1, "op": "broadcast", "exclude": [1]}', "'exclude' must be a list"),
        (b'{"v": 1, "op": "broadcast", "raw": 5}', "'raw' must be a base64 string"),
        (b'{"v": 1, "op": "broadcast", "raw": "***"}', "not valid base64"),
        (b'{"v": 1, "op": "disconnect", "code": 1000, "timeout": 1}', "'id' must be"),
        (b'{"v": 1, "op": "disconnect", "id": "a", "code": "x", "timeout": 1}', "'code'"),
        (b'{"v": 1, "op": "disconnect", "id": "a", "code": true, "timeout": 1}', "'code'"),
        (b'{"v": 1, "op": "disconnect", "id": "a", "code": 1000, "timeout": "1"}', "'timeout'"),
        (b'{"v": 1, "op": "request", "id": "a", "type": "t", "timeout": 1}', "'rid'"),
        (b'{"v": 1, "op": "request", "id": "a", "rid": "r", "type": 5, "timeout": 1}', "'type'"),
        (
            b'{"v": 1, "op": "request", "id": "a", "rid": "r", "type": "t", "timeout": 0}',
            "'timeout'",
        ),
        (b'{"v": 1, "op": "reply"}', "'rid'"),
        (b'{"v": 1, "op": "reply", "rid": "r", "error": "x"}', "'error'"),
        (b'{"v": 1, "op": "reply", "rid": "r", "error": ["a", 1]}', "'error'"),
    ],
)
def test_undecodable_frames_raise_wire_error(raw, message):
    with pytest.raises(WireError, match=message):
        decode_frame(raw)
