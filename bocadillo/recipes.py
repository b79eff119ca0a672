"""Recipes: named groups of routes under a prefix (what Flask calls blueprints)."""

from __future__ import annotations

from .errors import ConfigurationError
from .routing import RouteRegistry

__all__ = ["Recipe", "Router"]


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


class Router(RouteRegistry):
    """A group of routes without a name or prefix of its own (Bocadillo 0.18's ``Router``).

    Register routes on it, then include it with ``app.include_router(router, prefix=...)``
    (the same as ``app.include``). Route names are not qualified: ``url_for("view")``.

    Example::

        router = Router()

        @router.route("/{pk}")
        async def get_taco(req, res, pk: int): ...

        app.include_router(router, prefix="/tacos")  # GET /tacos/1
    """

    prefix = ""
    #: Paths are joined to the prefix as written: ``"/"`` under ``"/tacos"`` is ``"/tacos/"``
    #: (``"/tacos"`` is redirected there), as in Bocadillo 0.18.
    joins_literally = True

    def include_router(self, router: RouteRegistry, prefix: str = "") -> None:
        """Include another router's routes under ``prefix`` (see ``include``)."""
        self.include(router, prefix=_leading_slash(prefix))

    def __repr__(self) -> str:
        return "<Router>"


def _leading_slash(prefix: str) -> str:
    return prefix if not prefix or prefix.startswith("/") else "/" + prefix
