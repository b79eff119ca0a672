"""Generated frames for the envelope endpoint, and what the documentation says of each.

``frames(seed, count)`` yields ``Frame``s: malformed and truncated JSON, mutations of valid
envelopes, deep nesting, huge numbers and strings, wrong field types, unknown types,
binary frames, fragmented frames, frames over the size limit and text frames that are
not UTF-8, among valid envelopes for each handler of ``soak_app``. The generator is a
seeded ``random.Random``: a failure is reproduced by its seed and index.

``oracle(opcode, payload)`` says what the server must answer, from the rules of
``docs/realtime.md`` alone (the table of error codes and the close codes), never by
calling Bocadillo: a ``response`` (with the data, for handlers whose answer is known),
an ``error`` envelope with its code and request id, or a ``close`` with its code.
"""

from __future__ import annotations

import json
import math
import random
import string
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

from .wsclient import BINARY, TEXT

__all__ = [
    "ANY",
    "MAX_MESSAGE_SIZE",
    "UVICORN_MAX_SIZE",
    "Expect",
    "Frame",
    "frames",
    "giant_frames",
    "oracle",
]

#: The app's ``max_message_size`` (the default).
MAX_MESSAGE_SIZE = 65_536
#: uvicorn's ``--ws-max-size`` (the default): beyond it, uvicorn closes before the app sees it.
UVICORN_MAX_SIZE = 16 * 1024 * 1024
#: envelope.py refuses longer types as ``invalid_envelope`` (docs/realtime.md does not say).
MAX_TYPE_LENGTH = 200
HANDLERS = ("echo", "join", "say", "typed", "boom")
ANY: Any = object()


@dataclass(frozen=True)
class Expect:
    """What the server answers to one frame."""

    outcome: Literal["response", "error", "close"]
    code: str | None = None
    id: str | int | None = None
    #: The response's data, or ``ANY`` when only its kind is known.
    data: Any = ANY
    close: int | None = None
    #: For ``response`` and ``error``: either is acceptable (the rules do not decide).
    either: bool = False


@dataclass(frozen=True)
class Frame:
    index: int
    kind: str
    opcode: int
    payload: bytes
    expect: Expect
    #: Sent in this many fragments (continuation frames).
    fragments: int = 1
    #: The length the header declares, when only the start of the payload is sent.
    declared: int | None = None


# The oracle ----------------------------------------------------------------------------------


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _finite(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(text)
    return value


def _is_request_id(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool))


def _room_name(value: Any, longest: int) -> bool:
    return (
        isinstance(value, str)
        and 0 < len(value) <= longest
        and all(c in string.ascii_letters + string.digits + "-" for c in value)
    )


def _handler_expect(kind: str, data: Any, rid: str | int | None) -> Expect:
    """What each handler of ``soak_app`` answers (its schema, then its body)."""
    if kind == "echo":
        return Expect("response", id=rid, data={"echo": data})
    if kind == "boom":
        return Expect("error", "handler_error", rid)
    if kind == "join":
        # typesystem.String(max_length=100): a string, not blank once trimmed.
        if _room_name(data, 100):
            return Expect("response", id=rid, data={"joined": data})
        if not isinstance(data, str) or not data.strip() or len(data.strip()) > 100:
            return Expect("error", "invalid_data", rid)
        return Expect("response", id=rid, either=True)
    if kind == "say":
        # The dataclass Say(room: str, text: str): exactly those keys, both strings.
        if (
            isinstance(data, dict)
            and set(data) == {"room", "text"}
            and isinstance(data["room"], str)
            and isinstance(data["text"], str)
        ):
            return Expect("response", id=rid)  # {"delivered": <room members>}
        return Expect("error", "invalid_data", rid)
    assert kind == "typed"
    # typesystem Schema: n an integer in [0, 10**6], s a string of at most 50.
    if not isinstance(data, dict) or "n" not in data or "s" not in data:
        return Expect("error", "invalid_data", rid)
    n, s = data["n"], data["s"]
    n_ok = isinstance(n, int) and not isinstance(n, bool) and 0 <= n <= 1_000_000
    if n_ok and _room_name(s, 50):
        return Expect("response", id=rid, data={"typed": {"n": n, "s": s}})
    n_bad = isinstance(n, bool) or (isinstance(n, int) and not 0 <= n <= 1_000_000)
    s_bad = isinstance(s, str) and len(s.strip()) > 50
    if n_bad or s_bad or n is None or s is None:
        return Expect("error", "invalid_data", rid)
    return Expect("response", id=rid, either=True)


