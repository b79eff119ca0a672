"""The JavaScript client in headless Chromium, imported from the app itself
(``/bocadillo/client.js``) by a page with no tooling: requests, a room, a gap resumed
after the server closed the socket, and a server restart.

Chromium and chromedriver are required, never optional (``.ci/run`` installs them).
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.ui import WebDriverWait

from bocadillo import App, LiveServer
from tests.clients.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WAIT = 20.0
T = TypeVar("T")

PAGE = """<!doctype html>
<meta charset="utf-8">
<title>client</title>
<script type="module">
import { connect } from "/bocadillo/client.js";
const client = connect("/ws", { minDelay: 50, maxDelay: 500, restartDelay: 200 });
const seen = { messages: [], events: [] };
client.on("*", (data, message) => seen.messages.push(message));
for (const name of ["open", "closed", "reconnecting", "resumed"]) {
  client.onEvent(name, (detail) => seen.events.push([name, detail]));
}
Object.assign(window, { client, seen });
</script>
"""


def page_app() -> App:
    app = create_app()

    @app.route("/")
    async def page(req: Any, res: Any) -> None:
        res.html = PAGE

    return app


@pytest.fixture
def chromium() -> Iterator[webdriver.Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: the browser tests need Chromium "
            "(apt-get install chromium chromium-driver; .ci/run installs them)"
        )
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless", "--no-sandbox", "--disable-gpu"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: webdriver.Chrome, what: str, predicate: Callable[[Any], T]) -> T:
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(predicate)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}") from None


def run(driver: webdriver.Chrome, expression: str) -> Any:
    """Await ``expression`` (a promise) in the page; its value, or ``{"error": code}``."""
    script = (
        "const done = arguments[arguments.length - 1];"
        f"Promise.resolve({expression}).then(done, (e) => done({{error: e.code}}));"
    )
    return driver.execute_async_script(script)


def seen(driver: webdriver.Chrome, what: str) -> Any:
    return driver.execute_script(f"return window.seen && window.seen.{what};")


def events(driver: webdriver.Chrome, name: str) -> list[Any]:
    found = seen(driver, "events") or []
    return [detail for event, detail in found if event == name]


def news(driver: webdriver.Chrome) -> list[list[int]]:
    messages = seen(driver, "messages") or []
    return [[m["offset"], m["data"]["n"]] for m in messages if m["type"] == "news"]


def post(url: str) -> Any:
    request = urllib.request.Request(url, method="POST")
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        return json.loads(response.read())


def test_client_in_chromium(chromium: webdriver.Chrome) -> None:
    chromium.set_script_timeout(WAIT)
    server = LiveServer(page_app())
    server.start()
    try:
        chromium.get(server.url + "/")
        wait_for(chromium, "open", lambda d: events(d, "open"))
        assert run(chromium, "client.request('add', {a: 1, b: 2})") == 3
        assert run(chromium, "client.request('nope')") == {"error": "unknown_type"}
        joined = run(chromium, "client.join('news')")
        post(server.url + "/control/publish/news/2")
        wait_for(chromium, "two news", lambda d: len(news(d)) == 2)

        # The server closes the socket, then publishes 3 the page misses: resumed, exact.
        post(server.url + "/control/kick?room=news&count=3")
        wait_for(chromium, "resumed", lambda d: events(d, "resumed"))
        assert events(chromium, "closed")[0]["code"] == 1012
        assert events(chromium, "resumed")[0]["rooms"]["news"] == {
            "recovered": True,
            "epoch": joined["epoch"],
            "offset": 5,
        }
        assert news(chromium) == [[1, 0], [2, 1], [3, 0], [4, 1], [5, 2]]

        # A restart on the same address: back, the room resumed (another epoch).
        server.stop()
        server = LiveServer(page_app(), port=server.port)
        server.start()
        wait_for(chromium, "resumed again", lambda d: len(events(d, "resumed")) == 2)
        after = events(chromium, "resumed")[1]["rooms"]["news"]
        assert after["recovered"] is False and after["epoch"] != joined["epoch"]
        post(server.url + "/control/publish/news/1")
        wait_for(chromium, "news after the restart", lambda d: len(news(d)) == 6)
        assert news(chromium)[-1] == [after["offset"] + 1, 0]
        assert run(chromium, "client.request('add', {a: 2, b: 2})") == 4
    finally:
        server.stop()
