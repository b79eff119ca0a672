"""Providers: dependency injection by parameter name.

A provider is a function decorated with ``@provider``; a view (HTTP or WebSocket), a hook
or a message handler that has a parameter of the same name receives its value::

    @provider(scope="app")
    async def db():
        conn = await connect()
        yield conn              # set-up above, teardown below
        await conn.close()

    @app.route("/users")
    async def users(req, res, db):
        res.json = await db.fetch_users()

Scopes: ``"request"`` (the default) makes one value per HTTP request or WebSocket
connection, torn down when it ends; ``"app"`` makes one value per app, torn down at
shutdown. A provider may take other providers as parameters. Providers can be sync or
async functions, or (async) generators for set-up/teardown.

``@provider`` at module level declares a provider, like ``def`` declares a function: the
declaration is recorded with the others made so far (import a module to declare its
providers; ``configure(app, provider_modules=[...])`` and ``discover_providers`` do that).
An app copies the declarations when it builds itself (on its first request or at startup,
and again after a later registration); from then on it reads only its own copy, so apps
never see each other's providers. ``app.provider`` registers a provider for one app only
(and overrides a declared one of the same name). The values belong to the app too: two apps
never share an app-scoped value.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import inspect
from collections.abc import Callable, Coroutine, Generator, Iterable
from contextlib import AsyncExitStack
from typing import Any, Literal, TypeVar, overload

from starlette.concurrency import run_in_threadpool

from .errors import ConfigurationError

__all__ = [
    "Provider",
    "ProviderDecorator",
    "ProviderRegistry",
    "ProviderScope",
    "Resolver",
    "discover_providers",
    "global_provider_names",
    "provider",
    "useprovider",
]

F = TypeVar("F", bound=Callable[..., Any])
ScopeName = Literal["request", "app"]
_USE_ATTR = "__bocadillo_useproviders__"


_NAME_ATTR = "__bocadillo_provider_name__"


class Provider:
    """A named factory of values, with a scope and its own dependencies.

    ``autouse`` providers run for every view without being asked for; a ``lazy`` one is
    injected as an awaitable that makes the value when first awaited.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        scope: ScopeName,
        name: str,
        autouse: bool = False,
        lazy: bool = False,
    ) -> None:
        if scope not in ("request", "app"):
            raise ConfigurationError(f"provider scope must be 'request' or 'app', not {scope!r}")
        if lazy and scope != "request":
            raise ConfigurationError(f"lazy provider {name!r} must be request-scoped")
        self.func = func
        self.scope = scope
        self.name = name
        self.autouse = autouse
        self.lazy = lazy
        self.dependencies = tuple(inspect.signature(func).parameters)

    async def create(self, kwargs: dict[str, Any], stack: AsyncExitStack) -> Any:
        """Make a value; register the teardown of generator providers on ``stack``."""
        func = self.func
        if inspect.isasyncgenfunction(func):
            agen = func(**kwargs)
            value = await agen.__anext__()
            stack.push_async_callback(_finish_async_gen, agen)
            return value
        if inspect.isgeneratorfunction(func):
            gen = func(**kwargs)
            value = next(gen)
            stack.push_async_callback(_finish_gen, gen)
            return value
        result = func(**kwargs)
        if inspect.isawaitable(result):
            result = await result
        return result

    def __repr__(self) -> str:
        return f"<Provider {self.name} scope={self.scope}>"


async def _finish_async_gen(agen: Any) -> None:
    try:
        await agen.__anext__()
    except StopAsyncIteration:
        return
    raise ConfigurationError("a provider generator must yield exactly once")


async def _finish_gen(gen: Any) -> None:
    def finish() -> bool:
        try:
            next(gen)
        except StopIteration:
            return True
        return False

    if not await run_in_threadpool(finish):
        raise ConfigurationError("a provider generator must yield exactly once")


#: The providers declared with ``@provider`` so far, by name (the last declaration wins).
#: Apps copy it when they build themselves (``ProviderRegistry.adopt``); nothing reads it
#: while serving a request.
_GLOBAL: dict[str, Provider] = {}


