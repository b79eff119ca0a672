"""Message-type routing: ``@app.socket("type")`` handlers behind one WebSocket endpoint.

Clients send envelopes ``{"type": ..., "data": ..., "id": ...}``; the handler registered
for the type runs with parameters injected by name:

=============  ================================================================
``data``       the envelope's ``data`` (validated by the handler's schema, if any)
``ws``         the connection's ``WebSocket``
``client_id``  the connection id (``ws.id``)
``message``    the whole decoded envelope (a dict, extra fields included)
``type``       the message type; ``id``: the request id (or None)
``hub``        the app's hub
``req``        a ``SocketRequest`` bundling the above (Daebus style)
(providers)    any provider, by its name
=============  ================================================================

A returned value goes back as ``{"type": "response", "data": value, "id": <id>}``;
``None`` sends nothing. Errors go back as ``{"type": "error", "data": {"code",
"message"}, "id": <id>}`` and the connection stays open (see ``envelope.ERROR_CODES``).
"""

from __future__ import annotations

import dataclasses
import difflib
import inspect
import logging
import typing
from collections.abc import Callable, Collection
from typing import Any

import typesystem
from starlette.concurrency import run_in_threadpool

from ..errors import ConfigurationError, EnvelopeError, InvalidData
from ..injection import ProviderRegistry, ProviderScope
from ..schemas import is_model, validate_model
from .envelope import (
    Envelope,
    encode_envelope,
    encode_error,
    encode_response,
    parse_envelope,
    room_error,
)
from .resume import resume_request

__all__ = [
    "BUILTIN_TYPES",
    "BoundDispatcher",
    "Dispatcher",
    "SocketHandler",
    "SocketRequest",
    "check_parameter_names",
    "check_schema",
    "validate_data",
    "welcome_message",
]

logger = logging.getLogger("bocadillo.dispatch")
#: Message types the endpoint serves itself, with what they are for.
BUILTIN_TYPES = {
    "resume": "re-join rooms and get what was missed, see docs/realtime.md",
    "response": "a client's reply to ws.request()",
    "error": "a client's error reply to ws.request()",
}
_BUILTIN_NAMES = frozenset({"data", "ws", "client_id", "message", "type", "id", "hub", "req"})


@dataclasses.dataclass(frozen=True)
class SocketRequest:
    """One received message, for handlers written ``def handler(req)``."""

    client_id: str
    message_type: str | None
    data: Any
    #: The whole decoded envelope.
    payload: dict[str, Any] | None
    #: The connection's ``WebSocket``.
    websocket: Any
    id: str | int | None


def validate_data(schema: Any, data: Any) -> Any:
    """Validate ``data`` with a typesystem ``Schema`` instance, a typesystem field, a
    dataclass, a Pydantic model or a msgspec Struct.

    Returns:
        The validated value (a dict for typesystem schemas, an instance for the others).

    Raises:
        EnvelopeError: ``invalid_data`` naming what is wrong, by field path.
    """
    if is_model(schema):
        try:
            return validate_model(schema, data)
        except InvalidData as exc:
            raise EnvelopeError("invalid_data", str(exc)) from None
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        return _validate_dataclass(schema, data)
    validator = schema
    if isinstance(schema, type) and issubclass(schema, typesystem.Schema):
        raise ConfigurationError("pass a typesystem Schema instance, not the class")
    value, error = validator.validate_or_error(data)
    if error is not None:
        details = {".".join(str(i) for i in m.index) or "data": m.text for m in error.messages()}
        raise EnvelopeError("invalid_data", _describe(details))
    return value


