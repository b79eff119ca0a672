"""converter_for and ParameterPlan, table-style: no event loop, no requests."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
import uuid
from typing import Any, Literal, Optional, Union

import pytest
import typesystem
from starlette.datastructures import QueryParams

from bocadillo import ConfigurationError
from bocadillo.converters import ParameterError, ParameterPlan, converter_for


class Color(str, enum.Enum):
    RED = "red"
    BLUE = "blue"


class Level(enum.IntEnum):
    LOW = 1
    HIGH = 2


# converter_for ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("annotation", "raw", "expected"),
    [
        (str, "abc", "abc"),
        (Any, "abc", "abc"),
        (int, "42", 42),
        (int, "-7", -7),
        (int, "+7", 7),
        (int, "007", 7),
        # A decimal number is truncated toward zero, as Bocadillo 0.18 did.
        (int, "4.2", 4),
        (int, "4.9", 4),
        (int, "-4.9", -4),
        (int, "-0.5", 0),
        (int, "12.000", 12),
        (int, "9" * 4300, int("9" * 4300)),
        (int, "-" + "9" * 4300 + ".5", -int("9" * 4300)),
        (float, "2.5", 2.5),
        (float, "3", 3.0),
        (bool, "true", True),
        (bool, "false", False),
        (bool, "1", True),
        (bool, "0", False),
        (bool, "on", True),
        (bool, "off", False),
        (bool, "TRUE", True),
        (bool, "False", False),
        (bool, "ON", True),
        (decimal.Decimal, "3.10", decimal.Decimal("3.10")),
        (dt.date, "2024-02-29", dt.date(2024, 2, 29)),
        (dt.time, "13:45", dt.time(13, 45)),
        (dt.time, "13:45:10", dt.time(13, 45, 10)),
        (dt.datetime, "2024-01-01T08:30:00", dt.datetime(2024, 1, 1, 8, 30)),
        (
            dt.datetime,
            "2024-01-01T08:30:00+02:00",
            dt.datetime(2024, 1, 1, 8, 30, tzinfo=dt.timezone(dt.timedelta(hours=2))),
        ),
        (Optional[int], "5", 5),  # noqa: UP045
        (int | None, "5", 5),
        (Color, "blue", Color.BLUE),
        (Level, "2", Level.HIGH),
        (Literal["a", "b"], "b", "b"),
        (Literal[1, 2], "2", 2),
        (
            uuid.UUID,
            "12345678-1234-5678-1234-567812345678",
            uuid.UUID(int=0x12345678123456781234567812345678),
        ),
        (typesystem.Integer(minimum=0), "5", 5),
        (typesystem.String(max_length=3), "abc", "abc"),
        (typesystem.Boolean(), "true", True),
    ],
)
def test_converter_for_converts_valid_strings(annotation, raw, expected):
    result = converter_for(annotation)(raw)

    assert result == expected
    assert type(result) is type(expected)


@pytest.mark.parametrize(
    ("annotation", "raw", "reason"),
    [
        (int, "", "expected an integer"),
        (int, "a1", "expected an integer"),
        (int, "1e3", "expected an integer"),
        (int, "1e999999999", "expected an integer"),
        (int, "4.2e1", "expected an integer"),
        (int, "nan", "expected an integer"),
        (int, "inf", "expected an integer"),
        (int, "-Infinity", "expected an integer"),
        (int, "4.", "expected an integer"),
        (int, ".5", "expected an integer"),
        (int, ".", "expected an integer"),
        (int, "-", "expected an integer"),
        (int, "--4", "expected an integer"),
        (int, "4.2.3", "expected an integer"),
        (int, " 42", "expected an integer"),
        (int, "42 ", "expected an integer"),
        (int, "1_000", "expected an integer"),
        (int, "\u0664\u0662", "expected an integer"),  # Arabic-Indic 42: int() reads it
        (int, "0x1f", "expected an integer"),
        (int, "9" * 4301, "expected an integer of at most 4300 digits"),
        (int, "+" + "0" * 4301 + ".5", "expected an integer of at most 4300 digits"),
        (bool, "yes", "expected a boolean"),
        (bool, "no", "expected a boolean"),
        (bool, "12", "expected a boolean"),
        (bool, "", "expected a boolean"),
        (bool, " true ", "expected a boolean"),
        (float, "abc", "expected a number"),
        (bool, "maybe", "expected a boolean"),
        (decimal.Decimal, "abc", "expected a decimal number"),
        (decimal.Decimal, "NaN", "expected a finite decimal number"),
        (decimal.Decimal, "Infinity", "expected a finite decimal number"),
        (dt.date, "2023-02-29", "expected an ISO 8601 date"),
        (dt.time, "25:00", "expected an ISO 8601 time"),
        (dt.datetime, "yesterday", "expected an ISO 8601 datetime"),
        (Color, "green", "expected one of 'red', 'blue'"),
        (Level, "3", "expected one of 1, 2"),
        (Literal["a", "b"], "c", "expected one of 'a', 'b'"),
        (uuid.UUID, "not-a-uuid", "expected UUID"),
        (typesystem.Integer(minimum=0), "-1", "0"),
        (typesystem.String(max_length=3), "abcd", "3"),
    ],
)
def test_converter_for_rejects_invalid_strings_with_a_reason(annotation, raw, reason):
    with pytest.raises(ValueError) as info:
        converter_for(annotation)(raw)

    assert reason in str(info.value)
    assert not isinstance(info.value, ConfigurationError)


@pytest.mark.parametrize(
    "annotation",
    [
        dict,
        dict[str, int],
        list,
        bytes,
        Union[int, str],  # noqa: UP007
        int | str,
        "int",
        42,
    ],
)
def test_converter_for_refuses_unconvertible_annotations(annotation):
    with pytest.raises(ConfigurationError, match="cannot convert"):
        converter_for(annotation)


# ParameterPlan ---------------------------------------------------------------------------


def _plan(func, *route_params: str, leading: int = 2) -> ParameterPlan:
    return ParameterPlan(func, leading=leading, route_params=route_params)


async def typed_view(req, res, pk: int, q: str, page: int = 1, tags: list[int] | None = None):
    pass


@pytest.mark.parametrize(
    ("path", "query", "expected"),
    [
        ({"pk": "3"}, "q=x", {"pk": 3, "q": "x", "page": 1, "tags": None}),
        ({"pk": "3"}, "q=x&page=2", {"pk": 3, "q": "x", "page": 2, "tags": None}),
        ({"pk": "3"}, "q=x&tags=1&tags=2", {"pk": 3, "q": "x", "page": 1, "tags": [1, 2]}),
        ({"pk": 3}, "q=", {"pk": 3, "q": "", "page": 1, "tags": None}),
        ({"pk": "3"}, "q=a&q=b", {"pk": 3, "q": "b", "page": 1, "tags": None}),
        ({"pk": "3"}, "q=x&unknown=1", {"pk": 3, "q": "x", "page": 1, "tags": None}),
    ],
)
def test_parameter_plan_resolves_path_and_query(path, query, expected):
    plan = _plan(typed_view, "pk")

    assert plan.resolve(path, QueryParams(query)) == expected


@pytest.mark.parametrize(
    ("path", "query", "errors"),
    [
        ({"pk": "x"}, "q=x", {"pk": "expected an integer"}),
        ({"pk": "3"}, "", {"q": "missing required query parameter"}),
        (
            {"pk": "x"},
            "page=two&tags=1&tags=b",
            {
                "pk": "expected an integer",
                "q": "missing required query parameter",
                "page": "expected an integer",
                "tags": "expected an integer",
            },
        ),
    ],
)
def test_parameter_plan_reports_every_bad_parameter(path, query, errors):
    plan = _plan(typed_view, "pk")

    with pytest.raises(ParameterError) as info:
        plan.resolve(path, QueryParams(query))

    assert info.value.errors == errors
    assert isinstance(info.value, ValueError)


def test_parameter_plan_names_the_parameters_it_fills():
    plan = _plan(typed_view, "pk")

    assert plan.names == {"pk", "q", "page", "tags"}
    assert plan.accepts_extra is False


def test_parameter_plan_typesystem_field_default_is_optional():
    limit_field = typesystem.Integer(default=10, maximum=100)

    async def view(req, res, limit=limit_field):
        pass

    plan = _plan(view)

    assert plan.resolve({}, QueryParams("")) == {"limit": 10}
    assert plan.resolve({}, QueryParams("limit=20")) == {"limit": 20}
    with pytest.raises(ParameterError) as info:
        plan.resolve({}, QueryParams("limit=101"))
    assert set(info.value.errors) == {"limit"}


def test_parameter_plan_typesystem_field_annotation_without_default_is_required():
    async def view(req, res, x: typesystem.Integer(minimum=0)):  # type: ignore[valid-type]
        pass

    plan = _plan(view)

    assert plan.resolve({}, QueryParams("x=0")) == {"x": 0}
    with pytest.raises(ParameterError) as info:
        plan.resolve({}, QueryParams(""))
    assert info.value.errors == {"x": "missing required query parameter"}


def test_parameter_plan_bare_list_collects_strings():
    async def view(req, res, names: list):  # type: ignore[type-arg]
        pass

    plan = _plan(view)

    assert plan.resolve({}, QueryParams("names=ab&names=cd")) == {"names": ["ab", "cd"]}


def test_parameter_plan_var_keyword_gets_extra_route_parameters():
    async def view(req, res, year: int, **kwargs):
        pass

    plan = _plan(view, "year", "slug")

    assert plan.accepts_extra is True
    assert plan.resolve({"year": "2024", "slug": "hi"}, QueryParams("x=1")) == {
        "year": 2024,
        "slug": "hi",
    }


def test_parameter_plan_skips_leading_positional_parameters():
    async def ws_view(ws, room: str):
        pass

    plan = _plan(ws_view, "room", leading=1)

    assert plan.names == {"room"}
    assert plan.resolve({"room": "lobby"}, QueryParams("")) == {"room": "lobby"}


def test_parameter_plan_reads_postponed_annotations():
    # This module uses ``from __future__ import annotations``: every annotation is a string.
    async def view(req, res, when: dt.date):
        pass

    assert view.__annotations__["when"] == "dt.date"
    assert _plan(view).resolve({}, QueryParams("when=2024-05-01")) == {"when": dt.date(2024, 5, 1)}


def test_parameter_plan_exclude_leaves_parameters_to_someone_else():
    async def view(req, res, db: dict[str, int], q: str):
        pass

    plan = ParameterPlan(view, leading=2, route_params=(), exclude=("db",))

    assert plan.names == {"q"}


@pytest.mark.parametrize(
    ("source", "route_params", "message"),
    [
        ("async def view(req, res, x: dict[str, int]): pass", (), "'x'"),
        ("async def view(req, res, x: int | str): pass", (), "'x'"),
        ("async def view(req, res, ids: list[int]): pass", ("ids",), "cannot be a list"),
        ("async def view(req, res, x: Missing): pass", (), "signature"),
        ("async def view(req): pass", (), "2 positional"),
    ],
)
def test_parameter_plan_refuses_bad_views_at_build_time(source, route_params, message):
    namespace: dict[str, Any] = {}
    exec(f"from __future__ import annotations\n{source}", namespace)

    with pytest.raises(ConfigurationError, match=message):
        _plan(namespace["view"], *route_params)