class ProviderDecorator:
    """``@provider`` and ``@app.provider``: declare a provider, bare or with options.

    ``register`` receives each ``Provider`` made (``bocadillo.provider`` records it for
    the apps of the process; ``app.provider`` gives it to one app).
    """

    def __init__(self, register: Callable[[Provider], None]) -> None:
        self._register = register

    @overload
    def __call__(
        self,
        func: F,
        *,
        scope: ScopeName = ...,
        name: str | None = ...,
        autouse: bool = ...,
        lazy: bool = ...,
    ) -> F: ...

    @overload
    def __call__(
        self,
        func: None = None,
        *,
        scope: ScopeName = ...,
        name: str | None = ...,
        autouse: bool = ...,
        lazy: bool = ...,
    ) -> Callable[[F], F]: ...

    def __call__(
        self,
        func: Callable[..., Any] | None = None,
        *,
        scope: ScopeName = "request",
        name: str | None = None,
        autouse: bool = False,
        lazy: bool = False,
    ) -> Any:
        """Declare a provider, injected into views, hooks and handlers by parameter name.

        Usable bare (``@provider``) or with options (``@provider(scope="app")``).

        Args:
            func: The provider function (sync or async, or an (async) generator).
            scope: ``"request"`` (one value per request or connection) or ``"app"``.
            name: The parameter name to inject under (defaults to the function's name).
            autouse: Run the provider for every view (HTTP and WebSocket), asked for or not.
            lazy: Inject an awaitable instead of the value: the provider runs when the view
                first awaits it (request scope only).

        Raises:
            ConfigurationError: for an unknown scope, or a lazy app-scoped provider.
        """

        def register(f: Callable[..., Any]) -> Callable[..., Any]:
            definition = Provider(
                f, scope=scope, name=name or f.__name__, autouse=autouse, lazy=lazy
            )
            self._register(definition)
            try:
                setattr(f, _NAME_ATTR, definition.name)
            except (AttributeError, TypeError):
                pass  # a callable that takes no attributes can still be named by its name
            return f

        return register(func) if func is not None else register


def _declare(definition: Provider) -> None:
    _GLOBAL[definition.name] = definition


#: Declare a provider for the apps of this process (see ``ProviderDecorator.__call__``).
provider = ProviderDecorator(_declare)


def global_provider_names() -> frozenset[str]:
    """The names of the providers declared with ``@provider`` so far."""
    return frozenset(_GLOBAL)


def discover_providers(*module_names: str) -> None:
    """Import modules so that the providers they declare exist (Bocadillo 0.18's helper).

    ``configure(app, provider_modules=[...])`` (``PROVIDER_MODULES`` in a settings module)
    calls it with the modules it names.

    Raises:
        ImportError: if a module cannot be imported.
    """
    for name in module_names:
        importlib.import_module(name)


def useprovider(*providers: str | Callable[..., Any]) -> Callable[[F], F]:
    """Resolve providers before a view runs, for their side effects, without passing them.

    Providers are given by name, or by the function declared with ``@provider``.

    Example::

        @app.route("/")
        @useprovider("count_visit")
        async def index(req, res): ...
    """
    names = tuple(
        item if isinstance(item, str) else getattr(item, _NAME_ATTR, item.__name__)
        for item in providers
    )

    def decorate(func: F) -> F:
        existing: tuple[str, ...] = getattr(func, _USE_ATTR, ())
        setattr(func, _USE_ATTR, (*existing, *names))
        return func

    return decorate


def used_providers(func: Any) -> tuple[str, ...]:
    """The names given to ``@useprovider`` on ``func`` (or what it wraps)."""
    names: tuple[str, ...] = ()
    while func is not None:
        names += getattr(func, _USE_ATTR, ())
        func = getattr(func, "__wrapped__", None)
    return names