def check_schema(schema: Any, what: str) -> None:
    """Refuse, at registration, a schema that ``validate_data`` cannot use.

    Raises:
        ConfigurationError: unless ``schema`` is None, a dataclass, a typesystem
            ``Schema`` instance or field, a Pydantic model or a msgspec Struct.
    """
    if schema is None or is_model(schema):
        return
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        return
    if isinstance(schema, type) and issubclass(schema, typesystem.Schema):
        raise ConfigurationError(f"{what}: pass a typesystem Schema instance, not the class")
    if not callable(getattr(schema, "validate_or_error", None)):
        raise ConfigurationError(
            f"{what}: schema must be a typesystem Schema instance or field, a dataclass, "
            "a Pydantic model or a msgspec Struct"
        )


def _describe(details: dict[str, str]) -> str:
    return "; ".join(f"{key}: {text}" for key, text in details.items()) or "invalid data"


def _validate_dataclass(cls: type, data: Any) -> Any:
    if not isinstance(data, dict):
        raise EnvelopeError("invalid_data", "data must be an object")
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise EnvelopeError("invalid_data", f"unexpected fields: {', '.join(sorted(unknown))}")
    problems = {}
    for f in dataclasses.fields(cls):
        if f.name not in data:
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                problems[f.name] = "this field is required"
            continue
        expected = hints.get(f.name)
        value = data[f.name]
        if expected in (int, float, str, bool) and not _matches(expected, value):
            problems[f.name] = f"must be of type {expected.__name__}"
    if problems:
        raise EnvelopeError("invalid_data", _describe(problems))
    return cls(**data)


def _matches(expected: type, value: Any) -> bool:
    if expected is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if expected is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, expected)


def _data_model(func: Callable[..., Any]) -> Any:
    """The Pydantic model or msgspec Struct that annotates the handler's ``data``, if any
    (it then validates ``data`` as ``schema=`` would)."""
    try:
        annotation = inspect.signature(func, eval_str=True).parameters["data"].annotation
    except (KeyError, NameError, TypeError, ValueError):
        return None
    return annotation if is_model(annotation) else None


def check_parameter_names(
    params: Collection[inspect.Parameter], providers: Collection[str], what: str
) -> None:
    """Refuse, at registration, a handler parameter that looks like a typo of a built-in
    name (``clientid`` for ``client_id``, ``dat`` for ``data``).

    Only what is certain now is refused: a parameter named after a built-in or after a
    provider known now (``providers``), one with a default, and one close to no built-in
    name all pass, because a provider may still be declared before the app starts
    (``configure(app, provider_modules=...)`` imports its modules after the views are
    decorated). ``BoundDispatcher`` checks those at startup.

    Raises:
        ConfigurationError: naming the built-in name, and how to declare the provider if
            one of that name was meant.
    """
    for param in params:
        name = param.name
        if (
            param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL)
            or param.default is not param.empty
            or name in _BUILTIN_NAMES
            or name in providers
        ):
            continue
        # The settings' typo check uses the same cutoff: close enough to be a slip of the
        # keyboard (dat, clientid, messages), far enough to let a provider named client
        # or db through.
        close = difflib.get_close_matches(name.lower(), _BUILTIN_NAMES, n=1, cutoff=0.85)
        if close:
            raise ConfigurationError(
                f"{what}: no built-in parameter is named {name!r}: did you mean "
                f"{close[0]!r}? If {name!r} is meant to be a provider, declare it before "
                "this handler (@provider or @app.provider above it, or import the module "
                "that declares it first)"
            )


