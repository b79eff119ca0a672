"""Jinja2 templates, rendered asynchronously or synchronously."""

from __future__ import annotations

import os
from typing import Any

import jinja2

__all__ = ["Templates"]


class Templates:
    """Render Jinja2 templates from a directory.

    Args:
        app: Optional; when given, ``url_for`` (the app's route reversal) is available
            in templates as a global.
        directory: Where the templates are (default ``"templates"``, relative to the
            working directory).
        context: Values available to every template (``templates.context``).

    Example::

        templates = Templates(app)

        @app.route("/")
        async def index(req, res):
            res.html = await templates.render("index.html", title="Home")

    Autoescaping is on for ``.html``, ``.htm`` and ``.xml`` templates and for strings.
    """

    def __init__(
        self,
        app: Any = None,
        *,
        directory: str | os.PathLike[str] = "templates",
        context: dict[str, Any] | None = None,
    ) -> None:
        self._loader = jinja2.FileSystemLoader(os.fspath(directory))
        autoescape = jinja2.select_autoescape(["html", "htm", "xml"], default_for_string=True)
        self._async_env = jinja2.Environment(
            loader=self._loader, autoescape=autoescape, enable_async=True
        )
        self._sync_env = jinja2.Environment(loader=self._loader, autoescape=autoescape)
        if app is not None:
            self._sync_env.globals["url_for"] = lambda name, /, **params: str(
                app.url_for(name, **params)
            )
        self._async_env.globals = self._sync_env.globals
        self._context: dict[str, Any] = dict(context or {})

    @property
    def directory(self) -> str:
        """Where the templates are; assign it to look elsewhere from now on."""
        return str(self._loader.searchpath[0])

    @directory.setter
    def directory(self, value: str | os.PathLike[str]) -> None:
        self._loader.searchpath = [os.fspath(value)]
        # Templates loaded from the old folder must not be served from the cache.
        self._sync_env.cache = jinja2.environment.create_cache(400)
        self._async_env.cache = jinja2.environment.create_cache(400)

    @property
    def context(self) -> dict[str, Any]:
        """The values shared by every template (mutable; assigning replaces them)."""
        return self._context

    @context.setter
    def context(self, value: dict[str, Any]) -> None:
        self._context = value

    async def render(
        self, name: str, context: dict[str, Any] | None = None, /, **kwargs: Any
    ) -> str:
        """Render the template ``name`` without blocking the event loop.

        Args:
            name: The template's path in the directory.
            context: A dict of values (positional, so that a template variable may be
                called ``name`` or ``context``); ``**kwargs`` are merged on top.

        Raises:
            jinja2.TemplateNotFound: if there is no such template.
        """
        template = self._async_env.get_template(name)
        return await template.render_async({**self._context, **(context or {}), **kwargs})

    def render_sync(
        self, name: str, context: dict[str, Any] | None = None, /, **kwargs: Any
    ) -> str:
        """Render the template ``name`` synchronously."""
        values = {**self._context, **(context or {}), **kwargs}
        return self._sync_env.get_template(name).render(values)

    def render_string(
        self, source: str, context: dict[str, Any] | None = None, /, **kwargs: Any
    ) -> str:
        """Render a template given as a string (autoescaped)."""
        values = {**self._context, **(context or {}), **kwargs}
        return self._sync_env.from_string(source).render(values)
