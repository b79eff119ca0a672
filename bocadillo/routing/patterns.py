"""Route patterns: Bocadillo's ``/items/{pk}`` and ``*`` syntax, turned into Starlette paths."""

from __future__ import annotations

import re

from starlette.routing import compile_path

from ..errors import ConfigurationError

__all__ = ["WILDCARD", "compile_path_checked", "expand_pattern", "join", "route_params"]

#: The parameter name a ``*`` segment becomes.
WILDCARD = "__wildcard__"
_PARAM = re.compile(r"{([a-zA-Z_][a-zA-Z0-9_]*)(?::[a-zA-Z_][a-zA-Z0-9_]*)?}")


def expand_pattern(pattern: str) -> str:
    """Turn a Bocadillo pattern into a Starlette path.

    ``*`` as a whole segment (or the whole pattern) matches the rest of the path,
    slashes included: ``/static/*`` matches ``/static/css/site.css``.

    Raises:
        ConfigurationError: if the pattern does not start with ``/`` (or is not ``*``).
    """
    if pattern == "*":
        return "/{" + WILDCARD + ":path}"
    if not pattern.startswith("/"):
        raise ConfigurationError(f"route pattern {pattern!r} must start with '/'")
    parts = pattern.split("/")
    if "*" in parts[:-1]:
        raise ConfigurationError(f"'*' may only end a route pattern: {pattern!r}")
    if parts[-1] == "*":
        parts[-1] = "{" + WILDCARD + ":path}"
    return "/".join(parts)


def route_params(path: str) -> set[str]:
    """The parameter names of a Starlette path."""
    return {name for name in _PARAM.findall(path) if name != WILDCARD}


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
        ConfigurationError: naming the path and what is wrong with it.
    """
    try:
        compile_path(path)
    except (AssertionError, ValueError) as exc:
        raise ConfigurationError(f"invalid route pattern {path!r}: {exc}") from None
