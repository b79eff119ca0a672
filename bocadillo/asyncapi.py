"""An AsyncAPI 3.0 document generated from an app's WebSocket endpoints.

``app.asyncapi()`` describes:

- each message-type endpoint (``@app.socket`` handlers) as a channel: every handled type
  as a ``receive`` operation with its data schema, its replies (``response``, correlated
  on ``id``, and ``error`` with its codes), the built-in ``resume``, and what the server
  sends on its own: ``welcome`` (when a connect handler exists), presence ``join`` and
  ``leave`` events (when rooms emit them), the shutdown notice, and the types the app
  declares with ``app.server_message()``;
- each ``@app.websocket_route`` as a channel with its path parameters, its query
  parameters (in the WebSocket binding) and its frames.

The ``asyncapi_endpoint`` setting serves the document as JSON, and ``asyncapi_page`` as an
HTML page made here (no script, nothing fetched from elsewhere).
"""

from __future__ import annotations

import html
import inspect
import json
import re
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.routing import compile_path

from .converters import _MISSING
from .realtime.dispatch import Dispatcher
from .realtime.envelope import ERROR_CODES
from .schemas import json_schema

if TYPE_CHECKING:
    from .applications import App
    from .routing.registry import RouteRegistry
    from .routing.websocket import WebSocketRoute

__all__ = ["ServerMessage", "asyncapi_document", "render_html"]

_SCHEMAS = "#/components/schemas/"
_ID_SCHEMA = {"type": ["string", "integer"], "description": "correlates a reply"}
_WS_BINDING_VERSION = "0.1.0"


@dataclass(frozen=True)
class ServerMessage:
    """A message type the server sends on its own (see ``App.server_message``)."""

    type: str
    schema: Any = None
    description: str | None = None
    #: The client answers it (``ws.request``): with ``response`` or ``error``.
    request: bool = False
    #: Sent to rooms with history: the envelope carries ``room``, ``offset``, ``epoch``.
    room: bool = False


def _slug(path: str) -> str:
    return re.sub(r"[^\w.-]+", "_", path.strip("/")) or "root"


def _summary(func: Any) -> str | None:
    doc = inspect.getdoc(func)
    return doc.split("\n\n")[0].replace("\n", " ") if doc else None


