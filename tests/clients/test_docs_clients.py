"""docs/clients.md's examples, run whole: its app (``app.py``, ``index.html``) on a real
uvicorn, its page in headless Chromium and its Python script in a process of its own."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.webdriver.common.by import By

from bocadillo import LiveServer
from tests.clients.test_client_browser import WAIT, chromium, wait_for
from tests.docs_examples import blocks

pytestmark = [pytest.mark.browser, pytest.mark.integration]
__all__ = ["chromium"]  # the fixture, used by name


def test_the_examples_of_the_guide(tmp_path: Path, chromium: webdriver.Chrome) -> None:
    files = {path: source for _, path, source, _ in blocks("clients.md") if path is not None}
    assert sorted(files) == ["app.py", "index.html", "script.py"]
    for name, source in files.items():
        (tmp_path / name).write_text(source, encoding="utf-8")
    spec = importlib.util.spec_from_file_location("docs_clients_app", tmp_path / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    with LiveServer(module.app) as server:
        chromium.get(server.url + "/")
        state = chromium.find_element(By.ID, "state")
        wait_for(chromium, "online", lambda d: state.text == "online")
        chromium.find_element(By.ID, "text").send_keys("from the page")
        chromium.find_element(By.CSS_SELECTOR, "#form button").click()
        lines = "#lines li"
        wait_for(chromium, "the page's line", lambda d: d.find_elements(By.CSS_SELECTOR, lines))
        assert chromium.find_element(By.CSS_SELECTOR, lines).text == "from the page"

        script = subprocess.run(
            [sys.executable, str(tmp_path / "script.py"), server.ws_url + "/ws"],
            capture_output=True,
            text=True,
            timeout=WAIT,
            cwd=tmp_path,
        )
        assert (script.returncode, script.stdout) == (0, "hello\n"), script.stderr
        # The page is in the room too: it got the script's message.
        wait_for(
            chromium,
            "the script's line",
            lambda d: len(d.find_elements(By.CSS_SELECTOR, lines)) == 2,
        )