def oracle(opcode: int, payload: bytes) -> Expect:
    """The answer ``docs/realtime.md`` promises for one frame (see the module docstring)."""
    if len(payload) > UVICORN_MAX_SIZE:
        return Expect("close", close=1009)  # uvicorn refuses it before the app sees it
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        if opcode == TEXT:
            return Expect("close", close=1007)  # the WebSocket protocol: invalid UTF-8
        text = None
    if len(payload) > MAX_MESSAGE_SIZE:
        return Expect("close", "message_too_large", close=1009)
    if text is None:
        return Expect("error", "invalid_json")
    try:
        # JSON as RFC 8259 defines it: no NaN or Infinity, no number beyond a double.
        obj = json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
    except (ValueError, RecursionError):
        return Expect("error", "invalid_json")
    if not isinstance(obj, dict):
        return Expect("error", "invalid_envelope")
    rid = obj.get("id")
    if rid is not None and not _is_request_id(rid):
        return Expect("error", "invalid_envelope")
    kind = obj.get("type")
    if not isinstance(kind, str) or not kind or len(kind) > MAX_TYPE_LENGTH:
        return Expect("error", "invalid_envelope", rid)
    if kind not in HANDLERS:
        return Expect("error", "unknown_type", rid)
    return _handler_expect(kind, obj.get("data"), rid)


# The generator -------------------------------------------------------------------------------

_ASCII = string.ascii_letters + string.digits + " _-.,:;!?/\\\"'{}[]"
_CONTROL = "".join(chr(c) for c in range(32)) + "\x7f"
_UNICODE = "éàüñßøåçΩЖ中文日本語한국어\u200b\u200d\u2028\u2029\u202e\ufeff\ufffd"
_ASTRAL = "😀🚀𝄞🀄𐍈"


def _string(rng: random.Random, length: int | None = None) -> str:
    if length is None:
        length = rng.choice([0, 1, 3, 8, 20, rng.randint(0, 200)])
    pools = [_ASCII, _ASCII, _CONTROL, _UNICODE, _ASTRAL]
    pool = rng.choice(pools)
    return "".join(
        rng.choice(pool) if rng.random() < 0.7 else rng.choice(_ASCII) for _ in range(length)
    )


def _room(rng: random.Random, longest: int = 20) -> str:
    alphabet = string.ascii_letters + string.digits + "-"
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(1, longest)))


def _number(rng: random.Random) -> int | float:
    choice = rng.randrange(8)
    if choice == 0:
        return rng.randint(-1000, 1000)
    if choice == 1:
        return rng.choice([2**31, 2**53 + 1, 2**63, 2**64 + 7, -(2**63) - 1])
    if choice == 2:
        return rng.randint(1, 9) * int(10 ** rng.randint(20, 300))
    if choice == 3:
        return rng.uniform(-1e6, 1e6)
    if choice == 4:
        return rng.choice([1e308, -1e308, 5e-324, 2.2250738585072014e-308, -0.0, 0.1 + 0.2])
    if choice == 5:
        return rng.random() * float(10 ** rng.randint(-300, 300))
    if choice == 6:
        return rng.choice([0, -1, 1])
    return rng.randint(-(2**200), 2**200)


