"""Pydantic v2 models and msgspec Structs as ``@app.socket`` schemas."""

from __future__ import annotations

from typing import Any

import msgspec
import pydantic
import pytest

from bocadillo import App, InvalidData, create_client
from bocadillo.schemas import is_model, model_library, validate_model


class Line(pydantic.BaseModel):
    sku: str
    quantity: int = pydantic.Field(gt=0)


class Order(pydantic.BaseModel):
    customer: str
    lines: list[Line]
    note: str | None = None


class LineStruct(msgspec.Struct):
    sku: str
    quantity: int


class OrderStruct(msgspec.Struct, forbid_unknown_fields=True):
    customer: str
    lines: list[LineStruct]
    note: str | None = None


def dump(value: Any) -> Any:
    if isinstance(value, pydantic.BaseModel):
        return {"class": type(value).__name__, **value.model_dump()}
    if isinstance(value, msgspec.Struct):
        return {"class": type(value).__name__, **msgspec.to_builtins(value)}
    raise AssertionError(f"not a model instance: {value!r}")


GOOD = {"customer": "ada", "lines": [{"sku": "tea", "quantity": 2}]}


@pytest.mark.parametrize(("model", "name"), [(Order, "Order"), (OrderStruct, "OrderStruct")])
def test_socket_handler_gets_a_model_instance(model, name):
    app = App()

    @app.socket("order", schema=model)
    def order(data):
        return dump(data)

    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "order", "data": GOOD, "id": 1})
        assert ws.receive_json() == {
            "type": "response",
            "data": {"class": name, **GOOD, "note": None},
            "id": 1,
        }


@pytest.mark.parametrize("model", [Order, OrderStruct])
@pytest.mark.parametrize(
    ("data", "path"),
    [
        ({"customer": "ada", "lines": [{"sku": "tea", "quantity": "lots"}]}, "lines.0.quantity"),
        ({"lines": []}, "customer"),
        ({"customer": "ada", "lines": [{"quantity": 1}]}, "lines.0"),
        ("not an object", "data"),
    ],
)
def test_socket_invalid_data_names_the_field_path_and_keeps_the_connection(model, data, path):
    app = App()
    calls: list[Any] = []

    @app.socket("order", schema=model)
    def order(data):
        calls.append(data)
        return "ok"

    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "order", "data": data, "id": "o1"})
        reply = ws.receive_json()
        assert reply["type"] == "error"
        assert reply["id"] == "o1"
        assert reply["data"]["code"] == "invalid_data"
        assert reply["data"]["message"].startswith(path), reply
        ws.send_json({"type": "order", "data": GOOD, "id": "o2"})
        assert ws.receive_json()["data"] == "ok"
    assert len(calls) == 1


def test_model_library_recognises_only_model_classes():
    assert model_library(Order) == "pydantic"
    assert model_library(OrderStruct) == "msgspec"
    assert not is_model(Order(customer="a", lines=[]))
    assert not is_model(dict)
    assert not is_model(None)


def test_pydantic_constraint_failure_is_a_model_error():
    with pytest.raises(InvalidData) as info:
        validate_model(Line, {"sku": "tea", "quantity": 0})
    assert list(info.value.details) == ["quantity"]
    assert "greater than 0" in info.value.details["quantity"]


def test_msgspec_unknown_field_is_refused_when_the_struct_forbids_it():
    with pytest.raises(InvalidData) as info:
        validate_model(OrderStruct, {**GOOD, "colour": "red"})
    assert "colour" in str(info.value)


def test_a_data_annotation_with_a_model_validates_like_schema():
    app = App()

    @app.socket("order")
    def order(data: Order) -> Any:
        return dump(data)

    @app.socket("struct")
    def struct(data: OrderStruct) -> Any:
        return dump(data)

    with create_client(app) as client, client.websocket_connect("/ws") as ws:
        ws.send_json({"type": "order", "data": GOOD, "id": 1})
        assert ws.receive_json()["data"] == {"class": "Order", **GOOD, "note": None}
        ws.send_json({"type": "struct", "data": {"lines": []}, "id": 2})
        reply = ws.receive_json()
        assert reply["data"]["code"] == "invalid_data"
        assert reply["data"]["message"].startswith("customer")
