"""The documentation site in a real headless Chromium: built strictly, served over
loopback, and checked to load nothing from elsewhere, with search, code copy buttons and
the light/dark toggle working. Screenshots of the home page and the real-time guide land in
``artifacts/docs-screenshots/`` and in ``docs/screenshots/`` (committed: run this test after
changing those pages).
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait
from starlette.staticfiles import StaticFiles

from bocadillo import LiveServer

pytestmark = [pytest.mark.browser, pytest.mark.integration]

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
SCREENSHOTS = ROOT / "artifacts" / "docs-screenshots"
#: The committed copies, named as docs/ names them.
COMMITTED = {
    "home.png": ROOT / "docs/screenshots/docs-home.png",
    "realtime.png": ROOT / "docs/screenshots/docs-realtime.png",
}
WAIT = 20.0


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The site, built with ``mkdocs build --strict`` and served by a LiveServer."""
    out = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--quiet", "--site-dir", str(out)],
        cwd=ROOT,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=True,
        timeout=300,
    )
    server = LiveServer(StaticFiles(directory=out, html=True), lifespan="off")
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def driver() -> Iterator[webdriver.Chrome]:
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(f"{' and '.join(missing)} missing: apt-get install chromium chromium-driver")
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--window-size=1280,900",
    ):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    chrome = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield chrome
    finally:
        chrome.quit()


def wait_for(chrome: webdriver.Chrome, what: str, predicate: Any) -> Any:
    try:
        return WebDriverWait(chrome, WAIT, poll_frequency=0.05).until(predicate)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}") from None


def open_page(chrome: webdriver.Chrome, url: str) -> None:
    chrome.get(url)
    wait_for(
        chrome,
        "the page to load",
        lambda d: d.execute_script("return document.readyState") == "complete",
    )
    # Everything the page loaded came from the site itself.
    resources = chrome.execute_script(
        "return performance.getEntriesByType('resource').map(e => e.name)"
    )
    origin = url.split("/", 3)[:3]
    foreign = [r for r in resources if r.split("/", 3)[:3] != origin and not r.startswith("data:")]
    assert foreign == [], foreign
    entries: list[dict[str, Any]] = chrome.get_log("browser")  # type: ignore[no-untyped-call]
    errors = [e for e in entries if e["level"] == "SEVERE"]
    assert errors == [], errors


def test_docs_home_and_realtime_guide(site, driver):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    open_page(driver, site + "/")
    assert driver.find_element(By.CSS_SELECTOR, "h1").text == "Bocadillo"
    # Code blocks are highlighted at build time and get a copy button.
    wait_for(
        driver,
        "a copy button",
        lambda d: d.find_elements(By.CSS_SELECTOR, "button.md-code__button, button.md-clipboard"),
    )
    assert driver.find_elements(By.CSS_SELECTOR, ".highlight .k, .highlight .kn")
    screenshot(driver, "home.png")

    # The toggle switches to the dark scheme and back.
    def scheme() -> str:
        return str(
            driver.execute_script("return document.body.getAttribute('data-md-color-scheme')")
        )

    assert scheme() == "default"
    driver.find_element(By.CSS_SELECTOR, "label[for='__palette_1']").click()
    wait_for(driver, "the dark scheme", lambda d: scheme() == "slate")
    driver.find_element(By.CSS_SELECTOR, "label[for='__palette_0']").click()
    wait_for(driver, "the light scheme", lambda d: scheme() == "default")

    # Search, with the theme's own bundled index.
    box = driver.find_element(By.CSS_SELECTOR, "input.md-search__input")
    box.click()
    box.send_keys("backpressure")
    wait_for(
        driver,
        "search results",
        lambda d: d.find_elements(By.CSS_SELECTOR, ".md-search-result__item"),
    )

    open_page(driver, site + "/realtime/")
    assert driver.find_element(By.CSS_SELECTOR, "h1").text.startswith("The real-time hub")
    screenshot(driver, "realtime.png")

    # The "coming from" pages title the other frameworks' code blocks.
    open_page(driver, site + "/coming-from-socketio/")
    titles = {e.text for e in driver.find_elements(By.CSS_SELECTOR, ".highlight .filename")}
    assert titles == {"python-socketio", "Socket.IO client"}


def screenshot(driver: webdriver.Chrome, name: str) -> None:
    assert driver.save_screenshot(str(SCREENSHOTS / name))
    assert driver.save_screenshot(str(COMMITTED[name]))
