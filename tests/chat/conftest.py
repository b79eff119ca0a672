"""Fixtures of the example chat's tests."""

from __future__ import annotations

import os

import pytest


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No BOCADILLO_* variable of the outer environment leaks into the chat's settings."""
    for name in list(os.environ):
        if name.startswith("BOCADILLO_"):
            monkeypatch.delenv(name)
