"""The public surface: ``bocadillo.__all__`` is sorted, complete and importable."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import bocadillo

DOCUMENTED = {
    "App",
    "configure",
    "settings",
    "Request",
    "Response",
    "WebSocket",
    "WebSocketDisconnect",
    "HTTPError",
    "Redirect",
    "Recipe",
    "provider",
    "useprovider",
    "before",
    "after",
    "Templates",
    "server_event",
    "create_client",
    "LiveServer",
}


def test_all_is_sorted_and_unique():
    assert list(bocadillo.__all__) == sorted(set(bocadillo.__all__))


def test_all_names_are_importable():
    for name in bocadillo.__all__:
        assert getattr(bocadillo, name) is not None, name


def test_documented_names_are_exported():
    assert DOCUMENTED <= set(bocadillo.__all__)


def _modules() -> list[str]:
    return [
        info.name
        for info in pkgutil.walk_packages(bocadillo.__path__, prefix="bocadillo.")
        if not info.name.split(".")[-1].startswith("_")
    ]


@pytest.mark.parametrize("module_name", _modules())
def test_every_module_declares_all(module_name):
    module = importlib.import_module(module_name)
    assert hasattr(module, "__all__"), f"{module_name} has no __all__"
    for name in module.__all__:
        assert hasattr(module, name), f"{module_name}.__all__ names missing {name!r}"


def test_websocket_disconnect_is_starlettes_class():
    from starlette.websockets import WebSocketDisconnect

    assert bocadillo.WebSocketDisconnect is WebSocketDisconnect


def test_errors_inherit_builtin_categories():
    assert issubclass(bocadillo.ConfigurationError, ValueError)
    assert issubclass(bocadillo.ExpectedAsync, TypeError)
    assert issubclass(bocadillo.InvalidState, RuntimeError)
    assert issubclass(bocadillo.UnknownConnection, LookupError)
    assert issubclass(bocadillo.BackendUnavailable, ConnectionError)
    assert issubclass(bocadillo.MissingDependency, ImportError)
    assert issubclass(bocadillo.EnvelopeError, ValueError)
