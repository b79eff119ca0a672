"""Imports flow one way: checked on the source with ``ast`` (see STYLE.md, section 1)."""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

import bocadillo

PACKAGE_DIR = Path(bocadillo.__file__).parent
REALTIME_DIR = PACKAGE_DIR / "realtime"
BACKENDS_DIR = REALTIME_DIR / "backends"

PURE_MODULES = [
    "envelope.py",
    "rooms.py",
    "registry.py",
    "limits.py",
    "admission.py",
    "_wire.py",
    "history.py",
    "backends/_redis_layout.py",
    "backends/_redis_presence.py",
    "backends/_redis_scripts.py",
]
#: PURE modules at the top of the package, importable from every layer.
PURE_TOP_LEVEL = ["jsoncodec.py"]
PURE_FORBIDDEN = {"asyncio", "starlette", "redis", "uvicorn"}
HTTP_MODULES = {
    "bocadillo.request",
    "bocadillo.response",
    "bocadillo.routing",
    "bocadillo.applications",
    "bocadillo.websockets",
    "bocadillo.codecs",
}
BACKEND_ALLOWED = {
    "bocadillo.realtime.backends.base",
    "bocadillo.realtime.backends._wire",
    "bocadillo.realtime.backends._redis_scripts",
    "bocadillo.realtime.backends._redis_layout",
    "bocadillo.realtime.backends._redis_presence",
    "bocadillo.realtime.backends._nats_history",
    "bocadillo.realtime.backends._nats_bus",
    "bocadillo.errors",
    "bocadillo.types",
}
#: What a backend built on another one may import besides: the backend it extends and
#: its helpers.
BACKEND_BASES = {
    "redis_cluster": {
        "bocadillo.realtime.backends.redis",
        "bocadillo.realtime.backends._redis_shards",
    }
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE_DIR.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(source: str, name: str, *, is_package: bool = False) -> set[str]:
    """Absolute names of every module imported by ``source`` (module ``name``).

    Relative imports are resolved; ``from pkg import name`` yields both ``pkg`` and
    ``pkg.name`` (``name`` may be a submodule). Imports under ``if TYPE_CHECKING:``
    count too.
    """
    package = name if is_package else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base_parts = package.split(".")
                if node.level > 1:
                    base_parts = base_parts[: -(node.level - 1)]
                base = ".".join(base_parts)
                target = f"{base}.{node.module}" if node.module else base
            else:
                assert node.module is not None
                target = node.module
            found.add(target)
            found.update(f"{target}.{alias.name}" for alias in node.names if alias.name != "*")
    return found


def imports_of(path: Path) -> set[str]:
    return imported_modules(
        path.read_text(encoding="utf-8"), module_name(path), is_package=path.name == "__init__.py"
    )


def top_level(name: str) -> str:
    return name.partition(".")[0]


def under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


# The checker itself -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "name", "is_package", "expected"),
    [
        ("import asyncio", "bocadillo.realtime.rooms", False, {"asyncio"}),
        ("import asyncio.tasks as t", "bocadillo.realtime.rooms", False, {"asyncio.tasks"}),
        (
            "from starlette.types import Send",
            "bocadillo.realtime.rooms",
            False,
            {"starlette.types", "starlette.types.Send"},
        ),
        (
            "from ..routing import Router",
            "bocadillo.realtime.hub",
            False,
            {"bocadillo.routing", "bocadillo.routing.Router"},
        ),
        (
            "from .. import websockets",
            "bocadillo.realtime.hub",
            False,
            {"bocadillo", "bocadillo.websockets"},
        ),
        (
            "from ...errors import HubError",
            "bocadillo.realtime.backends.memory",
            False,
            {"bocadillo.errors", "bocadillo.errors.HubError"},
        ),
        (
            "from .base import HubBackend",
            "bocadillo.realtime.backends",
            True,
            {"bocadillo.realtime.backends.base", "bocadillo.realtime.backends.base.HubBackend"},
        ),
        (
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..request import R\n",
            "bocadillo.realtime.dispatch",
            False,
            {"typing", "typing.TYPE_CHECKING", "bocadillo.request", "bocadillo.request.R"},
        ),
        (
            "def f():\n    import redis.asyncio\n",
            "bocadillo.realtime.limits",
            False,
            {"redis.asyncio"},
        ),
    ],
)
def test_layering_checker_resolves_imports(source, name, is_package, expected):
    assert imported_modules(source, name, is_package=is_package) == expected