def _envelope(kind: str, data: dict[str, Any], *, correlated: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {"type": {"const": kind}, "data": data}
    if correlated:
        properties["id"] = _ID_SCHEMA
    return {"type": "object", "properties": properties, "required": ["type"]}


def _endpoints(
    registry: RouteRegistry, prefix: str, socket_path: str
) -> Iterator[tuple[str, Dispatcher | WebSocketRoute]]:
    for endpoint, dispatcher in registry._dispatchers.items():
        yield prefix + (endpoint or socket_path), dispatcher
    for route in registry._ws_routes:
        yield prefix + route.path, route
    for sub_prefix, recipe in registry._recipes:
        yield from _endpoints(recipe, prefix + sub_prefix, socket_path)


class _Builder:
    def __init__(self, app: App) -> None:
        self.app = app
        self.channels: dict[str, Any] = {}
        self.operations: dict[str, Any] = {}
        self.schemas: dict[str, Any] = {}

    def schema(self, schema: Any) -> dict[str, Any]:
        return json_schema(schema, self.schemas, _SCHEMAS)

    def channel_id(self, path: str) -> str:
        base = candidate = _slug(path)
        n = 2
        while candidate in self.channels:
            candidate = f"{base}_{n}"
            n += 1
        return candidate

    def operation(
        self,
        op_id: str,
        action: str,
        channel: str,
        messages: list[str],
        *,
        reply: list[str] | None = None,
        summary: str | None = None,
    ) -> None:
        ref = {"$ref": f"#/channels/{channel}"}
        operation: dict[str, Any] = {
            "action": action,
            "channel": ref,
            "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in messages],
        }
        if summary:
            operation["summary"] = summary
        if reply:
            operation["reply"] = {
                "channel": ref,
                "messages": [{"$ref": f"#/channels/{channel}/messages/{m}"} for m in reply],
            }
        self.operations[f"{op_id}"] = operation

    # Message-type endpoints ------------------------------------------------------------------

    def dispatcher(self, path: str, dispatcher: Dispatcher) -> None:
        channel = self.channel_id(path)
        settings = self.app.settings
        messages: dict[str, Any] = {}
        correlation = {"location": "$message.payload#/id"}

        def message(key: str, name: str, payload: dict[str, Any], **extra: Any) -> None:
            messages[key] = {"name": name, "payload": payload, **extra}

        message(
            "server.response",
            "response",
            _envelope("response", {"description": "what the handler returned"}, correlated=True),
            correlationId=correlation,
            summary="A handler's reply, with the id of the request it answers.",
        )
        codes = {
            "type": "object",
            "properties": {
                "code": {
                    "type": "string",
                    "description": "; ".join(f"{c}: {t}" for c, t in ERROR_CODES.items())
                    + " (a handler may raise EnvelopeError with codes of its own)",
                    "examples": list(ERROR_CODES),
                },
                "message": {"type": "string"},
            },
            "required": ["code", "message"],
        }
        message(
            "server.error",
            "error",
            _envelope("error", codes, correlated=True),
            correlationId=correlation,
            summary="A message that could not be handled; the connection stays open.",
        )
        replies = ["server.response", "server.error"]
        for kind, handler in dispatcher.handlers.items():
            key = f"client.{kind}"
            data = self.schema(handler.schema) if handler.schema is not None else {}
            extra: dict[str, Any] = {"correlationId": correlation}
            summary = _summary(handler.func)
            if summary:
                extra["summary"] = summary
            message(key, kind, _envelope(kind, data, correlated=True), **extra)
            self.operation(f"{channel}.receive.{kind}", "receive", channel, [key], reply=replies)
        position = {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {
                        "epoch": {"type": "string"},
                        "offset": {"type": "integer", "minimum": 0},
                    },
                    "required": ["epoch", "offset"],
                },
            ]
        }
        message(
            "client.resume",
            "resume",
            _envelope(
                "resume",
                {
                    "type": "object",
                    "properties": {"rooms": {"type": "object", "additionalProperties": position}},
                    "required": ["rooms"],
                },
                correlated=True,
            ),
            correlationId=correlation,
            summary="Re-join rooms and get what was missed since the positions given.",
        )
        self.operation(
            f"{channel}.receive.resume", "receive", channel, ["client.resume"], reply=replies
        )
        if dispatcher.connect_handlers:
            message(
                "server.welcome",
                "welcome",
                _envelope(
                    "welcome", {"description": "what a connect handler returned"}, correlated=False
                ),
                summary="Sent once, right after accept.",
            )
            self.operation(f"{channel}.send.welcome", "send", channel, ["server.welcome"])
        if self._presence():
            member = {
                "type": "object",
                "properties": {
                    "room": {"type": "string"},
                    "id": {"type": "string", "description": "the connection id"},
                    "user": {"description": "what the connection set with ws.user"},
                },
                "required": ["room", "id"],
            }
            for kind in ("join", "leave"):
                message(
                    f"server.{kind}",
                    kind,
                    _envelope(kind, member, correlated=False),
                    summary=f"A member {'joined' if kind == 'join' else 'left'} a room.",
                )
                self.operation(f"{channel}.send.{kind}", "send", channel, [f"server.{kind}"])
        if settings["shutdown_message"] is not None:
            message(
                "server.shutdown",
                "shutdown",
                _envelope("shutdown", {"const": settings["shutdown_message"]}, correlated=False),
                summary="The server is going away: the connection closes next (1001).",
            )
            self.operation(f"{channel}.send.shutdown", "send", channel, ["server.shutdown"])
        declared = self.app._server_messages.get(dispatcher.path or None, {})
        if any(m.request for m in declared.values()):
            for kind in ("response", "error"):
                message(
                    f"client.{kind}",
                    kind,
                    _envelope(kind, codes if kind == "error" else {}, correlated=True),
                    correlationId=correlation,
                    summary=f"The client's {kind} to a server request, on its id.",
                )
        for kind, declared_message in declared.items():
            key = f"server.{kind}"
            payload = _envelope(kind, self.schema(declared_message.schema), correlated=False)
            if declared_message.request:
                payload["properties"]["id"] = _ID_SCHEMA
                payload["required"].append("id")
            if declared_message.room:
                payload["properties"].update(
                    room={"type": "string"},
                    offset={"type": "integer", "minimum": 0},
                    epoch={"type": "string"},
                )
            extra = {"correlationId": correlation} if declared_message.request else {}
            if declared_message.description:
                extra["summary"] = declared_message.description
            message(key, kind, payload, **extra)
            self.operation(
                f"{channel}.send.{kind}",
                "send",
                channel,
                [key],
                reply=["client.response", "client.error"] if declared_message.request else None,
            )
        self.channels[channel] = {
            "address": path,
            "title": f"Message-type endpoint {path}",
            "messages": messages,
            "bindings": {"ws": {"method": "GET", "bindingVersion": _WS_BINDING_VERSION}},
        }

    def _presence(self) -> bool:
        if self.app.settings["presence_events"]:
            return True
        return any(options.get("presence_events") for _, options in self.app._room_options)

    # Plain WebSocket routes ------------------------------------------------------------------

    def route(self, path: str, route: WebSocketRoute) -> None:
        channel = self.channel_id(path)
        _, address, _ = compile_path(path)
        path_names = re.findall(r"{(\w+)}", address)
        parameters = {name: {"description": f"path parameter {name!r}"} for name in path_names}
        query: dict[str, Any] = {}
        required: list[str] = []
        signature = inspect.signature(route.view, eval_str=True)
        for param in route.plan._params:
            if param.in_path:
                continue
            annotation = signature.parameters[param.name].annotation
            if param.many or typing.get_origin(annotation) in (typing.Union, types.UnionType):
                # list[int], int | None: the type of one value.
                annotation = next(
                    (a for a in typing.get_args(annotation) if a is not type(None)), str
                )
            item = _QUERY_TYPES.get(annotation, {"type": "string"})
            query[param.name] = {"type": "array", "items": item} if param.many else dict(item)
            if param.default is _MISSING:
                required.append(param.name)
        binding: dict[str, Any] = {"method": "GET", "bindingVersion": _WS_BINDING_VERSION}
        if query:
            binding["query"] = {"type": "object", "properties": query}
            if required:
                binding["query"]["required"] = required
        messages: dict[str, Any] = {}
        for direction, codec in (("in", route.receive_type), ("out", route.send_type)):
            payload, content_type = _CODECS.get(str(codec), ({}, "application/json"))
            messages[f"frame.{direction}"] = {
                "name": f"{codec} frame",
                "contentType": content_type,
                "payload": dict(payload),
            }
        channel_object: dict[str, Any] = {
            "address": address,
            "title": f"WebSocket view {route.name}",
            "messages": messages,
            "bindings": {"ws": binding},
        }
        if parameters:
            channel_object["parameters"] = parameters
        summary = _summary(route.view)
        if summary:
            channel_object["description"] = summary
        self.channels[channel] = channel_object
        self.operation(f"{channel}.receive", "receive", channel, ["frame.in"])
        self.operation(f"{channel}.send", "send", channel, ["frame.out"])


