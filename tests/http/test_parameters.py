"""Typed route and query parameters, seen through HTTP requests."""

from __future__ import annotations

import datetime as dt
import decimal
import enum
from typing import Literal, Optional

import pytest
import typesystem

from bocadillo import App, ConfigurationError, create_client


class Color(str, enum.Enum):
    RED = "red"
    GREEN = "green"


def _bad_request(detail: dict[str, str]) -> dict[str, object]:
    return {"error": "Bad Request", "status": 400, "detail": detail}


def test_parameters_route_parameters_are_converted_from_annotations():
    app = App()

    @app.route("/{s}/{i}/{f}/{b}/{d}")
    async def view(req, res, s: str, i: int, f: float, b: bool, d: decimal.Decimal):
        res.json = {
            "s": [type(s).__name__, s],
            "i": [type(i).__name__, i],
            "f": [type(f).__name__, f],
            "b": [type(b).__name__, b],
            "d": [type(d).__name__, str(d)],
        }

    with create_client(app) as client:
        response = client.get("/abc/42/2.5/on/3.10")

    assert response.status_code == 200
    assert response.json() == {
        "s": ["str", "abc"],
        "i": ["int", 42],
        "f": ["float", 2.5],
        "b": ["bool", True],
        "d": ["Decimal", "3.10"],
    }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("true", True),
        ("false", False),
        ("1", True),
        ("0", False),
        ("on", True),
        ("off", False),
        ("TRUE", True),
        ("False", False),
    ],
)
def test_parameters_bool_accepts_the_usual_spellings(raw, expected):
    app = App()

    @app.route("/")
    async def view(req, res, flag: bool):
        res.json = {"flag": flag}

    with create_client(app) as client:
        assert client.get("/", params={"flag": raw}).json() == {"flag": expected}


@pytest.mark.parametrize("raw", ["yes", "no", "YES", "12", ""])
def test_parameters_bool_refuses_yes_no_in_the_path_and_the_query(raw):
    # As Bocadillo 0.18 did; boolean settings read from the environment still take yes/no.
    app = App()

    @app.route("/path/{flag}")
    async def in_path(req, res, flag: bool):
        res.json = {"flag": flag}

    @app.route("/query")
    async def in_query(req, res, flag: bool):
        res.json = {"flag": flag}

    with create_client(app) as client:
        query = client.get("/query", params={"flag": raw})
        paths = [client.get(f"/path/{raw}")] if raw else []

    for response in [query, *paths]:
        assert response.status_code == 400
        assert response.json() == _bad_request(
            {"flag": "expected a boolean (true/false, on/off or 1/0)"}
        )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("4.2", 4), ("-4.9", -4), ("+12.50", 12), ("42", 42)],
)
def test_parameters_int_truncates_a_decimal_number_in_the_path_and_the_query(raw, expected):
    app = App()

    @app.route("/items/{pk}")
    async def view(req, res, pk: int, page: int = 1):
        res.json = {"pk": pk, "page": page}

    with create_client(app) as client:
        response = client.get(f"/items/{raw}", params={"page": raw})

    assert response.json() == {"pk": expected, "page": expected}


@pytest.mark.parametrize(
    "raw", ["nan", "inf", "1e3", "4.", "a1", "1_000", "%2042", "9" * 4301, "0x10"]
)
def test_parameters_int_refuses_anything_but_a_plain_decimal_number(raw):
    app = App()

    @app.route("/items/{pk}")
    async def view(req, res, pk: int):
        res.json = {"pk": pk}

    with create_client(app) as client:
        response = client.get(f"/items/{raw}")

    assert response.status_code == 400
    assert response.json()["detail"]["pk"].startswith("expected an integer")


