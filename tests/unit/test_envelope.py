"""Envelopes of the message-type protocol, table-style (PURE: no event loop)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bocadillo.errors import EnvelopeError
from bocadillo.realtime.envelope import (
    ERROR_CODES,
    Envelope,
    encode_envelope,
    encode_error,
    encode_response,
    parse_envelope,
)


@pytest.mark.parametrize(
    ("frame", "kind", "data", "request_id"),
    [
        ('{"type":"ping"}', "ping", None, None),
        ('{"type":"chat","data":{"text":"hi"}}', "chat", {"text": "hi"}, None),
        ('{"type":"chat","data":[1,2,3],"id":"req-1"}', "chat", [1, 2, 3], "req-1"),
        ('{"type":"chat","data":"x","id":7}', "chat", "x", 7),
        ('{"type":"chat","id":0}', "chat", None, 0),
        ('{"type":"chat","id":-3}', "chat", None, -3),
        ('{"type":"chat","id":""}', "chat", None, ""),
        ('{"type":"chat","data":null,"id":null}', "chat", None, None),
        ('{"type":"chat","data":false}', "chat", False, None),
        ('{"type":"chat","data":0}', "chat", 0, None),
        ('{"type":"été","data":"ça"}', "été", "ça", None),
        (b'{"type":"bytes","data":"\xc3\xa9t\xc3\xa9","id":"b"}', "bytes", "été", "b"),
        (' \n{"type":"padded"}\t', "padded", None, None),
        ('{"type":"' + "t" * 200 + '"}', "t" * 200, None, None),
    ],
)
def test_parse_envelope_accepts_valid_envelopes(frame, kind, data, request_id):
    envelope = parse_envelope(frame)
    assert isinstance(envelope, Envelope)
    assert envelope.type == kind
    assert envelope.data == data
    assert type(envelope.data) is type(data)
    assert envelope.id == request_id
    assert type(envelope.id) is type(request_id)


def test_parse_envelope_keeps_the_whole_message_extra_fields_included():
    envelope = parse_envelope('{"type":"chat","data":1,"id":"a","room":"lobby","v":2}')
    assert envelope.message == {"type": "chat", "data": 1, "id": "a", "room": "lobby", "v": 2}


def test_parse_envelope_is_frozen():
    envelope = parse_envelope('{"type":"chat"}')
    with pytest.raises(AttributeError):
        envelope.type = "other"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("frame", "code", "request_id"),
    [
        # Not JSON at all.
        ("not json", "invalid_json", None),
        ("", "invalid_json", None),
        ("{", "invalid_json", None),
        ('{"type":"chat",}', "invalid_json", None),
        ("{'type': 'chat'}", "invalid_json", None),
        (b"", "invalid_json", None),
        # Invalid UTF-8 bytes.
        (b'{"type":"\xff\xfe"}', "invalid_json", None),
        (b'{"type":"chat","data":"\xc3("}', "invalid_json", None),
        # Very deep nesting: RecursionError must not escape.
        ("[" * 100_000, "invalid_json", None),
        ('{"type":"chat","data":' + "[" * 100_000 + "]" * 100_000 + "}", "invalid_json", None),
        # An integer with too many digits: ValueError from int(), not a crash.
        ('{"type":"chat","data":' + "7" * 5000 + "}", "invalid_json", None),
        ('{"type":"chat","id":' + "1" * 5000 + "}", "invalid_json", None),
        # Valid JSON, but not an object.
        ("[]", "invalid_envelope", None),
        ('[{"type":"chat"}]', "invalid_envelope", None),
        ('"chat"', "invalid_envelope", None),
        ("42", "invalid_envelope", None),
        ("null", "invalid_envelope", None),
        ("true", "invalid_envelope", None),
        # Missing, empty, non-string or too long type.
        ("{}", "invalid_envelope", None),
        ('{"data":1}', "invalid_envelope", None),
        ('{"data":1,"id":"r1"}', "invalid_envelope", "r1"),
        ('{"type":"","id":5}', "invalid_envelope", 5),
        ('{"type":null,"id":"n"}', "invalid_envelope", "n"),
        ('{"type":5,"id":"r2"}', "invalid_envelope", "r2"),
        ('{"type":["chat"]}', "invalid_envelope", None),
        ('{"type":{"name":"chat"}}', "invalid_envelope", None),
        ('{"type":true}', "invalid_envelope", None),
        ('{"type":"' + "t" * 201 + '","id":"long"}', "invalid_envelope", "long"),
        # Bad id types: the id cannot be echoed back.
        ('{"type":"chat","id":1.5}', "invalid_envelope", None),
        ('{"type":"chat","id":1.0}', "invalid_envelope", None),
        ('{"type":"chat","id":true}', "invalid_envelope", None),
        ('{"type":"chat","id":false}', "invalid_envelope", None),
        ('{"type":"chat","id":[1]}', "invalid_envelope", None),
        ('{"type":"chat","id":{"n":1}}', "invalid_envelope", None),
        ('{"type":5,"id":2.5}', "invalid_envelope", None),
    ],
)
def test_parse_envelope_rejects_bad_frames_with_a_stable_code(frame, code, request_id):
    with pytest.raises(EnvelopeError) as excinfo:
        parse_envelope(frame)
    error = excinfo.value
    assert error.code == code
    assert error.code in ERROR_CODES
    assert error.request_id == request_id
    assert type(error.request_id) is type(request_id)
    assert isinstance(error, ValueError)
    assert error.message
    assert str(error) == error.message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (encode_envelope("tick", 1), {"type": "tick", "data": 1}),
        (encode_envelope("tick", None), {"type": "tick", "data": None}),
        (encode_envelope("tick", [1, "a"], "r"), {"type": "tick", "data": [1, "a"], "id": "r"}),
        (encode_envelope("tick", {}, 0), {"type": "tick", "data": {}, "id": 0}),
        (
            encode_response({"ok": True}, "req-1"),
            {"type": "response", "data": {"ok": True}, "id": "req-1"},
        ),
        (encode_response([1, 2], 9), {"type": "response", "data": [1, 2], "id": 9}),
        (encode_response("pong", None), {"type": "response", "data": "pong"}),
        (encode_response(None, 0), {"type": "response", "data": None, "id": 0}),
        (
            encode_error("unknown_type", "no handler", "req-2"),
            {
                "type": "error",
                "data": {"code": "unknown_type", "message": "no handler"},
                "id": "req-2",
            },
        ),
        (
            encode_error("invalid_json", "bad"),
            {"type": "error", "data": {"code": "invalid_json", "message": "bad"}},
        ),
        (
            encode_error("rate_limited", "slow down", 3),
            {"type": "error", "data": {"code": "rate_limited", "message": "slow down"}, "id": 3},
        ),
    ],
)
def test_encoders_produce_envelope_shapes(text, expected):
    decoded = json.loads(text)
    assert decoded == expected
    assert list(decoded) == list(expected)  # "type", "data", then "id"


@pytest.mark.parametrize(
    ("text", "exact"),
    [
        (encode_envelope("chat", {"a": [1, 2]}), '{"type":"chat","data":{"a":[1,2]}}'),
        (encode_envelope("chat", "été"), '{"type":"chat","data":"été"}'),
        (encode_response(True, "x"), '{"type":"response","data":true,"id":"x"}'),
        (
            encode_error("room_full", "full", 1),
            '{"type":"error","data":{"code":"room_full","message":"full"},"id":1}',
        ),
    ],
)
def test_encoders_write_compact_unescaped_json(text, exact):
    assert text == exact


def test_encode_envelope_refuses_data_that_is_not_json():
    with pytest.raises(TypeError):
        encode_envelope("chat", object())


@pytest.mark.parametrize(
    ("kind", "data", "request_id"),
    [
        ("chat", {"text": "hi", "n": [1, 2.5, None]}, "abc"),
        ("chat", "été", 12),
        ("x", None, None),
    ],
)
def test_encoded_envelopes_parse_back(kind, data, request_id):
    envelope = parse_envelope(encode_envelope(kind, data, request_id))
    assert (envelope.type, envelope.data, envelope.id) == (kind, data, request_id)


def test_error_codes_cover_every_code_the_layer_sends():
    expected: set[Any] = {
        "invalid_json",
        "invalid_envelope",
        "unknown_type",
        "invalid_data",
        "handler_error",
        "rate_limited",
        "message_too_large",
        "room_full",
        "too_many_rooms",
        "forbidden",
        "unavailable",
    }
    assert set(ERROR_CODES) == expected
    assert all(isinstance(text, str) and text for text in ERROR_CODES.values())


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "t", "id": 7, "data": NaN}',
        '{"type": "t", "id": 7, "data": Infinity}',
        '{"type": "t", "id": 7, "data": -Infinity}',
        '{"type": "t", "id": 7, "data": 1e999}',
        '{"type": "t", "id": 7, "data": [-1e400]}',
        '{"type": "t", "id": 7, "data": "\\ud800"}',
        '{"type": "t", "id": 7, "data": {"\\udfff": 1}}',
        b'{"type": "t", "id": 7, "data": "x\\uDC00y"}',
    ],
)
def test_what_json_text_cannot_carry_back_is_invalid_json_with_its_id(frame):
    with pytest.raises(EnvelopeError) as excinfo:
        parse_envelope(frame)
    assert (excinfo.value.code, excinfo.value.request_id) == ("invalid_json", 7)


@pytest.mark.parametrize(
    "frame", ['{"type": "t", "data": "\\ud83d\\ude00"}', '{"type": "t", "data": 1e308}']
)
def test_surrogate_pairs_and_large_finite_numbers_are_fine(frame):
    envelope = parse_envelope(frame)
    assert envelope.data in ("😀", 1e308)


def test_encoding_nan_fails_instead_of_writing_non_json():
    with pytest.raises(ValueError):
        encode_envelope("t", float("nan"))


@pytest.mark.parametrize("data", [float("inf"), [float("-inf")], {"text": "\ud800"}])
def test_encoding_what_json_cannot_carry_fails(data):
    with pytest.raises(ValueError):
        encode_envelope("t", data)
    with pytest.raises(ValueError):
        encode_response(data, 1)


@pytest.mark.parametrize(
    "frame",
    [
        '{"type": "t", "id": 7}'.encode("utf-16"),
        '{"type": "t", "id": 7}'.encode("utf-16-le"),
        b'\xef\xbb\xbf{"type": "t", "id": 7}',
    ],
)
def test_frames_not_in_utf8_are_invalid_json(frame):
    with pytest.raises(EnvelopeError) as excinfo:
        parse_envelope(frame)
    assert excinfo.value.code == "invalid_json"
