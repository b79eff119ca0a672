"""The one JSON codec: how Bocadillo writes and reads JSON. PURE: no I/O, no asyncio.

HTTP bodies (``res.json``, ``await req.json()``, error responses), the ``json``
WebSocket codec, hub deliveries, message envelopes, frames between processes and
server-sent event data all go through ``dumps``/``dumps_bytes`` and ``loads``, so they
follow one rule: **Bocadillo writes and reads only what JSON text (RFC 8259) in UTF-8
can carry and read back as the same value.**

Writing (``dumps``, ``dumps_bytes``) raises at the call, before anything is sent:

- ``ValueError`` for ``float("nan")``, ``float("inf")`` and ``float("-inf")``
  (JSON has no such numbers: ``NaN`` and ``Infinity`` are JavaScript, not JSON), for
  an integer longer than Python's integer-string limit (4,300 digits by default, see
  ``sys.set_int_max_str_digits``), for a string holding a lone surrogate such as
  ``"\\ud800"`` (UTF-8 cannot encode it), and for a circular or too deeply nested value;
- ``TypeError`` for a value that is not JSON (a ``set``, a ``datetime``...).

The output is compact (no spaces) and keeps non-ASCII characters as they are.

Reading (``loads``) takes ``str``, or ``bytes`` in UTF-8 (no other encoding, no
byte-order mark), and raises ``ValueError`` for what is not JSON, for ``NaN``,
``Infinity`` and ``-Infinity``, for a number too large for a float (``1e999``, which
Python would read as ``inf``), for an integer longer than the integer-string limit, for a
lone surrogate (``"\\ud800"``) and for nesting deeper than Python's recursion limit
allows (about 1,000 levels). Each caller turns that ``ValueError`` into its own answer:
400 for an HTTP body, close code 1007 for the ``json`` WebSocket codec, an
``invalid_json`` error envelope, a refused frame on the bus.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from typing import Any

from .types import JSONValue

__all__ = ["dumps", "dumps_bytes", "loads", "loads_lenient"]

_encoder = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), allow_nan=False)
_chunks: Callable[[Any, int], Iterable[str]]
try:
    from _json import encode_basestring, make_encoder
except ImportError:  # an interpreter without the C accelerator

    def _chunks(value: Any, _level: int) -> Iterable[str]:
        return _encoder.iterencode(value, _one_shot=True)

else:
    # ``JSONEncoder.encode`` builds this C encoder anew on every call; building it once
    # halves the cost of a small message (timeit, an 80-byte envelope: 1.45 us -> 0.67 us).
    # It has no ``markers`` dict, which an encoder shared by every call cannot have (an
    # error leaves entries behind): a circular value ends in RecursionError, which
    # ``dumps`` turns into ValueError.
    _chunks = make_encoder(
        None, _encoder.default, encode_basestring, None, ":", ",", False, False, False
    )

# A \uD800-\uDFFF escape: the only way a lone surrogate gets into UTF-8 JSON text.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def dumps(value: JSONValue) -> str:
    """Encode ``value`` as compact JSON text (non-ASCII characters kept as they are).

    Raises:
        ValueError: for ``NaN``, ``Infinity`` or ``-Infinity``, an integer beyond the
            integer-string limit, a lone surrogate, or a circular or too deep value.
        TypeError: if ``value`` holds something that is not JSON.
    """
    try:
        text = "".join(_chunks(value, 0))
    except RecursionError:
        raise ValueError("the value is circular or nested too deeply") from None
    if not text.isascii():  # O(1); only non-ASCII text can hold a surrogate
        _check_utf8(text)
    return text


def dumps_bytes(value: JSONValue) -> bytes:
    """Encode ``value`` as compact JSON in UTF-8 (what HTTP bodies and bus frames carry).

    Raises:
        ValueError: as ``dumps``.
        TypeError: as ``dumps``.
    """
    try:
        return "".join(_chunks(value, 0)).encode("utf-8")
    except RecursionError:
        raise ValueError("the value is circular or nested too deeply") from None
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate, which UTF-8 cannot carry") from None


def _check_utf8(text: str) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError("a string holds a lone surrogate, which UTF-8 cannot carry") from None


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


# One decoder for every call: ``json.loads`` with options builds a new one each time.
_decode = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_finite_float).decode
_decode_lenient = json.JSONDecoder().decode


def _has_lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_has_lone_surrogate(k) or _has_lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_has_lone_surrogate(item) for item in value)
    return False


def _text(raw: str | bytes) -> str:
    if isinstance(raw, str):
        if not raw.isascii():  # text handed over by Python code may hold a raw surrogate
            _check_utf8(raw)
        return raw
    return raw.decode("utf-8")  # UnicodeDecodeError is a ValueError


def loads(raw: str | bytes) -> JSONValue:
    """Decode JSON text, or JSON in UTF-8 bytes, refusing what JSON cannot carry back.

    Raises:
        ValueError: if ``raw`` is not UTF-8, not JSON, or holds ``NaN``/``Infinity``,
            a number beyond a float, an integer beyond the integer-string limit, a lone
            surrogate, or nesting deeper than the recursion limit allows.
    """
    text = _text(raw)
    try:
        value = _decode(text)
    except RecursionError:
        raise ValueError("nested too deeply") from None
    if "\\u" in text and _SURROGATE_ESCAPE.search(text) is not None and _has_lone_surrogate(value):
        raise ValueError("a string holds a lone surrogate")
    return value


def loads_lenient(raw: str | bytes) -> JSONValue:
    """Decode as Python's ``json`` does (``NaN``, ``inf`` and lone surrogates let through).

    Only to read a field back from a message that ``loads`` refused, such as the ``id``
    of an envelope so that its error can be correlated; never hand the result on.

    Raises:
        ValueError: if ``raw`` is not UTF-8 or not JSON at all, or is nested too deeply.
    """
    try:
        return _decode_lenient(raw if isinstance(raw, str) else raw.decode("utf-8"))
    except RecursionError:
        raise ValueError("nested too deeply") from None