def test_parameters_dates_and_times_are_parsed_from_iso_8601():
    app = App()

    @app.route("/events/{day}")
    async def view(req, res, day: dt.date, at: dt.time, since: dt.datetime):
        res.json = {
            "day": [type(day).__name__, day.isoformat()],
            "at": [type(at).__name__, at.isoformat()],
            "since": [type(since).__name__, since.isoformat()],
        }

    with create_client(app) as client:
        response = client.get(
            "/events/2024-02-29", params={"at": "13:45:10", "since": "2024-01-01T08:30:00"}
        )

    assert response.json() == {
        "day": ["date", "2024-02-29"],
        "at": ["time", "13:45:10"],
        "since": ["datetime", "2024-01-01T08:30:00"],
    }


def test_parameters_typesystem_field_as_annotation_validates():
    app = App()

    @app.route("/items/{x}")
    async def view(req, res, x: typesystem.Integer(minimum=0)):  # type: ignore[valid-type]
        res.json = {"x": x}

    with create_client(app) as client:
        ok = client.get("/items/5")
        negative = client.get("/items/-1")

    assert ok.json() == {"x": 5}
    assert negative.status_code == 400
    assert set(negative.json()["detail"]) == {"x"}
    assert "0" in negative.json()["detail"]["x"]


def test_parameters_typesystem_field_as_default_gives_default_and_validates():
    app = App()
    limit_field = typesystem.Integer(default=10, maximum=100)

    @app.route("/items")
    async def view(req, res, limit=limit_field):
        res.json = {"limit": limit}

    with create_client(app) as client:
        default = client.get("/items")
        given = client.get("/items", params={"limit": "25"})
        too_big = client.get("/items", params={"limit": "1000"})

    assert default.json() == {"limit": 10}
    assert given.json() == {"limit": 25}
    assert too_big.status_code == 400
    assert "100" in too_big.json()["detail"]["limit"]


def test_parameters_optional_query_parameter_defaults_to_none():
    app = App()

    @app.route("/")
    async def view(req, res, a: Optional[int], b: int | None):  # noqa: UP045
        res.json = {"a": a, "b": b}

    with create_client(app) as client:
        assert client.get("/").json() == {"a": None, "b": None}
        assert client.get("/", params={"a": "1", "b": "2"}).json() == {"a": 1, "b": 2}
        assert client.get("/", params={"a": "x"}).status_code == 400


def test_parameters_list_query_parameter_collects_repeated_values():
    app = App()

    @app.route("/")
    async def view(req, res, ids: list[int]):
        res.json = {"ids": ids}

    with create_client(app) as client:
        many = client.get("/?ids=1&ids=2&ids=3")
        one = client.get("/?ids=7")
        bad = client.get("/?ids=1&ids=two")
        missing = client.get("/")

    assert many.json() == {"ids": [1, 2, 3]}
    assert one.json() == {"ids": [7]}
    assert bad.status_code == 400
    assert bad.json() == _bad_request({"ids": "expected an integer"})
    assert missing.json() == _bad_request({"ids": "missing required query parameter"})


def test_parameters_list_query_parameter_with_default_is_optional():
    app = App()

    @app.route("/")
    async def view(req, res, tags: list[str] | None = None):
        res.json = {"tags": tags}

    with create_client(app) as client:
        assert client.get("/").json() == {"tags": None}
        assert client.get("/?tags=a&tags=b").json() == {"tags": ["a", "b"]}


def test_parameters_enum_and_literal_accept_only_their_values():
    app = App()

    @app.route("/paint/{color}")
    async def view(req, res, color: Color, finish: Literal["matte", "gloss"] = "matte"):
        res.json = {"color": color.name, "finish": finish}

    with create_client(app) as client:
        ok = client.get("/paint/green", params={"finish": "gloss"})
        default = client.get("/paint/red")
        bad_enum = client.get("/paint/blue")
        bad_literal = client.get("/paint/red", params={"finish": "satin"})

    assert ok.json() == {"color": "GREEN", "finish": "gloss"}
    assert default.json() == {"color": "RED", "finish": "matte"}
    assert bad_enum.status_code == 400
    assert bad_enum.json() == _bad_request({"color": "expected one of 'red', 'green'"})
    assert bad_literal.status_code == 400
    assert bad_literal.json() == _bad_request({"finish": "expected one of 'matte', 'gloss'"})


