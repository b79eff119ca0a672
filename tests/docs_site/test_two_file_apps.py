"""The two-file apps of README.md and docs/realtime.md, run whole: ``app.py`` on a real
uvicorn, ``index.html`` in headless Chromium (with the client the app serves at
``/bocadillo/client.js``), and a Python client in the same room.

What a reader does: save the two files, serve ``app:app``, open the page, talk.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By
from websockets.sync.client import connect

from bocadillo import App, LiveServer
from tests.clients.test_client_browser import WAIT, chromium, wait_for
from tests.docs_examples import DOCS, ROOT, blocks

pytestmark = [pytest.mark.browser, pytest.mark.integration]
__all__ = ["chromium"]  # the fixture, used by name

PAGES = [
    pytest.param(ROOT, "README.md", id="README"),
    pytest.param(DOCS, "realtime.md", id="guide"),
]


def load_app(base: Path, page: str, folder: Path) -> App:
    """Save the page's ``file=`` blocks in ``folder`` and import its ``app.py``."""
    files = {path: source for _, path, source, _ in blocks(page, base=base) if path is not None}
    assert sorted(files) == ["app.py", "index.html"]
    for name, source in files.items():
        (folder / name).write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location(f"two_files_{page}", folder / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    app = module.app
    assert isinstance(app, App)
    return app


def receive(ws: Any, type: str) -> dict[str, Any]:
    """The next message of ``type`` (others, such as responses, are skipped), bounded."""
    deadline = time.monotonic() + WAIT
    while True:
        message = json.loads(ws.recv(timeout=max(0.0, deadline - time.monotonic())))
        if message["type"] == type:
            return dict(message)


@pytest.mark.parametrize(("base", "page"), PAGES)
def test_the_two_files_serve_a_room_chat(
    base: Path, page: str, tmp_path: Path, chromium: webdriver.Chrome
) -> None:
    app = load_app(base, page, tmp_path)
    with LiveServer(app) as server:
        chromium.get(server.url + "/")
        # The page has joined the lobby once the hub counts it there.
        wait_for(chromium, "the page in the lobby", lambda d: app.hub.local_members("lobby"))

        with connect(server.ws_url + "/ws") as python:
            python.send(json.dumps({"type": "join", "data": "lobby", "id": 1}))
            assert receive(python, "response") == {
                "type": "response",
                "data": {"members": 2},
                "id": 1,
            }

            # From Python to the page.
            say = {"room": "lobby", "text": "from python"}
            python.send(json.dumps({"type": "say", "data": say}))
            lines = "#lines li"
            wait_for(chromium, "python's line", lambda d: d.find_elements(By.CSS_SELECTOR, lines))
            assert chromium.find_element(By.CSS_SELECTOR, lines).text == "from python"
            assert receive(python, "said")["data"] == {"text": "from python"}

            # From the page to Python, through the form.
            chromium.find_element(By.ID, "text").send_keys("from the page")
            chromium.find_element(By.CSS_SELECTOR, "#form button").click()
            assert receive(python, "said")["data"] == {"text": "from the page"}
            wait_for(
                chromium,
                "the page's own line",
                lambda d: len(d.find_elements(By.CSS_SELECTOR, lines)) == 2,
            )
            shown = [li.text for li in chromium.find_elements(By.CSS_SELECTOR, lines)]
            assert shown == ["from python", "from the page"]
            assert chromium.find_element(By.ID, "text").get_attribute("value") == ""

        entries: list[dict[str, Any]] = chromium.get_log("browser")  # type: ignore[no-untyped-call]
        # No script error (the browser's own request for /favicon.ico may 404).
        errors = [e for e in entries if e["level"] == "SEVERE" and "favicon" not in e["message"]]
        assert errors == []


def test_the_readme_and_the_guide_start_from_the_same_app() -> None:
    def files(base: Path, page: str) -> dict[str | None, str]:
        return {path: source for _, path, source, _ in blocks(page, base=base) if path}

    assert files(ROOT, "README.md") == files(DOCS, "realtime.md")
