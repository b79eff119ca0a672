"""Typed route and query parameters.

A :class:`ParameterPlan` is computed once, when a view is registered: it reads the view's
signature and decides, for every keyword parameter, where its value comes from (the route
path or the query string), how to convert it, and whether it may be omitted. Per request,
:meth:`ParameterPlan.resolve` only runs the converters it prepared.
"""

from __future__ import annotations
import __future__

import datetime as dt
import decimal
import enum
import inspect
import re
import types
import typing
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Union

import typesystem

from .errors import ConfigurationError, ParameterError
from .schemas import is_model

__all__ = ["ParameterError", "ParameterPlan", "converter_for", "view_signature"]

Converter = Callable[[str], Any]
_MISSING: Any = object()
#: What a ``bool`` parameter accepts, in any case: Bocadillo 0.18's spellings (its
#: typesystem ``Boolean``). ``yes``/``no`` are refused, as 0.18 refused them; settings
#: read from the environment have their own, wider parser (``config.py``).
_TRUE = frozenset({"true", "on", "1"})
_FALSE = frozenset({"false", "off", "0"})
#: What an ``int`` parameter accepts: an optional sign, ASCII digits, and an optional
#: fraction, which is dropped (``"4.2"`` is 4 and ``"-4.9"`` is -4, as in 0.18). No
#: exponent: ``"1e999999999"`` would ask for a billion-digit integer.
_INTEGER = re.compile(r"([+-]?[0-9]+)(?:\.[0-9]+)?")
#: Python's own default limit for ``int(text)``, applied on every Python version (the
#: limit came in 3.10.7 and 3.11): converting longer text takes quadratic time.
_MAX_INT_DIGITS = 4300


def _to_bool(value: str) -> bool:
    lowered = value.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("expected a boolean (true/false, on/off or 1/0)")


def _to_int(value: str) -> int:
    if value.isascii() and value.isdigit() and len(value) <= _MAX_INT_DIGITS:
        return int(value)  # the common case, without the regular expression
    match = _INTEGER.fullmatch(value)
    if match is None:
        raise ValueError("expected an integer")
    whole = match[1]
    if len(whole.lstrip("+-")) > _MAX_INT_DIGITS:
        raise ValueError(f"expected an integer of at most {_MAX_INT_DIGITS} digits")
    try:
        return int(whole)
    except ValueError:  # a lower limit set with sys.set_int_max_str_digits
        raise ValueError("expected an integer") from None


def _to_float(value: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise ValueError("expected a number") from None


def _to_decimal(value: str) -> decimal.Decimal:
    try:
        result = decimal.Decimal(value)
    except decimal.InvalidOperation:
        raise ValueError("expected a decimal number") from None
    if not result.is_finite():
        raise ValueError("expected a finite decimal number")
    return result


def _to_date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO 8601 date (YYYY-MM-DD)") from None


def _to_time(value: str) -> dt.time:
    try:
        return dt.time.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO 8601 time (HH:MM[:SS])") from None


def _to_datetime(value: str) -> dt.datetime:
    try:
        return dt.datetime.fromisoformat(value)
    except ValueError:
        raise ValueError("expected an ISO 8601 datetime (YYYY-MM-DDTHH:MM[:SS])") from None


def _identity(value: str) -> str:
    return value


#: Containers cannot be built from one string: a list comes from a repeated query parameter.
_UNCONVERTIBLE = (dict, list, tuple, set, frozenset, bytes, bytearray)
_SEQUENCES = (list, tuple, set, frozenset)

_BUILTIN: dict[Any, Converter] = {
    str: _identity,
    int: _to_int,
    float: _to_float,
    bool: _to_bool,
    decimal.Decimal: _to_decimal,
    dt.date: _to_date,
    dt.time: _to_time,
    dt.datetime: _to_datetime,
    Any: _identity,
    inspect.Parameter.empty: _identity,
}


def _field_converter(field: Any) -> Converter:
    def convert(value: str) -> Any:
        try:
            return field.validate(value)
        except typesystem.ValidationError as exc:
            raise ValueError(str(exc)) from None

    return convert


def _enum_converter(cls: type[enum.Enum]) -> Converter:
    # The raw value is a string, so non-string members (IntEnum...) match by their text.
    by_text = {str(member.value): member for member in cls}

    def convert(value: str) -> Any:
        try:
            return cls(value)
        except ValueError:
            if value in by_text:
                return by_text[value]
            choices = ", ".join(repr(member.value) for member in cls)
            raise ValueError(f"expected one of {choices}") from None

    return convert


def _class_converter(cls: type) -> Converter:
    def convert(value: str) -> Any:
        try:
            return cls(value)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"expected {cls.__name__}: {exc}") from None

    return convert