def test_parameters_failed_route_conversion_answers_400_naming_the_parameter():
    app = App()

    @app.route("/items/{pk}")
    async def view(req, res, pk: int):
        res.json = {"pk": pk}

    with create_client(app) as client:
        response = client.get("/items/abc")

    assert response.status_code == 400
    assert response.headers["content-type"] == "application/json"
    assert response.json() == _bad_request({"pk": "expected an integer"})


def test_parameters_missing_required_query_parameter_answers_400():
    app = App()

    @app.route("/search")
    async def view(req, res, q: str, page: int):
        res.json = {"q": q}

    with create_client(app) as client:
        response = client.get("/search", params={"page": "x"})

    assert response.status_code == 400
    assert response.json() == _bad_request(
        {"q": "missing required query parameter", "page": "expected an integer"}
    )


def test_parameters_400_as_plain_text_keeps_the_detail_as_json():
    app = App()

    @app.route("/items/{pk}")
    async def view(req, res, pk: int):
        pass

    with create_client(app) as client:
        response = client.get("/items/abc", headers={"accept": "text/plain"})

    assert response.status_code == 400
    assert response.headers["content-type"] == "text/plain"
    assert response.text == '{"pk":"expected an integer"}'


def test_parameters_default_makes_a_query_parameter_optional():
    app = App()

    @app.route("/search")
    async def view(req, res, q: str, page: int = 1):
        res.json = {"q": q, "page": page}

    with create_client(app) as client:
        assert client.get("/search?q=x").json() == {"q": "x", "page": 1}
        assert client.get("/search?q=x&page=3").json() == {"q": "x", "page": 3}


def test_parameters_unannotated_parameters_are_strings():
    app = App()

    @app.route("/{a}")
    async def view(req, res, a, b="default"):
        res.json = {"a": a, "b": b}

    with create_client(app) as client:
        assert client.get("/1?b=2").json() == {"a": "1", "b": "2"}
        assert client.get("/1").json() == {"a": "1", "b": "default"}


def test_parameters_var_keyword_receives_extra_route_parameters_as_strings():
    app = App()

    @app.route("/{year}/{month}/{slug}")
    async def view(req, res, year: int, **kwargs):
        res.json = {"year": year, "kwargs": kwargs}

    with create_client(app) as client:
        response = client.get("/2024/05/hello")

    assert response.json() == {"year": 2024, "kwargs": {"month": "05", "slug": "hello"}}


def test_parameters_starlette_convertor_in_pattern_is_honoured():
    app = App()

    @app.route("/items/{pk:int}")
    async def view(req, res, pk: int):
        res.json = {"pk": pk}

    with create_client(app) as client:
        assert client.get("/items/12").json() == {"pk": 12}
        assert client.get("/items/abc").status_code == 404


def test_parameters_unconvertible_annotation_fails_at_registration():
    app = App()
    calls: list[str] = []

    with pytest.raises(ConfigurationError, match="'where'"):

        @app.route("/")
        async def view(req, res, where: dict[str, int]):
            calls.append("called")

    # Nothing was registered: the app still answers 404 and the view never ran.
    with create_client(app) as client:
        assert client.get("/").status_code == 404
    assert calls == []


def test_parameters_list_route_parameter_fails_at_registration():
    app = App()

    with pytest.raises(ConfigurationError, match="cannot be a list"):

        @app.route("/{ids}")
        async def view(req, res, ids: list[int]):
            pass


def test_parameters_unresolvable_annotation_fails_at_registration():
    app = App()

    async def view(req, res, x: Undefined):  # type: ignore[name-defined]  # noqa: F821
        pass

    with pytest.raises(ConfigurationError, match="signature"):
        app.route("/")(view)


def test_parameters_class_based_view_methods_are_planned_at_registration():
    app = App()

    class Item:
        async def get(self, req, res, pk: int):
            pass

        async def put(self, req, res, pk: int, body: dict[str, int]):
            pass

    with pytest.raises(ConfigurationError, match="'body'"):
        app.route("/items/{pk}")(Item)
