"""Schemas from other libraries: Pydantic v2 models and msgspec Structs, and JSON Schema.

Neither library is a dependency. A class is recognised as a Pydantic model or a msgspec
Struct only when its library is already imported (it must be, for the class to exist), so
nothing here imports them up front.

``json_schema`` describes any schema Bocadillo accepts (a typesystem ``Schema`` or field,
a dataclass, a Pydantic model, a msgspec Struct) as JSON Schema, for the AsyncAPI
document (``bocadillo.asyncapi``).
"""

from __future__ import annotations

import dataclasses
import re
import sys
import types
import typing
from typing import Any

from .errors import ConfigurationError, InvalidData

__all__ = [
    "is_model",
    "json_schema",
    "model_library",
    "validate_model",
]


def _subclass_of(schema: Any, module: str, name: str) -> bool:
    loaded = sys.modules.get(module)
    base = getattr(loaded, name, None) if loaded is not None else None
    return base is not None and isinstance(schema, type) and issubclass(schema, base)


def model_library(schema: Any) -> str | None:
    """``"pydantic"`` for a Pydantic v2 model class, ``"msgspec"`` for a msgspec Struct
    class, else None."""
    if _subclass_of(schema, "pydantic", "BaseModel") and hasattr(schema, "model_validate"):
        return "pydantic"
    if _subclass_of(schema, "msgspec", "Struct"):
        return "msgspec"
    return None


def is_model(schema: Any) -> bool:
    """Whether ``schema`` is a Pydantic v2 model or a msgspec Struct class."""
    return model_library(schema) is not None


_MSGSPEC_MISSING = re.compile(r"^Object missing required field `([^`]*)`$")
_MSGSPEC_PATH = re.compile(r"^(?P<text>.*?)(?: - at `\$(?P<path>[^`]*)`)?$", re.DOTALL)


def _msgspec_path(path: str) -> str:
    # "$.items[0].price" -> "items.0.price"
    parts = re.findall(r"\.([^.\[]+)|\[(\d+|'[^']*'|\"[^\"]*\")\]", path)
    return ".".join(name or index.strip("'\"") for name, index in parts) or "data"


def validate_model(schema: Any, data: Any) -> Any:
    """Validate ``data`` (decoded JSON) with a Pydantic model or msgspec Struct class.

    Returns:
        An instance of the model.

    Raises:
        InvalidData: with what is wrong, by field path.
    """
    library = model_library(schema)
    if library == "pydantic":
        pydantic = sys.modules["pydantic"]
        try:
            return schema.model_validate(data)
        except pydantic.ValidationError as exc:
            details: dict[str, str] = {}
            for error in exc.errors():
                path = ".".join(str(part) for part in error["loc"]) or "data"
                details.setdefault(path, str(error["msg"]))
            raise InvalidData(details) from None
    if library == "msgspec":
        msgspec = sys.modules["msgspec"]
        try:
            return msgspec.convert(data, type=schema)
        except msgspec.ValidationError as exc:
            match = _MSGSPEC_PATH.match(str(exc))
            assert match is not None
            text = match.group("text")
            parts = [_msgspec_path(match.group("path") or "")]
            missing = _MSGSPEC_MISSING.match(text)
            if missing is not None:  # the path names the object: name the field
                parts = [p for p in parts if p != "data"] + [missing.group(1)]
            raise InvalidData({".".join(parts): text}) from None
    raise ConfigurationError(f"{schema!r} is not a Pydantic model or a msgspec Struct")


# JSON Schema --------------------------------------------------------------------------------

_SCALARS: dict[Any, dict[str, Any]] = {
    int: {"type": "integer"},
    float: {"type": "number"},
    str: {"type": "string"},
    bool: {"type": "boolean"},
    type(None): {"type": "null"},
    bytes: {"type": "string"},
}


def _annotation_schema(annotation: Any, components: dict[str, Any], ref: str) -> dict[str, Any]:
    """JSON Schema for a type annotation of a dataclass field (best effort: ``{}`` when
    the type says nothing JSON can check)."""
    if annotation in _SCALARS:
        return dict(_SCALARS[annotation])
    if annotation is Any:
        return {}
    if isinstance(annotation, type) and (
        dataclasses.is_dataclass(annotation) or is_model(annotation)
    ):
        return json_schema(annotation, components, ref)
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        return {"anyOf": [_annotation_schema(arg, components, ref) for arg in args]}
    if origin is typing.Literal:
        return {"enum": list(args)}
    if origin in (list, set, frozenset, tuple) or annotation in (list, set, frozenset, tuple):
        items = args[0] if args else None
        if (origin or annotation) is tuple and not (len(args) == 2 and args[1] is Ellipsis):
            items = None  # a fixed-length tuple: draft 7 has no per-position items here
        schema: dict[str, Any] = {"type": "array"}
        if items is not None:
            schema["items"] = _annotation_schema(items, components, ref)
        return schema
    if origin is dict or annotation is dict:
        schema = {"type": "object"}
        if len(args) == 2:
            schema["additionalProperties"] = _annotation_schema(args[1], components, ref)
        return schema
    return {}


def _dataclass_schema(cls: type, components: dict[str, Any], ref: str) -> dict[str, Any]:
    name = cls.__name__
    if name not in components:
        components[name] = {}  # reserved first: a field may refer to its own class
        hints = typing.get_type_hints(cls)
        properties = {}
        required = []
        for field in dataclasses.fields(cls):
            properties[field.name] = _annotation_schema(hints.get(field.name), components, ref)
            if (
                field.default is dataclasses.MISSING
                and field.default_factory is dataclasses.MISSING
            ):
                required.append(field.name)
        schema: dict[str, Any] = {
            "title": name,
            "type": "object",
            "properties": properties,
            "additionalProperties": False,
        }
        if required:
            schema["required"] = required
        if cls.__doc__ and not cls.__doc__.startswith(f"{name}("):
            schema["description"] = cls.__doc__.strip()
        components[name] = schema
    return {"$ref": ref + name}


def json_schema(schema: Any, components: dict[str, Any], ref: str) -> dict[str, Any]:
    """JSON Schema (draft 7) describing what ``schema`` accepts.

    Args:
        schema: A typesystem ``Schema`` instance or field, a dataclass, a Pydantic
            model or a msgspec Struct class (``None``: anything).
        components: Named schemas that the result refers to are added here.
        ref: The prefix of those references (``"#/components/schemas/"``).

    Raises:
        ConfigurationError: for anything else.
    """
    if schema is None:
        return {}
    library = model_library(schema)
    if library == "pydantic":
        found = schema.model_json_schema(ref_template=ref + "{model}")
        components.update(found.pop("$defs", {}))
        components[schema.__name__] = found
        return {"$ref": ref + schema.__name__}
    if library == "msgspec":
        msgspec = sys.modules["msgspec"]
        (found,), defs = msgspec.json.schema_components([schema], ref_template=ref + "{name}")
        components.update(defs)
        return dict(found)
    if dataclasses.is_dataclass(schema) and isinstance(schema, type):
        return _dataclass_schema(schema, components, ref)
    if callable(getattr(schema, "validate_or_error", None)):
        from typesystem import to_json_schema

        described = to_json_schema(schema)
        return dict(described) if isinstance(described, dict) else {}
    raise ConfigurationError(f"cannot describe {schema!r} as JSON Schema")