class SocketHandler:
    """One registered handler, with what it wants injected.

    Raises:
        ConfigurationError: for a parameter that looks like a typo of a built-in name
            (see ``check_parameter_names``; ``providers`` are the names known now).
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        schema: Any = None,
        what: str,
        providers: Collection[str] = (),
    ) -> None:
        self.func = func
        self.schema = schema
        self.what = what
        self.is_async = inspect.iscoroutinefunction(func)
        self.params = tuple(inspect.signature(func).parameters.values())
        check_parameter_names(self.params, providers, what)

    def providers_in(self, registry: ProviderRegistry) -> ProviderScope:
        """What the handler needs from an app's providers; checks every parameter can
        be filled (a built-in name, a provider or a default).

        Raises:
            ConfigurationError: for a parameter nothing can fill.
        """
        providers = ProviderScope.of(self.func, registry, skip=_BUILTIN_NAMES, where=self.what)
        for param in self.params:
            if param.kind in (param.VAR_KEYWORD, param.VAR_POSITIONAL):
                continue
            known = param.name in _BUILTIN_NAMES or param.name in providers.injected
            if not known and param.default is param.empty:
                raise ConfigurationError(
                    f"{self.what}: cannot fill parameter {param.name!r}; use data, ws, "
                    "client_id, message, type, id, hub, req, or a provider name"
                )
        return providers

    async def call(self, available: dict[str, Any], ws: Any, providers: ProviderScope) -> Any:
        """Call the handler; sync handlers run in a thread so the loop is not blocked."""
        kwargs: dict[str, Any] = {}
        for param in self.params:
            if param.name in available:
                kwargs[param.name] = available[param.name]
        if not providers.empty and ws.providers is not None:
            kwargs.update(await providers.kwargs(ws.providers))
        if self.is_async:
            return await self.func(**kwargs)
        return await run_in_threadpool(self.func, **kwargs)


class Dispatcher:
    """The handlers of one message-type endpoint."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.handlers: dict[str, SocketHandler] = {}
        self.connect_handlers: list[SocketHandler] = []
        self.disconnect_handlers: list[SocketHandler] = []

    def add(
        self,
        kind: str,
        func: Callable[..., Any],
        schema: Any = None,
        *,
        providers: Collection[str] = (),
    ) -> None:
        """Register the handler of ``kind`` (replacing none: a duplicate is an error).

        Args:
            kind: The message type.
            func: The handler.
            schema: What validates ``data`` (see ``check_schema``).
            providers: The provider names known now (see ``check_parameter_names``).

        Raises:
            ConfigurationError: if ``kind`` already has a handler on this endpoint,
                ``schema`` cannot validate (see ``check_schema``), or a parameter looks
                like a typo of a built-in name.
        """
        if kind in self.handlers:
            raise ConfigurationError(f"message type {kind!r} already has a handler on {self.path}")
        if kind in BUILTIN_TYPES:
            raise ConfigurationError(
                f"message type {kind!r} is built in ({BUILTIN_TYPES[kind]}): "
                "give your handler another type"
            )
        check_schema(schema, f"socket handler {kind!r}")
        if schema is None:
            schema = _data_model(func)
        self.handlers[kind] = SocketHandler(
            func, schema=schema, what=f"socket handler {kind!r}", providers=providers
        )

    def bind(self, providers: ProviderRegistry, *, debug: bool = False) -> BoundDispatcher:
        """The endpoint as served by an app with ``providers`` (when it compiles).

        Args:
            providers: The app's providers.
            debug: Tell clients the type and message of a handler's exception (in the
                ``handler_error`` envelope); never in production.

        Raises:
            ConfigurationError: for a handler parameter nothing can fill.
        """
        return BoundDispatcher(self, providers, debug=debug)


