"""The JSON codec's one rule, as two tables: what is written, and what is read.

Every layer (HTTP bodies, the ``json`` WebSocket codec, envelopes, bus frames, SSE data)
uses ``bocadillo.jsoncodec``; the tests at each boundary only check how the layer turns
the codec's ``ValueError`` into its own answer.
"""

from __future__ import annotations

import math
from typing import Any

import pytest

from bocadillo.jsoncodec import dumps, dumps_bytes, loads, loads_lenient


def _nested(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


def _circular() -> list[Any]:
    value: list[Any] = []
    value.append(value)
    return value


NAN = float("nan")
INF = float("inf")

# (value, the JSON text, or the exception ``dumps`` and ``dumps_bytes`` raise)
ENCODE: list[tuple[str, Any, str | type[Exception]]] = [
    ("null", None, "null"),
    ("booleans", [True, False], "[true,false]"),
    ("integer", -42, "-42"),
    ("float", 1.5, "1.5"),
    ("negative-zero", -0.0, "-0.0"),
    ("largest-double", 1.7976931348623157e308, "1.7976931348623157e+308"),
    ("smallest-double", 5e-324, "5e-324"),
    ("compact", {"a": [1, None], "b": {}}, '{"a":[1,null],"b":{}}'),
    ("tuple-as-array", (1, "two"), '[1,"two"]'),
    ("int-key-as-string", {1: "x"}, '{"1":"x"}'),
    ("unicode-kept", {"é": "ünïcødé ✓"}, '{"é":"ünïcødé ✓"}'),
    ("astral-kept", "😀", '"😀"'),
    ("line-separators-kept", "a\u2028b\u2029c", '"a\u2028b\u2029c"'),
    ("control-escaped", "tab\tnul\x00\n", '"tab\\tnul\\u0000\\n"'),
    ("4300-digits", int("9" * 4300), "9" * 4300),
    ("nan", NAN, ValueError),
    ("inf", INF, ValueError),
    ("minus-inf", -INF, ValueError),
    ("nan-in-list", [1, NAN], ValueError),
    ("inf-in-dict", {"k": {"deep": INF}}, ValueError),
    ("4301-digits", 10**4300, ValueError),
    ("lone-surrogate", "\ud800", ValueError),
    ("lone-surrogate-key", {"\udfff": 1}, ValueError),
    ("lone-surrogate-in-unicode", ["é", "x\udc00y"], ValueError),
    ("nested-too-deeply", _nested(100_000), ValueError),
    ("circular", _circular(), ValueError),
    ("object", object(), TypeError),
    ("set", {1, 2}, TypeError),
    ("bytes", b"raw", TypeError),
]


@pytest.mark.parametrize(
    ("value", "expected"), [row[1:] for row in ENCODE], ids=[row[0] for row in ENCODE]
)
def test_dumps_and_dumps_bytes(value, expected):
    if isinstance(expected, str):
        assert dumps(value) == expected
        assert dumps_bytes(value) == expected.encode("utf-8")
    else:
        with pytest.raises(expected):
            dumps(value)
        with pytest.raises(expected):
            dumps_bytes(value)


def test_dumps_refuses_nan_with_a_clear_message():
    with pytest.raises(ValueError, match="not JSON compliant"):
        dumps({"score": NAN})
    with pytest.raises(ValueError, match="lone surrogate"):
        dumps("\ud800")


# (input, the decoded value, or ValueError)
DECODE: list[tuple[str, str | bytes, Any]] = [
    ("object", '{"a":[1,null,true,1.5]}', {"a": [1, None, True, 1.5]}),
    ("object-bytes", b'{"a":[1,null,true,1.5]}', {"a": [1, None, True, 1.5]}),
    ("whitespace", " \t\n[1] \r\n", [1]),
    ("unicode", '"é"', "é"),
    ("unicode-bytes", '"é ✓ 😀"'.encode(), "é ✓ 😀"),
    ("unicode-escape", '"\\u00e9"', "é"),
    ("surrogate-pair-escape", '"\\ud83d\\ude00"', "😀"),
    ("largest-double", "1.7976931348623157e308", 1.7976931348623157e308),
    ("underflow-to-zero", "1e-400", 0.0),
    ("negative-zero", "-0.0", -0.0),
    ("4300-digits", "9" * 4300, int("9" * 4300)),
    ("nan", "NaN", ValueError),
    ("infinity", "Infinity", ValueError),
    ("minus-infinity", "-Infinity", ValueError),
    ("nan-in-list", "[1, NaN]", ValueError),
    ("infinity-in-object", '{"a": Infinity}', ValueError),
    ("overflow", "1e999", ValueError),
    ("negative-overflow", "[-1e400]", ValueError),
    ("4301-digits", "9" * 4301, ValueError),
    ("nested-too-deeply", "[" * 100_000, ValueError),
    ("nested-too-deeply-closed", "[" * 5_000 + "]" * 5_000, ValueError),
    ("lone-surrogate-escape", '"\\ud800"', ValueError),
    ("lone-surrogate-key", '{"\\udfff": 1}', ValueError),
    ("lone-low-surrogate-bytes", b'"x\\uDC00y"', ValueError),
    ("lone-surrogate-character", '"\ud800"', ValueError),
    ("encoded-surrogate", b'"\xed\xa0\x80"', ValueError),
    ("not-utf8", b'{"a":"\xff"}', ValueError),
    ("truncated-utf8", b'"\xc3"', ValueError),
    ("utf16-with-bom", "[1]".encode("utf-16"), ValueError),
    ("utf16-without-bom", "[1]".encode("utf-16-le"), ValueError),
    ("utf32", "[1]".encode("utf-32"), ValueError),
    ("utf8-bom", b"\xef\xbb\xbf[1]", ValueError),
    ("bom-text", "\ufeff[1]", ValueError),
    ("empty", "", ValueError),
    ("truncated", '{"a":', ValueError),
    ("trailing-comma", "[1,]", ValueError),
    ("single-quotes", "{'a': 1}", ValueError),
    ("two-documents", "[1] [2]", ValueError),
]


@pytest.mark.parametrize(
    ("raw", "expected"), [row[1:] for row in DECODE], ids=[row[0] for row in DECODE]
)
def test_loads(raw, expected):
    if expected is ValueError:
        with pytest.raises(ValueError):
            loads(raw)
    else:
        value = loads(raw)
        assert value == expected
        assert type(value) is type(expected)
        if isinstance(expected, float):
            assert math.copysign(1, value) == math.copysign(1, expected)


@pytest.mark.parametrize(
    "value",
    [row[1] for row in ENCODE if isinstance(row[2], str) and row[0] not in ("tuple-as-array",)],
    ids=[row[0] for row in ENCODE if isinstance(row[2], str) and row[0] != "tuple-as-array"],
)
def test_what_dumps_writes_loads_reads(value):
    if isinstance(value, dict) and 1 in value:
        value = {str(k): v for k, v in value.items()}  # JSON keys are strings
    assert loads(dumps(value)) == value
    assert loads(dumps_bytes(value)) == value


def test_loads_lenient_reads_what_python_reads_to_salvage_fields():
    assert loads_lenient('{"id": 7, "data": NaN}')["id"] == 7
    assert loads_lenient(b'{"id": "r", "data": "\\ud800"}')["id"] == "r"
    for raw in (b"\xff", "[" * 100_000, "{"):
        with pytest.raises(ValueError):
            loads_lenient(raw)
