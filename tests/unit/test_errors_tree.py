"""The error tree is complete and close codes are never bare numbers.

Every exception class Bocadillo defines lives in ``bocadillo/errors.py``, is exported and
inherits ``BocadilloError``; builtin exceptions are raised only where a list below says
why; close codes come from ``CloseCode``. Checked by importing every module and, for the
source rules, with ``ast``.
"""

from __future__ import annotations

import ast
import builtins
import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest

import bocadillo
from bocadillo import errors
from bocadillo.closecodes import HANDSHAKE_REJECTED_STATUS, CloseCode

PACKAGE_DIR = Path(bocadillo.__file__).parent

#: Exceptions that never leave the module defining them: control flow, not errors.
PRIVATE_SIGNALS = {
    # codecs.py: a frame the codec cannot decode; WebSocket turns it into a close.
    "_Undecodable",
}

#: Starlette's classes, re-exported from errors.py so one ``except`` catches both.
STARLETTE_REEXPORTS = {"ClientDisconnect", "WebSocketDisconnect"}

#: Builtin exceptions raised on purpose, by file: none of them reaches a user as the
#: error of a public API (each is caught and turned into one of ours, or belongs to a
#: Python protocol). Each entry must still be needed: the list only shrinks.
BUILTIN_RAISES: dict[tuple[str, str], str] = {
    # ``__getattr__`` must raise AttributeError: hasattr()/getattr(default) rely on it.
    ("config.py", "AttributeError"): "attribute protocol",
    # Each converter reports a bad value with ValueError; resolve() gathers them all
    # into one ParameterError.
    ("converters.py", "ValueError"): "collected into ParameterError",
    # A slot released twice is a bug in the caller (the hub), not a user error.
    ("realtime/admission.py", "ValueError"): "internal invariant",
    # A duplicate id: the hub turns it into InvalidState.
    ("realtime/registry.py", "KeyError"): "wrapped by the hub",
    # The JSON rule (jsoncodec.py): what JSON cannot carry is a ValueError, as the
    # stdlib's json raises; each boundary turns it into its answer (400, 1007, an
    # invalid_json envelope, a WireError).
    ("jsoncodec.py", "ValueError"): "a value or a text JSON cannot carry",
    # A dead transport is an OSError, as the ASGI server's own sends raise; WebSocket
    # turns it into WebSocketDisconnect(1006).
    ("realtime/outbox.py", "ConnectionResetError"): "a send to a closed outbox",
    # A value of the wrong type for what it is given to, as Python's own calls do.
    ("routing/http.py", "TypeError"): "a view returned a value that is not a response",
    ("codecs.py", "TypeError"): "send() of a value the send type cannot carry",
    ("websockets.py", "TypeError"): "`for` over a WebSocket (iterate with `async for`)",
    # One keyword given twice, under requests' name and httpx2's, as Python's own
    # "got multiple values for argument" is.
    ("testing/testclient.py", "TypeError"): "allow_redirects= with follow_redirects=",
    # Optional backend capabilities: the hub asks only backends that declare them.
    ("realtime/backends/base.py", "NotImplementedError"): "history or users not kept",
    ("realtime/directory.py", "TypeError"): "leave() of a room name that is not a str",
}

#: Modules that still hold bare close codes (issue 14: the lead's files). Empty it as they
#: are converted; the test below fails for an entry that is no longer needed.
BARE_CLOSE_CODE_EXEMPT: set[str] = set()

CLOSE_CODE_RANGE = range(1000, 1016)
CLOSE_FUNCTIONS = {"close", "ensure_closed", "_force_close", "WebSocketDisconnect"}


def _all_modules() -> list[str]:
    names = ["bocadillo"]
    names += [info.name for info in pkgutil.walk_packages(bocadillo.__path__, prefix="bocadillo.")]
    return names