def test_layering_checker_sees_the_files_it_checks():
    for filename in PURE_MODULES:
        assert (REALTIME_DIR / filename).is_file(), filename
    for filename in PURE_TOP_LEVEL:
        assert (PACKAGE_DIR / filename).is_file(), filename
    assert {path.name for path in BACKENDS_DIR.glob("*.py")} >= {
        "__init__.py",
        "base.py",
        "memory.py",
    }
    assert module_name(REALTIME_DIR / "rooms.py") == "bocadillo.realtime.rooms"
    assert module_name(BACKENDS_DIR / "__init__.py") == "bocadillo.realtime.backends"


# The rules --------------------------------------------------------------------------------


PURE_PATHS = [REALTIME_DIR / name for name in PURE_MODULES] + [
    PACKAGE_DIR / name for name in PURE_TOP_LEVEL
]


def _pure_ids(path: Path) -> str:
    return str(path.relative_to(PACKAGE_DIR))


@pytest.mark.parametrize("path", PURE_PATHS, ids=_pure_ids)
def test_pure_modules_import_no_io_libraries(path):
    imports = imports_of(path)
    offending = sorted(name for name in imports if top_level(name) in PURE_FORBIDDEN)
    assert offending == []


@pytest.mark.parametrize("path", PURE_PATHS, ids=_pure_ids)
def test_pure_modules_import_only_stdlib_and_pure_bocadillo_modules(path):
    # Stdlib, and within bocadillo only errors, types, close codes and the other PURE modules.
    pure = {module_name(pure_path) for pure_path in PURE_PATHS}
    allowed = pure | {"bocadillo.closecodes", "bocadillo.errors", "bocadillo.types"}
    for name in imports_of(path):
        if top_level(name) == "bocadillo":
            assert any(under(name, module) for module in allowed), name
        else:
            assert top_level(name) in sys.stdlib_module_names, name


def test_close_codes_import_only_the_stdlib():
    # PURE modules import closecodes.py; it must stay as pure as they are.
    for name in imports_of(PACKAGE_DIR / "closecodes.py"):
        assert top_level(name) in sys.stdlib_module_names, name


@pytest.mark.parametrize(
    "path",
    sorted(REALTIME_DIR.rglob("*.py")),
    ids=lambda path: str(path.relative_to(REALTIME_DIR)),
)
def test_realtime_never_imports_the_http_modules(path):
    imports = imports_of(path)
    offending = sorted(
        name for name in imports if any(under(name, module) for module in HTTP_MODULES)
    )
    assert offending == []


@pytest.mark.parametrize(
    "path",
    sorted(BACKENDS_DIR.glob("*.py")),
    ids=lambda path: path.name,
)
def test_backends_import_only_base_wire_errors_types_and_their_driver(path):
    # A backend module may import its own driver package, named like the module
    # (backends/redis.py -> redis, and its helpers and variants: backends/_nats_history.py
    # -> nats, backends/_redis_shards.py and backends/redis_cluster.py -> redis); nothing
    # else outside the stdlib. A backend that extends another (BACKEND_BASES) may import it.
    driver = path.stem.lstrip("_").partition("_")[0]
    allowed = BACKEND_ALLOWED | BACKEND_BASES.get(path.stem, set())
    for name in imports_of(path):
        if top_level(name) == "bocadillo":
            assert any(under(name, module) for module in allowed), name
        else:
            assert top_level(name) in sys.stdlib_module_names or top_level(name) == driver, name
