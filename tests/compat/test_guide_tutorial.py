"""The chatbot of Bocadillo 0.18's tutorial, laid out as the guide lays it out, runs unchanged.

The project is a package: ``settings.py`` names ``PROVIDER_MODULES``, ``providerconf.py``
declares the providers at module level, ``app.py`` registers the views (before any provider
exists), and ``asgi.py`` configures the app. The tests override the bot with a module-level
``@provider`` declared after the app was configured, as the tutorial's ``conftest.py`` does.
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx2 as httpx
import pytest
import websockets.sync.client

from bocadillo import LiveServer, create_client, provider

CHATBOT = {
    "chatbot/__init__.py": "",
    "chatbot/settings.py": """
        PROVIDER_MODULES = "chatbot.providerconf"
        _HELPER = "not a setting"
    """,
    "chatbot/bot.py": """
        class Diego:
            # Stands for the ChatterBot bot of the tutorial: it answers every message.
            def get_response(self, query):
                return f"Diego heard: {query}"


        diego = Diego()
    """,
    "chatbot/providerconf.py": """
        from contextlib import contextmanager

        from bocadillo import provider


        @provider(scope="app")
        async def diego():
            from .bot import diego

            return diego


        @provider(scope="app")
        async def clients():
            return set()


        @provider
        async def save_client(clients):
            @contextmanager
            def _save(ws):
                clients.add(ws)
                try:
                    yield ws
                finally:
                    clients.remove(ws)

            return _save
    """,
    "chatbot/app.py": """
        from bocadillo import App

        app = App()


        @app.websocket_route("/conversation")
        async def converse(ws, diego, save_client):
            with save_client(ws):
                async for message in ws:
                    response = diego.get_response(message)
                    await ws.send(str(response))


        @app.route("/client-count")
        async def client_count(req, res, clients):
            res.json = {"count": len(clients)}
    """,
    "chatbot/asgi.py": """
        from bocadillo import configure

        from . import settings
        from .app import app

        configure(app, settings)
    """,
}


@pytest.fixture
def chatbot(project: Callable[..., Path]) -> Any:
    project(CHATBOT)
    return importlib.import_module("chatbot.asgi").app


def test_tutorial_chatbot_discovers_its_providers_and_converses(chatbot):
    with create_client(chatbot) as client:
        with client.websocket_connect("/conversation") as ws:
            ws.send_text("Hi!")
            assert ws.receive_text() == "Diego heard: Hi!"
        assert client.get("/client-count").json() == {"count": 0}


def test_tutorial_settings_module_underscore_names_are_not_settings(chatbot):
    assert chatbot.settings.provider_modules == ["chatbot.providerconf"]
    assert "_helper" not in chatbot.settings


def test_tutorial_tests_override_diego_with_a_module_level_provider(chatbot):
    # tests/conftest.py of the tutorial: declared after `configure(app, settings)` ran.
    @provider
    async def diego():
        class EchoDiego:
            def get_response(self, query):
                return query

        return EchoDiego()

    with create_client(chatbot) as client:
        # test_connect_and_converse
        with client.websocket_connect("/conversation") as ws:
            ws.send_text("Hello!")
            assert ws.receive_text() == "Hello!"

        # test_client_count (the echo proves the view has saved its client)
        assert client.get("/client-count").json() == {"count": 0}
        with client.websocket_connect("/conversation") as ws:
            ws.send_text("ping")
            assert ws.receive_text() == "ping"
            assert client.get("/client-count").json() == {"count": 1}
        assert client.get("/client-count").json() == {"count": 0}


@pytest.mark.integration
def test_tutorial_chatbot_on_a_real_server(chatbot):
    with LiveServer(chatbot) as server:
        with websockets.sync.client.connect(server.ws_url("/conversation")) as first:
            with websockets.sync.client.connect(server.ws_url("/conversation")) as second:
                first.send("Where are you?")
                second.send("Hi there!")
                assert first.recv(timeout=10) == "Diego heard: Where are you?"
                assert second.recv(timeout=10) == "Diego heard: Hi there!"
                count = httpx.get(server.url("/client-count"), timeout=10).json()
                assert count == {"count": 2}
        # The server sees the clients leave a moment after they close: wait for it.
        deadline = time.monotonic() + 10
        while httpx.get(server.url("/client-count"), timeout=10).json() != {"count": 0}:
            assert time.monotonic() < deadline, "the clients were never removed"
            time.sleep(0.02)