_QUERY_TYPES: dict[Any, dict[str, Any]] = {
    int: {"type": "integer"},
    float: {"type": "number"},
    bool: {"type": "boolean"},
    str: {"type": "string"},
}
_CODECS: dict[str, tuple[dict[str, Any], str]] = {
    "text": ({"type": "string"}, "text/plain"),
    "bytes": ({"type": "string", "format": "binary"}, "application/octet-stream"),
    "json": ({}, "application/json"),
}


def asyncapi_document(
    app: App,
    *,
    title: str | None = None,
    version: str = "1.0.0",
    description: str | None = None,
    servers: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The AsyncAPI 3.0 document of ``app``'s WebSocket endpoints (see ``App.asyncapi``)."""
    builder = _Builder(app)
    socket_path = app.settings["socket_path"]
    for path, endpoint in _endpoints(app, "", socket_path):
        if isinstance(endpoint, Dispatcher):
            builder.dispatcher(path, endpoint)
        else:
            builder.route(path, endpoint)
    info: dict[str, Any] = {"title": title or app.name, "version": version}
    if description:
        info["description"] = description
    document: dict[str, Any] = {
        "asyncapi": "3.0.0",
        "info": info,
        "defaultContentType": "application/json",
    }
    if servers:
        document["servers"] = servers
    document["channels"] = builder.channels
    document["operations"] = builder.operations
    if builder.schemas:
        document["components"] = {"schemas": builder.schemas}
    return document


def render_html(document: dict[str, Any]) -> str:
    """A readable, self-contained HTML page of an AsyncAPI document."""
    esc = html.escape
    info = document["info"]
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        "<meta name='viewport' content='width=device-width, initial-scale=1'>",
        f"<title>{esc(info['title'])} — AsyncAPI</title><style>{_STYLE}</style></head><body>",
        f"<h1>{esc(info['title'])} <small>{esc(info['version'])}</small></h1>",
    ]
    if info.get("description"):
        parts.append(f"<p>{esc(info['description'])}</p>")
    operations = document.get("operations", {})
    for channel_id, channel in document.get("channels", {}).items():
        parts.append(f"<section><h2><code>{esc(channel['address'])}</code></h2>")
        if channel.get("title"):
            parts.append(f"<p class='title'>{esc(channel['title'])}</p>")
        if channel.get("description"):
            parts.append(f"<p>{esc(channel['description'])}</p>")
        query = channel.get("bindings", {}).get("ws", {}).get("query")
        if channel.get("parameters") or query:
            parts.append("<h3>Parameters</h3><ul>")
            for name in channel.get("parameters", {}):
                parts.append(f"<li><code>{esc(name)}</code> (path)</li>")
            for name, schema in (query or {}).get("properties", {}).items():
                parts.append(
                    f"<li><code>{esc(name)}</code> (query, {esc(json.dumps(schema))})</li>"
                )
            parts.append("</ul>")
        prefix = f"#/channels/{channel_id}/messages/"
        for direction, action in (("Client sends", "receive"), ("Server sends", "send")):
            rows = [
                (op_id, op)
                for op_id, op in operations.items()
                if op["action"] == action and op["channel"]["$ref"] == f"#/channels/{channel_id}"
            ]
            if not rows:
                continue
            parts.append(f"<h3>{direction}</h3>")
            for op_id, op in rows:
                for ref in op["messages"]:
                    key = ref["$ref"].removeprefix(prefix)
                    message = channel["messages"][key]
                    parts.append(f"<article id='{esc(op_id)}'><h4>{esc(message['name'])}</h4>")
                    if message.get("summary"):
                        parts.append(f"<p>{esc(message['summary'])}</p>")
                    if op.get("reply"):
                        answers = [
                            channel["messages"][r["$ref"].removeprefix(prefix)]["name"]
                            for r in op["reply"]["messages"]
                        ]
                        parts.append(f"<p>Answered with: {esc(', '.join(answers))}</p>")
                    payload = json.dumps(message.get("payload", {}), indent=2)
                    parts.append(f"<pre>{esc(payload)}</pre></article>")
        parts.append("</section>")
    schemas = document.get("components", {}).get("schemas", {})
    if schemas:
        parts.append("<section><h2>Schemas</h2>")
        for name, schema in schemas.items():
            parts.append(f"<h3 id='schema-{esc(name)}'>{esc(name)}</h3>")
            parts.append(f"<pre>{esc(json.dumps(schema, indent=2))}</pre>")
        parts.append("</section>")
    parts.append("</body></html>")
    return "".join(parts)


_STYLE = (
    "body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;"
    "line-height:1.5;color:#222}h1 small{color:#777;font-size:60%}section{border-top:1px "
    "solid #ddd;margin-top:2rem}pre{background:#f5f5f5;padding:.75rem;overflow:auto;"
    "border-radius:4px}.title{color:#555}article h4{margin-bottom:.25rem}"
    "@media (prefers-color-scheme:dark){body{background:#111;color:#ddd}"
    "pre{background:#222}section{border-color:#333}}"
)