def _unwrap_optional(annotation: Any) -> tuple[Any, bool]:
    """Return ``(inner, nullable)`` for ``X | None`` / ``Optional[X]``."""
    origin = typing.get_origin(annotation)
    if origin is Union or origin is types.UnionType:
        args = [arg for arg in typing.get_args(annotation) if arg is not type(None)]
        if len(args) == 1:
            return args[0], len(args) != len(typing.get_args(annotation))
    return annotation, False


def converter_for(annotation: Any) -> Converter:
    """Return the function that turns a raw string into a value of ``annotation``.

    Raises:
        ConfigurationError: if the annotation cannot be converted from a string.
    """
    if isinstance(annotation, typesystem.Field):
        return _field_converter(annotation)
    annotation, _ = _unwrap_optional(annotation)
    if annotation in _BUILTIN:
        return _BUILTIN[annotation]
    if typing.get_origin(annotation) is Literal:
        allowed = {str(choice): choice for choice in typing.get_args(annotation)}

        def convert_literal(value: str) -> Any:
            if value not in allowed:
                raise ValueError(f"expected one of {', '.join(map(repr, allowed))}")
            return allowed[value]

        return convert_literal
    if annotation in _UNCONVERTIBLE:
        raise ConfigurationError(f"cannot convert a parameter to {annotation!r}")
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return _enum_converter(annotation)
        return _class_converter(annotation)
    raise ConfigurationError(f"cannot convert a parameter to {annotation!r}")


@dataclass(frozen=True)
class _Param:
    name: str
    in_path: bool
    convert: Converter
    many: bool
    default: Any  # _MISSING when required

    def resolve(self, raw: Any) -> Any:
        if not isinstance(raw, str):
            # Starlette's own path convertors ({pk:int}) have already converted it.
            raw = str(raw)
        return self.convert(raw)


def view_signature(func: Callable[..., Any]) -> inspect.Signature:
    """``func``'s signature with its annotations evaluated (modules may postpone them).

    In a module that postpones annotations (``from __future__ import annotations``), an
    annotation that cannot be evaluated is an error. Elsewhere a string annotation is one
    the author wrote as a string: if it names nothing, it is dropped and the parameter is
    read as a string, as Bocadillo 0.18 did.

    Raises:
        NameError: for an annotation that cannot be evaluated in a postponing module.
    """
    try:
        return inspect.signature(func, eval_str=True)
    except NameError:
        unwrapped = inspect.unwrap(func) if callable(func) else func
        code = getattr(unwrapped, "__code__", None)
        if code is None or code.co_flags & __future__.annotations.compiler_flag:
            raise
    signature = inspect.signature(func)
    namespace = dict(getattr(unwrapped, "__globals__", {}))
    params = []
    for param in signature.parameters.values():
        annotation = param.annotation
        if isinstance(annotation, str):
            try:
                # What inspect.signature(eval_str=True) does, one annotation at a time.
                annotation = eval(annotation, namespace)
            except (NameError, AttributeError, SyntaxError, TypeError):
                annotation = inspect.Parameter.empty
        params.append(param.replace(annotation=annotation))
    return signature.replace(parameters=params)