def _value(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth >= 4 or roll < 0.55:
        kind = rng.randrange(5)
        if kind == 0:
            return None
        if kind == 1:
            return rng.random() < 0.5
        if kind == 2:
            return _number(rng)
        return _string(rng)
    if roll < 0.8:
        return [_value(rng, depth + 1) for _ in range(rng.randint(0, 5))]
    return {
        _string(rng, rng.randint(0, 10)): _value(rng, depth + 1) for _ in range(rng.randint(0, 5))
    }


def _request_id(rng: random.Random) -> Any:
    return rng.choice([None, "absent", rng.randint(-(2**40), 2**40), _string(rng, 12), 0, ""])


def _envelope(rng: random.Random, kind: Any, data: Any = "absent", rid: Any = "absent") -> str:
    items: list[tuple[str, Any]] = [("type", kind)]
    if data != "absent":
        items.append(("data", data))
    if rid == "absent":
        rid = _request_id(rng)
    if rid != "absent":
        items.append(("id", rid))
    if rng.random() < 0.15:
        items.append((_string(rng, 6) or "x", _value(rng)))  # extra fields are ignored
    rng.shuffle(items)
    obj: dict[str, Any] = {}
    for key, value in items:
        obj.setdefault(key, value)
    separators = rng.choice([(",", ":"), (", ", ": "), (",", ": ")])
    return json.dumps(obj, ensure_ascii=rng.random() < 0.5, separators=separators)


def _valid_handler_call(rng: random.Random) -> str:
    kind = rng.choice(["join", "say", "typed", "typed"])
    if kind == "join":
        return _envelope(rng, "join", _room(rng))
    if kind == "say":
        return _envelope(
            rng, "say", {"room": rng.choice(["lobby", _room(rng)]), "text": _string(rng)}
        )
    return _envelope(rng, "typed", {"n": rng.randint(0, 1_000_000), "s": _room(rng, 50)})


def _invalid_data(rng: random.Random) -> str:
    kind = rng.choice(["join", "say", "typed"])
    bad: list[Any] = [None, rng.randint(-5, 5), [], {}, True, ""]
    if kind == "join":
        return _envelope(rng, "join", rng.choice([*bad, "x" * rng.randint(101, 300), "   "]))
    if kind == "say":
        variants = [
            rng.choice(bad),
            {"room": rng.randint(0, 9), "text": "hi"},
            {"room": "lobby"},
            {"room": "lobby", "text": "hi", "extra": 1},
            {"room": "lobby", "text": None},
            [{"room": "lobby", "text": "hi"}],
        ]
        return _envelope(rng, "say", rng.choice(variants))
    variants = [
        rng.choice(bad),
        {"n": 5},
        {"s": "abc"},
        {"n": -1, "s": "abc"},
        {"n": 10**7, "s": "abc"},
        {"n": True, "s": "abc"},
        {"n": 3, "s": "y" * rng.randint(51, 80)},
        {"n": None, "s": "abc"},
    ]
    return _envelope(rng, "typed", rng.choice(variants))


def _wrong_fields(rng: random.Random) -> str:
    if rng.random() < 0.5:
        kind = rng.choice([None, 0, 1.5, True, [], {}, ["echo"], {"echo": 1}, "", "x" * 201])
        return _envelope(rng, kind, _value(rng))
    rid = rng.choice([1.5, True, False, [], {}, [1], {"id": 1}, -0.5])
    return _envelope(rng, "echo", _value(rng), rid)


def _not_object(rng: random.Random) -> str:
    return json.dumps(
        rng.choice([[], [{"type": "echo"}], "echo", 42, None, True, 1.5, _string(rng)])
    )


def _truncated(rng: random.Random) -> str:
    text = _envelope(rng, rng.choice(HANDLERS + ("nope",)), _value(rng))
    return text[: rng.randrange(len(text))]


def _mutated(rng: random.Random) -> str:
    chars = list(_envelope(rng, rng.choice(HANDLERS), _value(rng)))
    for _ in range(rng.randint(1, 4)):
        op = rng.randrange(3)
        at = rng.randrange(len(chars) + 1)
        if op == 0 and chars:
            del chars[min(at, len(chars) - 1)]
        elif op == 1:
            chars.insert(at, rng.choice('{}[]",:\\ \t\n0e-+.' + _CONTROL + _UNICODE))
        elif chars:
            chars[min(at, len(chars) - 1)] = rng.choice('{}[]",:\\x0' + _ASCII)
    if rng.random() < 0.2:
        chars += list(rng.choice([",", "}", " // comment", "\x00", "]", "garbage"]))
    return "".join(chars)


def _garbage(rng: random.Random) -> str:
    return rng.choice(
        [
            "",
            " ",
            "undefined",
            "{'type': 'echo'}",
            "{type: echo}",
            '{"type": "echo",}',
            '{"type": "echo" "data": 1}',
            '{"type": "echo", "data": 01}',
            '{"type": "echo", "data": .5}',
            '{"type": "echo", "data": 1.}',
            '{"type": "echo", "data": "\\x41"}',
            '{"type": "echo", "data": "tab\there"}',
            '{"type": "echo"}{"type": "echo"}',
            "[" * 10,
            _string(rng, rng.randint(1, 50)),
        ]
    )


def _nested(rng: random.Random) -> str:
    depth = rng.choice([1, 10, 50, 200, 400, 3_000, 10_000, 30_000])
    opener, closer = rng.choice([("[", "]"), ('{"a":', "}")])
    nested = opener * depth + "0" + closer * depth
    if rng.random() < 0.3:
        return nested  # at the top: not an object, or too deep
    rid = rng.randint(0, 1000)
    return f'{{"type": "echo", "id": {rid}, "data": {nested}}}'


def _huge_number(rng: random.Random) -> str:
    digits = rng.choice([20, 400, 4_000, 4_300, 4_301, 6_000, 20_000])
    number = str(rng.randint(1, 9)) + "".join(rng.choice(string.digits) for _ in range(digits - 1))
    number = rng.choice(["", "-"]) + number
    if rng.random() < 0.3:
        number = rng.choice(["1e308", "-1.7976931348623157e308", "1e-400", "4.9e-325", "1E+300"])
    return f'{{"type": "echo", "id": "n", "data": {number}}}'


def _huge_string(rng: random.Random) -> str:
    length = rng.randint(1_000, MAX_MESSAGE_SIZE - 200) // 4
    return _envelope(rng, "echo", _string(rng, length))


def _binary_junk(rng: random.Random) -> bytes:
    # 0xC0 never starts valid UTF-8; a non-zero second byte keeps json.loads from taking
    # the bytes for UTF-16 or UTF-32.
    return b"\xc0" + bytes([rng.randint(1, 255)]) + rng.randbytes(rng.randint(0, 100))


def _oversize(rng: random.Random) -> bytes:
    length = rng.randint(MAX_MESSAGE_SIZE + 1, 4 * MAX_MESSAGE_SIZE)
    text = _envelope(rng, "echo", "x" * length)
    return text.encode()


def _invalid_utf8(rng: random.Random) -> bytes:
    text = _envelope(rng, "echo", "abc").encode()
    at = rng.randrange(len(text))
    bad = rng.choice([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf4\x90\x80\x80", b"\xc0\xaf", b"\x80"])
    return text[:at] + bad + text[at:]


def _acceptable(text: str) -> bool:
    """Leave out of the main run what known bugs would fail (each has its own test):
    numbers JSON cannot hold (NaN, Infinity, beyond a double) and lone surrogates."""
    try:
        obj = json.loads(text)
    except (ValueError, RecursionError):
        return True  # invalid_json whatever it holds
    try:
        json.loads(text, parse_constant=_reject_constant, parse_float=_finite)
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except ValueError:  # UnicodeEncodeError is a ValueError
        return False
    except RecursionError:
        return True
    return True


#: Kinds of frames, with their weights.
KINDS: dict[str, int] = {
    "valid_echo": 20,
    "valid_handler": 8,
    "invalid_data": 8,
    "handler_error": 1,
    "unknown_type": 6,
    "wrong_field_types": 10,
    "not_an_object": 5,
    "truncated_json": 10,
    "mutated_json": 8,
    "malformed_json": 4,
    "deep_nesting": 3,
    "huge_number": 4,
    "huge_string": 2,
    "binary_envelope": 4,
    "binary_junk": 3,
    "fragmented": 3,
    "over_size": 1,
    "invalid_utf8_text": 1,
}


def _make(rng: random.Random, kind: str) -> tuple[int, bytes, int]:
    """One frame of ``kind``: (opcode, payload, fragments)."""
    if kind == "binary_junk":
        return BINARY, _binary_junk(rng), 1
    if kind == "over_size":
        return rng.choice([TEXT, BINARY]), _oversize(rng), 1
    if kind == "invalid_utf8_text":
        return TEXT, _invalid_utf8(rng), 1
    makers: dict[str, Callable[[], str]] = {
        "valid_echo": lambda: _envelope(rng, "echo", _value(rng)),
        "valid_handler": lambda: _valid_handler_call(rng),
        "invalid_data": lambda: _invalid_data(rng),
        "handler_error": lambda: _envelope(rng, "boom", _value(rng)),
        "unknown_type": lambda: _envelope(rng, _string(rng, rng.randint(1, 40)) or "?", None),
        "wrong_field_types": lambda: _wrong_fields(rng),
        "not_an_object": lambda: _not_object(rng),
        "truncated_json": lambda: _truncated(rng),
        "mutated_json": lambda: _mutated(rng),
        "malformed_json": lambda: _garbage(rng),
        "deep_nesting": lambda: _nested(rng),
        "huge_number": lambda: _huge_number(rng),
        "huge_string": lambda: _huge_string(rng),
        "binary_envelope": lambda: _envelope(rng, "echo", _value(rng)),
        "fragmented": lambda: _envelope(rng, "echo", _value(rng)),
    }
    maker = makers[kind]
    for _ in range(100):
        text = maker()
        if _acceptable(text):
            break
    else:  # pragma: no cover - the generator is seeded; this never happens
        raise AssertionError(f"no acceptable {kind} frame")
    opcode = BINARY if kind == "binary_envelope" else TEXT
    fragments = rng.randint(2, 4) if kind == "fragmented" and len(text) >= 4 else 1
    return opcode, text.encode(), fragments


def frames(seed: int, count: int) -> Iterator[Frame]:
    """``count`` frames from ``seed`` (see the module docstring)."""
    rng = random.Random(seed)
    kinds = list(KINDS)
    weights = [KINDS[k] for k in kinds]
    for index in range(count):
        kind = rng.choices(kinds, weights)[0]
        opcode, payload, fragments = _make(rng, kind)
        yield Frame(index, kind, opcode, payload, oracle(opcode, payload), fragments)


def giant_frames(start: int, count: int) -> list[Frame]:
    """Frames declaring more than uvicorn's limit; only their first bytes are sent (the
    server must refuse them from the header, without reading 16 MiB)."""
    declared = UVICORN_MAX_SIZE + 1
    payload = b'{"type": "echo", "data": "' + b"x" * 1000
    expect = Expect("close", close=1009)
    return [
        Frame(start + n, "over_uvicorn_limit", TEXT, payload, expect, declared=declared)
        for n in range(count)
    ]