def _defined_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class defined (not imported) by a bocadillo module, by qualified name."""
    found: dict[str, type[BaseException]] = {}
    for module_name in _all_modules():
        module = importlib.import_module(module_name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if (
                issubclass(obj, BaseException)
                and obj.__module__ == module_name
                and obj.__module__.startswith("bocadillo")
            ):
                found[f"{obj.__module__}.{obj.__qualname__}"] = obj
    return found


def _sources() -> list[Path]:
    return sorted(PACKAGE_DIR.rglob("*.py"))


def _relative(path: Path) -> str:
    return path.relative_to(PACKAGE_DIR).as_posix()


# The tree -----------------------------------------------------------------------------------


def test_every_exception_class_is_defined_in_errors_and_exported():
    defined = _defined_exceptions()
    assert defined, "the walk found no exception class at all"
    private = {cls.__name__ for cls in defined.values() if cls.__name__.startswith("_")}
    assert private == PRIVATE_SIGNALS
    for qualname, cls in defined.items():
        if cls.__name__ in PRIVATE_SIGNALS:
            continue
        assert cls.__module__ == "bocadillo.errors", qualname
        assert cls.__name__ in errors.__all__, qualname
        assert cls.__name__ in bocadillo.__all__, qualname
        assert getattr(bocadillo, cls.__name__) is cls, qualname


def test_every_exported_exception_inherits_bocadillo_error():
    for name in errors.__all__:
        cls = getattr(errors, name)
        assert issubclass(cls, BaseException), name
        if name in STARLETTE_REEXPORTS:
            assert cls.__module__.startswith("starlette"), name
            assert not issubclass(cls, errors.BocadilloError), name
        else:
            assert issubclass(cls, errors.BocadilloError), name
        assert name in bocadillo.__all__, name
        assert getattr(bocadillo, name) is cls, name


def test_the_docstring_draws_every_class():
    doc = errors.__doc__
    assert doc is not None
    for name in errors.__all__:
        assert name in doc, name


def test_moved_errors_stay_importable_from_their_old_modules():
    from bocadillo.converters import ParameterError
    from bocadillo.realtime._wire import WireError
    from bocadillo.realtime.hub import RoomFull as HubRoomFull
    from bocadillo.realtime.rooms import RoomFull
    from bocadillo.redirection import Redirect
    from bocadillo.request import ClientDisconnect

    assert ParameterError is errors.ParameterError
    assert WireError is errors.WireError
    assert RoomFull is HubRoomFull is errors.RoomFull
    assert Redirect is errors.Redirect
    assert ClientDisconnect is errors.ClientDisconnect


def test_moved_errors_keep_their_categories():
    assert issubclass(errors.ParameterError, ValueError)
    assert issubclass(errors.InvalidArgument, ValueError)
    assert issubclass(errors.WireError, errors.HubError)
    assert issubclass(errors.WireError, ValueError)
    assert issubclass(errors.RoomFull, errors.HubError)
    full = errors.RoomFull("lobby", 3)
    assert (full.room, full.limit, str(full)) == ("lobby", 3, "room 'lobby' is full (3 members)")
    bad = errors.ParameterError({"n": "expected an integer", "q": "missing"})
    assert bad.errors == {"n": "expected an integer", "q": "missing"}
    assert str(bad) == "n: expected an integer; q: missing"


def test_redirect_with_both_or_neither_target_is_an_invalid_argument():
    with pytest.raises(errors.InvalidArgument):
        errors.Redirect("/a", name="b")
    with pytest.raises(errors.InvalidArgument):
        errors.Redirect()


def _builtin_raises(source: str) -> set[str]:
    """Names of the builtin exception classes raised in ``source``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.Raise) or node.exc is None:
            continue
        target = node.exc.func if isinstance(node.exc, ast.Call) else node.exc
        if isinstance(target, ast.Name):
            obj = getattr(builtins, target.id, None)
            if isinstance(obj, type) and issubclass(obj, BaseException):
                found.add(target.id)
    return found


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("raise ValueError('x')", {"ValueError"}),
        ("raise KeyError", {"KeyError"}),
        ("try:\n    pass\nexcept OSError:\n    raise\n", set()),
        ("raise ConfigurationError('x')", set()),
        ("raise errors.InvalidState('x')", set()),
    ],
)
def test_builtin_raise_checker(source, expected):
    assert _builtin_raises(source) == expected


def test_builtin_exceptions_are_raised_only_where_listed():
    found = {
        (_relative(path), name)
        for path in _sources()
        for name in _builtin_raises(path.read_text(encoding="utf-8"))
    }
    assert found - BUILTIN_RAISES.keys() == set(), "raise an error from bocadillo/errors.py"
    assert BUILTIN_RAISES.keys() - found == set(), "no longer needed: remove from the list"


# Close codes -------------------------------------------------------------------------------


def _is_code_literal(node: ast.AST) -> bool:
    return (
        isinstance(node, ast.Constant)
        and type(node.value) is int
        and node.value in CLOSE_CODE_RANGE
    )


