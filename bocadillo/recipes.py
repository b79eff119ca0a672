"""Recipes: named groups of routes under a prefix (what Flask calls blueprints)."""

from __future__ import annotations

from .errors import ConfigurationError
from .routing import RouteRegistry

__all__ = ["Recipe"]


class Recipe(RouteRegistry):
    """A named group of HTTP and WebSocket routes that an app (or another recipe) includes.

    Args:
        name: The recipe's name; route names become ``"<name>:<view>"``.
        prefix: The path prefix of its routes (default ``"/<name>"``).

    Raises:
        ConfigurationError: if the prefix does not start with ``/``.

    Example::

        numbers = Recipe("numbers")

        @numbers.route("/{x}")
        async def double(req, res, x: int):
            res.json = {"result": 2 * x}

        app.recipe(numbers)  # GET /numbers/21 -> {"result": 42}
    """

    def __init__(self, name: str, prefix: str | None = None) -> None:
        super().__init__()
        self.name = name
        self.prefix = f"/{name}" if prefix is None else prefix.rstrip("/")
        if self.prefix and not self.prefix.startswith("/"):
            raise ConfigurationError(f"recipe prefix {prefix!r} must start with '/'")

    def _qualify(self, name: str) -> str:
        return f"{self.name}:{name}"

    def __repr__(self) -> str:
        return f"<Recipe {self.name} {self.prefix or '/'}>"
