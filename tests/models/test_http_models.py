"""A view parameter annotated with a Pydantic model or msgspec Struct gets the JSON body."""

from __future__ import annotations

import msgspec
import pydantic
import pytest

from bocadillo import App, ConfigurationError, Request, Response, create_client


class Item(pydantic.BaseModel):
    name: str
    price: float = pydantic.Field(ge=0)
    tags: list[str] = []


class ItemStruct(msgspec.Struct):
    name: str
    price: float
    tags: list[str] = []


@pytest.mark.parametrize("model", [Item, ItemStruct])
def test_view_gets_the_validated_body_beside_path_and_query_parameters(model):
    app = App()

    async def create(req: Request, res: Response, shop: int, item, dry: bool = False):
        assert isinstance(item, model)
        res.status_code = 201
        res.json = {"shop": shop, "dry": dry, "name": item.name, "price": item.price}

    create.__annotations__["item"] = model  # a class, not a string to evaluate
    app.post("/shops/{shop:int}/items")(create)

    with create_client(app) as client:
        answer = client.post("/shops/3/items?dry=true", json={"name": "tea", "price": 2.5})
        assert answer.status_code == 201
        assert answer.json() == {"shop": 3, "dry": True, "name": "tea", "price": 2.5}


@pytest.mark.parametrize("model", [Item, ItemStruct])
@pytest.mark.parametrize(
    ("body", "path"),
    [
        ({"price": 1}, "name"),
        ({"name": "tea", "price": "free"}, "price"),
        ({"name": "tea", "price": 1, "tags": ["a", 5]}, "tags.1"),
        (["not", "an", "object"], "data"),
    ],
)
def test_invalid_body_answers_400_naming_the_field_path(model, body, path):
    app = App()
    calls = []

    async def create(req: Request, res: Response, item):
        calls.append(item)

    create.__annotations__["item"] = model
    app.post("/items")(create)

    with create_client(app) as client:
        answer = client.post("/items", json=body)
    assert answer.status_code == 400
    detail = answer.json()["detail"]
    assert list(detail) == [path], detail
    assert isinstance(detail[path], str) and detail[path]
    assert calls == []


def test_body_that_is_not_json_answers_400():
    app = App()

    @app.post("/items")
    async def create(req: Request, res: Response, item: Item):
        raise AssertionError("not called")

    with create_client(app) as client:
        answer = client.post(
            "/items", content=b"{not json", headers={"content-type": "application/json"}
        )
    assert answer.status_code == 400
    assert "Invalid JSON body" in answer.json()["detail"]


def test_two_body_models_are_refused_at_registration():
    app = App()
    with pytest.raises(ConfigurationError, match="only one parameter"):

        @app.post("/items")
        async def create(req: Request, res: Response, item: Item, other: ItemStruct):
            pass