class ProviderRegistry:
    """The providers of one app, and the app-scoped values they made.

    Until ``adopt`` is first called, the declared providers are read as they are declared;
    after it, the registry reads only its own copy of them.
    """

    def __init__(self) -> None:
        self._local: dict[str, Provider] = {}
        self._adopted: dict[str, Provider] | None = None
        self._merged: dict[str, Provider] | None = None
        self._app_values: dict[str, Any] = {}
        self._app_locks: dict[str, asyncio.Lock] = {}
        self._app_stack: AsyncExitStack | None = None

    def add(self, definition: Provider) -> None:
        """Register a provider for this app only (it overrides a declared one)."""
        self._local[definition.name] = definition
        self._merged = None

    def adopt(self) -> None:
        """Copy the providers declared with ``@provider`` so far: this app's own from now on."""
        self._adopted = dict(_GLOBAL)
        self._merged = None

    @property
    def definitions(self) -> dict[str, Provider]:
        """Every provider visible to this app (its own override declared ones)."""
        if self._merged is not None:
            return self._merged
        if self._adopted is None:
            return {**_GLOBAL, **self._local}
        self._merged = {**self._adopted, **self._local}
        return self._merged

    def __contains__(self, name: object) -> bool:
        return name in self.definitions

    def check(self, names: Iterable[str], where: str) -> None:
        """Check that ``names`` and all they depend on exist, without cycles.

        Raises:
            ConfigurationError: for a missing or circular provider, or an app-scoped
                provider depending on a request-scoped one.
        """
        definitions = self.definitions
        for name in names:
            self._check_one(name, definitions, (), where)

    def _check_one(
        self, name: str, definitions: dict[str, Provider], chain: tuple[str, ...], where: str
    ) -> None:
        if name in chain:
            cycle = " -> ".join((*chain, name))
            raise ConfigurationError(f"circular providers: {cycle}")
        definition = definitions.get(name)
        if definition is None:
            origin = f"provider {chain[-1]!r}" if chain else where
            raise ConfigurationError(
                f"{origin} needs a provider named {name!r}, which does not exist"
            )
        for dep in definition.dependencies:
            dep_definition = definitions.get(dep)
            if (
                definition.scope == "app"
                and dep_definition is not None
                and dep_definition.scope == "request"
            ):
                raise ConfigurationError(
                    f"app-scoped provider {name!r} cannot use request-scoped provider {dep!r}"
                )
            self._check_one(dep, definitions, (*chain, name), where)

    async def app_value(self, definition: Provider, resolver: Resolver) -> Any:
        if definition.name in self._app_values:
            return self._app_values[definition.name]
        lock = self._app_locks.setdefault(definition.name, asyncio.Lock())
        async with lock:
            if definition.name not in self._app_values:
                if self._app_stack is None:
                    self._app_stack = AsyncExitStack()
                kwargs = {dep: await resolver.get(dep) for dep in definition.dependencies}
                self._app_values[definition.name] = await definition.create(kwargs, self._app_stack)
        return self._app_values[definition.name]

    async def aclose(self) -> None:
        """Tear down app-scoped values (at app shutdown)."""
        stack, self._app_stack = self._app_stack, None
        self._app_values.clear()
        self._app_locks.clear()
        if stack is not None:
            await stack.aclose()


class Resolver:
    """Provider values for one request or connection (the request scope)."""

    def __init__(self, registry: ProviderRegistry) -> None:
        self.registry = registry
        self._definitions = registry.definitions
        self._values: dict[str, Any] = {}
        self._stack = AsyncExitStack()

    async def get(self, name: str) -> Any:
        """The value of provider ``name``, made on first use."""
        if name in self._values:
            return self._values[name]
        definition = self._definitions[name]
        if definition.scope == "app":
            value = await self.registry.app_value(definition, self)
        elif definition.lazy:
            value = _Lazy(functools.partial(self._make, definition))
        else:
            kwargs = {dep: await self.get(dep) for dep in definition.dependencies}
            value = await definition.create(kwargs, self._stack)
        self._values[name] = value
        return value

    async def _make(self, definition: Provider) -> Any:
        kwargs = {dep: await self.get(dep) for dep in definition.dependencies}
        return await definition.create(kwargs, self._stack)

    async def resolve(self, names: Iterable[str]) -> dict[str, Any]:
        """The values of several providers, by name."""
        return {name: await self.get(name) for name in names}

    async def aclose(self) -> None:
        """Tear down the request-scoped values made so far."""
        await self._stack.aclose()


class _Lazy:
    """A lazy provider's value: awaiting it makes the value (once) and returns it."""

    def __init__(self, make: Callable[[], Coroutine[Any, Any, Any]]) -> None:
        self._make = make
        self._future: asyncio.Future[Any] | None = None

    def __await__(self) -> Generator[Any, None, Any]:
        if self._future is None:
            self._future = asyncio.ensure_future(self._make())
        return self._future.__await__()


class ProviderScope:
    """What a callable needs injected: computed once per callable at app build."""

    def __init__(self, injected: tuple[str, ...], used: tuple[str, ...]) -> None:
        self.injected = injected
        self.used = used

    @property
    def empty(self) -> bool:
        return not self.injected and not self.used

    @classmethod
    def of(
        cls,
        func: Callable[..., Any],
        registry: ProviderRegistry,
        *,
        skip: Iterable[str] = (),
        where: str,
    ) -> ProviderScope:
        """Find the provider parameters of ``func`` (and its ``@useprovider`` names).

        Raises:
            ConfigurationError: for a missing or circular provider.
        """
        skipped = set(skip)
        try:
            params = inspect.signature(func, eval_str=True).parameters
        except (TypeError, ValueError, NameError):
            params = {}  # type: ignore[assignment]
        injected = tuple(name for name in params if name not in skipped and name in registry)
        used = used_providers(func)
        autoused = tuple(
            name
            for name, definition in registry.definitions.items()
            if definition.autouse and name not in injected and name not in used
        )
        used = (*autoused, *used)
        registry.check((*injected, *used), where)
        return cls(injected, used)

    async def kwargs(self, resolver: Resolver) -> dict[str, Any]:
        """Resolve what this callable needs; used-only providers are resolved, not passed."""
        for name in self.used:
            await resolver.get(name)
        return await resolver.resolve(self.injected)