class ParameterPlan:
    """How to fill a view's keyword arguments from a request's path and query.

    Args:
        func: The view (a function or a bound method).
        leading: How many leading positional parameters the framework passes itself
            (2 for ``req, res``; 1 for ``ws``).
        route_params: Names of the parameters in the route pattern.
        exclude: Names filled by something else (for example providers).

    Raises:
        ConfigurationError: if the view cannot be called the way Bocadillo calls it, or
            an annotation cannot be converted.
    """

    def __init__(
        self,
        func: Callable[..., Any],
        *,
        leading: int,
        route_params: Collection[str],
        exclude: Collection[str] = (),
    ) -> None:
        name = getattr(func, "__qualname__", repr(func))
        try:
            signature = view_signature(func)
        except (NameError, TypeError, ValueError) as exc:
            raise ConfigurationError(f"cannot read the signature of {name}: {exc}") from exc
        params = list(signature.parameters.values())
        positional = [
            p
            for p in params
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.default is p.empty
        ]
        has_varargs = any(p.kind is p.VAR_POSITIONAL for p in params)
        if len(positional) < leading and not has_varargs:
            raise ConfigurationError(
                f"{name} must accept {leading} positional argument(s) "
                f"({'req, res' if leading == 2 else 'ws'}) before its parameters"
            )
        #: The view's parameters left to something else (providers).
        self.excluded = frozenset(p.name for p in params if p.name in exclude)
        skipped = {p.name for p in positional[:leading]}
        #: The names of the leading parameters the framework fills itself.
        self.skipped = frozenset(skipped)
        self.accepts_extra = any(p.kind is p.VAR_KEYWORD for p in params)
        self.route_params = frozenset(route_params)
        self._params: list[_Param] = []
        #: The parameter that receives the validated JSON body, and its model (a
        #: Pydantic model or msgspec Struct annotation), or None.
        self.body: tuple[str, Any] | None = None
        for p in params:
            if p.name in skipped or p.name in exclude:
                continue
            if p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD, p.POSITIONAL_ONLY):
                continue
            if is_model(p.annotation) and p.name not in route_params:
                if self.body is not None:
                    raise ConfigurationError(
                        f"{name}: only one parameter can receive the body "
                        f"({self.body[0]!r} and {p.name!r} are both models)"
                    )
                self.body = (p.name, p.annotation)
                continue
            self._params.append(self._plan(name, p))
        self.names = frozenset(p.name for p in self._params) | (
            {self.body[0]} if self.body else set()
        )
        untaken = self.route_params - self.names - self.excluded - skipped
        if untaken and not self.accepts_extra:
            listed = ", ".join(sorted(untaken))
            raise ConfigurationError(
                f"{name} does not take the route parameter(s) {listed}: add them to its "
                "signature, or rename the pattern's parameters to match the view's"
            )
        #: Whether any parameter comes from the query string (else it is never parsed).
        self.uses_query = any(not p.in_path for p in self._params)

    def _plan(self, view: str, p: inspect.Parameter) -> _Param:
        annotation: Any = p.annotation
        default: Any = _MISSING if p.default is p.empty else p.default
        if isinstance(default, typesystem.Field):
            annotation = default
            default = default.get_default_value() if default.has_default() else _MISSING
        elif isinstance(annotation, typesystem.Field) and default is _MISSING:
            if annotation.has_default():
                default = annotation.get_default_value()
        inner, nullable = _unwrap_optional(annotation)
        many = inner in _SEQUENCES or typing.get_origin(inner) in _SEQUENCES
        if many:
            args = typing.get_args(inner)
            inner = args[0] if args else str
        if nullable and default is _MISSING:
            default = None
        in_path = p.name in self.route_params
        if in_path and many:
            raise ConfigurationError(f"{view}: route parameter {p.name!r} cannot be a list")
        try:
            convert = converter_for(inner)
        except ConfigurationError as exc:
            raise ConfigurationError(f"{view}: parameter {p.name!r}: {exc}") from None
        return _Param(p.name, in_path, convert, many, default)

    def resolve(self, path_params: Mapping[str, Any], query_params: Any) -> dict[str, Any]:
        """Convert the parameters of one request.

        Args:
            path_params: The matched route parameters.
            query_params: A Starlette ``QueryParams`` (a multi-dict); may be ``None``
                when ``uses_query`` is false.

        Returns:
            The keyword arguments for the view.

        Raises:
            ParameterError: naming every missing or invalid parameter and why.
        """
        kwargs: dict[str, Any] = {}
        if not self._params and not self.accepts_extra:
            return kwargs
        errors: dict[str, str] = {}
        for param in self._params:
            try:
                if param.in_path:
                    kwargs[param.name] = param.resolve(path_params[param.name])
                elif param.many:
                    values = query_params.getlist(param.name)
                    if not values and param.default is not _MISSING:
                        kwargs[param.name] = param.default
                    elif not values:
                        errors[param.name] = "missing required query parameter"
                    else:
                        kwargs[param.name] = [param.resolve(v) for v in values]
                else:
                    raw = query_params.get(param.name, _MISSING)
                    if raw is not _MISSING:
                        kwargs[param.name] = param.resolve(raw)
                    elif param.default is not _MISSING:
                        kwargs[param.name] = param.default
                    else:
                        errors[param.name] = "missing required query parameter"
            except ValueError as exc:
                errors[param.name] = str(exc)
        if errors:
            raise ParameterError(errors)
        if self.accepts_extra:
            for key, value in path_params.items():
                if key != "__wildcard__":
                    kwargs.setdefault(key, value)
        return kwargs
