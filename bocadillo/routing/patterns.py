"""Route patterns: Bocadillo's ``/items/{pk}``, ``*`` and ``{}`` syntax, turned into
Starlette paths.

``{}`` is Bocadillo 0.18's anonymous field: it matches any text (slashes included) and
is not passed to the view; routes using it keep their registration order, so a
``/foo/{}`` registered first wins over ``/foo/bar``. A pattern may start with ``{}``,
which then also covers the leading slash (``{}`` alone matches every path).
"""

from __future__ import annotations

import re

from starlette.convertors import CONVERTOR_TYPES
from starlette.routing import compile_path

from ..errors import ConfigurationError, PatternError

__all__ = [
    "ANONYMOUS",
    "WILDCARD",
    "compile_path_checked",
    "expand_pattern",
    "join",
    "route_params",
]

#: The parameter name a ``*`` segment becomes.
WILDCARD = "__wildcard__"
#: The prefix of the parameter names ``{}`` fields become (never passed to views).
ANONYMOUS = "__anonymous_"
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-zA-Z_][a-zA-Z0-9_]*)?}")
_TYPED_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*):([^}]*)}")


def _anonymous_fields(pattern: str) -> str:
    parts = pattern.split("{}")
    path = parts[0]
    for number, part in enumerate(parts[1:]):
        path += "{" + f"{ANONYMOUS}{number}:path" + "}" + part
    if pattern.startswith("{}"):
        path = "/" + path
    return path


def expand_pattern(pattern: str) -> str:
    """Turn a Bocadillo pattern into a Starlette path.

    ``*`` as a whole segment (or the whole pattern) matches the rest of the path,
    slashes included: ``/static/*`` matches ``/static/css/site.css``. A pattern without
    its leading ``/`` gets one (``items`` is ``/items``), as in Bocadillo 0.18.

    Raises:
        ConfigurationError: if ``*`` is not the last segment.
    """
    if pattern == "*":
        return "/{" + WILDCARD + ":path}"
    if "{}" in pattern:
        pattern = _anonymous_fields(pattern)
    if not pattern.startswith("/"):
        pattern = "/" + pattern
    parts = pattern.split("/")
    if "*" in parts[:-1]:
        raise ConfigurationError(f"'*' may only end a route pattern: {pattern!r}")
    if parts[-1] == "*":
        parts[-1] = "{" + WILDCARD + ":path}"
    return "/".join(parts)


def route_params(path: str) -> set[str]:
    """The parameter names of a Starlette path."""
    return {
        name for name in _PARAM.findall(path) if name != WILDCARD and not name.startswith(ANONYMOUS)
    }


def join(prefix: str, path: str) -> str:
    """``path`` under ``prefix`` (a recipe's or a mount's)."""
    if not prefix:
        return path
    if path == "/":
        return prefix
    return prefix + path


def compile_path_checked(path: str) -> None:
    """Fail at registration on a path Starlette cannot compile.

    Raises:
        PatternError: naming the path and what is wrong with it, such as a parameter type
            that does not exist (``{x:d}``).
    """
    for name, kind in _TYPED_PARAM.findall(path):
        if kind not in CONVERTOR_TYPES:
            raise PatternError(
                f"unknown parameter type {kind!r} for {name!r} in route pattern {path!r} "
                f"(known: {', '.join(sorted(CONVERTOR_TYPES))})"
            )
    try:
        compile_path(path)
    except (AssertionError, ValueError) as exc:
        raise PatternError(f"invalid route pattern {path!r}: {exc}") from None