def _literals(node: ast.AST | None) -> list[ast.Constant]:
    """``node`` if it is a bare close code, or the bare codes of a tuple/list/set of them."""
    if node is None:
        return []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [elt for elt in node.elts if _is_code_literal(elt)]  # type: ignore[misc]
    return [node] if _is_code_literal(node) else []  # type: ignore[list-item]


def _names_a_code(name: str) -> bool:
    return "code" in name.lower() or name in CloseCode.__members__


def _call_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def bare_close_codes(source: str) -> list[int]:
    """Line numbers where ``source`` uses a close code as a bare number.

    Seen: arguments of ``close()``-like calls, ``code=`` keywords, ``"code": …`` in dicts,
    defaults and assignments of names about codes, and ``==``/``!=``/``in`` comparisons.
    """
    lines: list[int] = []

    def add(nodes: list[ast.Constant]) -> None:
        lines.extend(node.lineno for node in nodes)

    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call):
            if _call_name(node.func) in CLOSE_FUNCTIONS:
                for argument in node.args:
                    add(_literals(argument))
            for keyword in node.keywords:
                if keyword.arg is not None and _names_a_code(keyword.arg):
                    add(_literals(keyword.value))
        elif isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values, strict=True):
                if isinstance(key, ast.Constant) and key.value == "code":
                    add(_literals(value))
        elif isinstance(node, ast.arguments):
            positional = node.posonlyargs + node.args
            for arg, default in zip(
                positional[len(positional) - len(node.defaults) :], node.defaults, strict=True
            ):
                if _names_a_code(arg.arg):
                    add(_literals(default))
            for arg, kw_default in zip(node.kwonlyargs, node.kw_defaults, strict=True):
                if _names_a_code(arg.arg):
                    add(_literals(kw_default))
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names = [
                target.id if isinstance(target, ast.Name) else target.attr
                for target in targets
                if isinstance(target, (ast.Name, ast.Attribute))
            ]
            if any(_names_a_code(name) for name in names):
                add(_literals(node.value))
        elif isinstance(node, ast.Compare):
            if all(isinstance(op, (ast.Eq, ast.NotEq, ast.In, ast.NotIn)) for op in node.ops):
                for operand in [node.left, *node.comparators]:
                    add(_literals(operand))
    return sorted(lines)


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("await ws.close(1011)", [1]),
        ("await ws.close(CloseCode.INTERNAL_ERROR)", []),
        ("await ws.close(4000)", []),
        ("ws.ensure_closed(1000)", [1]),
        ("raise WebSocketDisconnect(1006)", [1]),
        ("conn.close(code=1001)", [1]),
        ("send({'type': 'websocket.close', 'code': 1013})", [1]),
        ("send({'type': 'websocket.close', 'code': 403})", []),
        ("def f(code: int = 1000): pass", [1]),
        ("def f(*, caught_close_codes=(1000, 1001)): pass", [1, 1]),
        ("def f(size=1000): pass", []),
        ("GOING_AWAY = 1001", [1]),
        ("close_code: int = 1000", [1]),
        ("batch_size = 1000", []),
        ("if refusal == 1013:\n    pass\n", [1]),
        ("if len(batch) < 1000:\n    pass\n", []),
        ("class F:\n    code: int = 1000\n", [2]),
    ],
)
def test_bare_close_code_checker(source, expected):
    assert bare_close_codes(source) == expected


@pytest.mark.parametrize(
    "path",
    [
        path
        for path in _sources()
        if _relative(path) != "closecodes.py" and _relative(path) not in BARE_CLOSE_CODE_EXEMPT
    ],
    ids=_relative,
)
def test_close_codes_come_from_the_enum(path):
    assert bare_close_codes(path.read_text(encoding="utf-8")) == []


def test_bare_close_code_exemptions_are_still_needed():
    for relative in sorted(BARE_CLOSE_CODE_EXEMPT):
        path = PACKAGE_DIR / relative
        assert path.is_file(), f"{relative} is gone: remove it from BARE_CLOSE_CODE_EXEMPT"
        assert bare_close_codes(path.read_text(encoding="utf-8")) != [], relative


def test_http_403_is_not_a_close_code():
    assert HANDSHAKE_REJECTED_STATUS == 403
    assert 403 not in CloseCode._value2member_map_
    assert all(code in CLOSE_CODE_RANGE for code in CloseCode)