class BoundDispatcher:
    """A ``Dispatcher`` bound to one app's providers: serves its connections.

    One message crosses each way once: ``serve`` reads a frame, ``handle`` turns it into
    the reply text (or None), and ``serve`` sends that.
    """

    def __init__(
        self, dispatcher: Dispatcher, providers: ProviderRegistry, *, debug: bool = False
    ) -> None:
        self.dispatcher = dispatcher
        self.debug = debug
        self._handlers = {
            kind: (handler, handler.providers_in(providers))
            for kind, handler in dispatcher.handlers.items()
        }
        self._connect = [(h, h.providers_in(providers)) for h in dispatcher.connect_handlers]
        self._disconnect = [(h, h.providers_in(providers)) for h in dispatcher.disconnect_handlers]

    async def serve(self, ws: Any) -> None:
        """Run one connection: connect handlers, accept, welcome, then each message."""
        admitted, welcome = await self.connect(ws)
        if not admitted:
            await ws.reject()
            return
        await ws.accept()
        for value in welcome:
            await ws.send_text(welcome_message(value))
        while True:
            reply = await self.handle(ws, await ws.receive_frame())
            if reply is not None:
                await ws.send_text(reply)

    @staticmethod
    def _available(ws: Any, envelope: Envelope | None, data: Any) -> dict[str, Any]:
        message = envelope.message if envelope else None
        kind = envelope.type if envelope else None
        request_id = envelope.id if envelope else None
        return {
            "data": data,
            "ws": ws,
            "client_id": ws.id,
            "message": message,
            "type": kind,
            "id": request_id,
            "hub": ws.hub,
            "req": SocketRequest(ws.id, kind, data, message, ws, request_id),
        }

    async def connect(self, ws: Any) -> tuple[bool, list[Any]]:
        """Run the connect handlers before accept.

        Returns:
            ``(admitted, welcome values)``; a handler returning ``False`` refuses.
        """
        welcome = []
        available = self._available(ws, None, None)
        for handler, providers in self._connect:
            result = await handler.call(available, ws, providers)
            if result is False:
                return False, []
            if result is not None and result is not True:
                welcome.append(result)
        return True, welcome

    async def disconnected(self, ws: Any) -> None:
        """Run the disconnect handlers; their errors are logged, never raised."""
        available = self._available(ws, None, None)
        for handler, providers in self._disconnect:
            try:
                await handler.call(available, ws, providers)
            except Exception:
                logger.exception("socket_disconnect handler failed for %s", ws.id)

    async def handle(self, ws: Any, frame: str | bytes) -> str | None:
        """Handle one frame.

        Returns:
            The text to send back (a response or an error envelope), or None.
        """
        try:
            envelope = parse_envelope(frame)
        except EnvelopeError as exc:
            return encode_error(exc.code, exc.message, exc.request_id)
        found = self._handlers.get(envelope.type)
        if found is None and envelope.type in BUILTIN_TYPES:
            return await self._builtin(ws, envelope)
        if found is None:
            return encode_error(
                "unknown_type", f"no handler for message type {envelope.type!r}", envelope.id
            )
        handler, providers = found
        data = envelope.data
        try:
            if handler.schema is not None:
                data = validate_data(handler.schema, data)
        except EnvelopeError as exc:
            return encode_error(exc.code, exc.message, envelope.id)
        try:
            result = await handler.call(self._available(ws, envelope, data), ws, providers)
            hub = ws.hub
            if hub is not None and hub._subscribing:
                # A room it joined is subscribed before the client hears back.
                await hub._settle_joins(ws.id)
            if result is None:
                return None
            return encode_response(result, envelope.id)
        except EnvelopeError as exc:
            return encode_error(exc.code, exc.message, envelope.id)
        except Exception as exc:
            reply = room_error(exc, envelope.id)
            if reply is not None:
                return reply
            logger.exception("socket handler %r failed", envelope.type)
            if ws.hub is not None:
                ws.hub.counters.errors += 1
            text = f"{type(exc).__name__}: {exc}" if self.debug else "the handler failed"
            return encode_error("handler_error", text, envelope.id)

    async def _builtin(self, ws: Any, envelope: Envelope) -> str | None:
        if envelope.type == "resume":
            return await resume_request(ws, envelope)
        # "response"/"error": a client's reply to a server-to-client request.
        hub = ws.hub
        session = hub._registry.get(ws.id) if hub is not None else None
        if session is None or not session.answer(envelope.type, envelope.data, envelope.id):
            if hub is not None:
                hub.counters.unknown_replies += 1  # ignored: unknown or repeated id
        return None


def welcome_message(value: Any) -> str:
    """The envelope sent to a client with what a connect handler returned."""
    return encode_envelope("welcome", value)
