"""The example chat end to end: real uvicorn, real headless Chromium, driven by Selenium.

Chromium and chromedriver are required, never optional: ``apt-get install chromium
chromium-driver`` (``.ci/run`` does it). Without them these tests fail.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException, TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from bocadillo import App
from example_chat.app import create_app

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SCREENSHOT = ARTIFACTS / "chat-browser.png"
WAIT = 20.0  # seconds; a reconnection after a restart backs off up to 8 s

T = TypeVar("T")


def chat_app() -> App:
    return create_app(rate_limit=None, shutdown_timeout=1.0)


@pytest.fixture
def browser() -> Iterator[Callable[[], webdriver.Chrome]]:
    """Open a headless Chromium page (its own browser, so its own session storage)."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: the browser tests need Chromium "
            "(apt-get install chromium chromium-driver; .ci/run installs them)"
        )
    drivers: list[webdriver.Chrome] = []

    def open_browser() -> webdriver.Chrome:
        options = Options()
        options.binary_location = str(CHROMIUM)
        for argument in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--window-size=1100,760",
        ):
            options.add_argument(argument)
        options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        driver = webdriver.Chrome(
            service=Service(executable_path=str(CHROMEDRIVER)), options=options
        )
        drivers.append(driver)
        return driver

    yield open_browser
    for driver in drivers:
        driver.quit()


def wait_for(driver: WebDriver, what: str, predicate: Callable[[WebDriver], T]) -> T:
    try:
        return WebDriverWait(driver, WAIT, poll_frequency=0.05).until(predicate)
    except TimeoutException:
        raise AssertionError(f"timed out waiting for {what}") from None


def texts(driver: WebDriver, css: str) -> list[str]:
    """The ``textContent`` of every element matching ``css``."""
    script = "return [...document.querySelectorAll(arguments[0])].map((e) => e.textContent);"
    result: list[str] = driver.execute_script(script, css)
    return result


def status(driver: WebDriver) -> str | None:
    value: str | None = driver.find_element(By.ID, "status").get_attribute("data-state")
    return value


def members(driver: WebDriver) -> list[str]:
    return texts(driver, "#members li")


def messages(driver: WebDriver) -> list[tuple[str, str]]:
    """``(author, text)`` of every chat message shown, read in one script: a message may
    arrive between two separate reads."""
    script = (
        "return [...document.querySelectorAll('#messages li.message')].map((li) =>"
        " [li.querySelector('.author').textContent, li.querySelector('.text').textContent]);"
    )
    pairs: list[list[str]] = driver.execute_script(script)
    return [(author, text) for author, text in pairs]


def enter(driver: WebDriver, url: str, name: str) -> None:
    """Open the chat, choose a username and wait until the page is in #general."""
    driver.get(url)
    name_input = driver.find_element(By.ID, "name-input")
    name_input.send_keys(name)
    name_input.send_keys(Keys.ENTER)
    wait_for(driver, f"{name} in #general", lambda d: texts(d, "#room-title") == ["#general"])
    assert status(driver) == "online"


def say(driver: WebDriver, text: str) -> None:
    box = driver.find_element(By.ID, "message-input")
    box.send_keys(text)
    driver.find_element(By.ID, "send-button").click()


def severe_console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry for entry in entries if entry["level"] == "SEVERE"]


def test_chat_browser_two_pages_messages_presence_typing_errors(live_server, browser):
    server = live_server(chat_app())
    ada, bob = browser(), browser()
    enter(ada, server.url, "ada")
    assert members(ada) == ["ada"]
    enter(bob, server.url, "bob")

    # Presence: ada sees bob join, and both see both online.
    wait_for(ada, "bob in ada's list", lambda d: members(d) == ["ada", "bob"])
    assert "bob joined #general" in texts(ada, "#messages li.notice")
    assert members(bob) == ["ada", "bob"]
    count = '#rooms li[data-room="general"] .count'
    wait_for(ada, "2 users in #general", lambda d: texts(d, count) == ["2"])

    # Typing: bob types, ada sees it; bob sends, ada sees the message and no indicator.
    bob.find_element(By.ID, "message-input").send_keys("hello ada")
    wait_for(ada, "typing indicator", lambda d: texts(d, "#typing") == ["bob is typing…"])
    bob.find_element(By.ID, "send-button").click()
    wait_for(ada, "bob's message", lambda d: ("bob", "hello ada") in messages(d))
    assert texts(ada, "#typing") == [""]
    wait_for(bob, "bob's own copy", lambda d: ("bob", "hello ada") in messages(d))
    wait_for(
        bob,
        "input cleared",
        lambda d: d.find_element(By.ID, "message-input").get_property("value") == "",
    )
    say(ada, "hi bob")
    wait_for(bob, "ada's answer", lambda d: ("ada", "hi bob") in messages(d))

    # An empty message goes to the server, whose invalid_data error the page shows.
    ada.find_element(By.ID, "send-button").click()
    error = ada.find_element(By.ID, "error")
    wait_for(ada, "the error", lambda d: error.is_displayed())
    assert error.get_attribute("data-code") == "invalid_data"
    assert error.text == "invalid_data: text: Must not be blank."

    ARTIFACTS.mkdir(exist_ok=True)
    assert ada.save_screenshot(str(SCREENSHOT))

    # Bob leaves the page: ada sees him go (even if his page sits in the back/forward
    # cache); he comes back with the Back button, under the same name.
    bob.get("about:blank")
    wait_for(ada, "bob gone", lambda d: members(d) == ["ada"])
    assert "bob left #general" in texts(ada, "#messages li.notice")
    bob.back()
    wait_for(ada, "bob back", lambda d: members(d) == ["ada", "bob"])
    wait_for(bob, "bob rejoined", lambda d: members(d) == ["ada", "bob"])
    assert severe_console_errors(ada) == []


def test_chat_browser_html_in_messages_renders_as_text(live_server, browser):
    server = live_server(chat_app())
    eve, bob = browser(), browser()
    enter(eve, server.url, "<i>eve</i>")
    enter(bob, server.url, "bob")
    attacks = [
        "<script>alert(1)</script>",
        '<img src=x onerror="window.__xss = 1; alert(2)">',
        "<b>bold?</b> &amp; <a href='javascript:alert(3)'>link</a>",
    ]
    for text in attacks:
        say(eve, text)
    for driver in (bob, eve):
        wait_for(driver, "the three messages", lambda d: len(messages(d)) == 3)
        assert messages(driver) == [("<i>eve</i>", text) for text in attacks]
        # Nothing was parsed as HTML, and nothing ran.
        found = driver.find_elements(
            By.CSS_SELECTOR, "#messages script, #messages img, #messages a"
        )
        assert found == []
        assert driver.find_elements(By.CSS_SELECTOR, "#messages i, #messages b") == []
        assert driver.execute_script("return window.__xss === undefined;") is True
        with pytest.raises(NoAlertPresentException):
            driver.switch_to.alert.text  # noqa: B018 (reading it is the check)
    assert "<i>eve</i>" in members(bob)
    ARTIFACTS.mkdir(exist_ok=True)
    assert bob.save_screenshot(str(ARTIFACTS / "chat-browser-html.png"))
    # A page joining later gets the same text through the history.
    late = browser()
    enter(late, server.url, "late")
    assert messages(late) == [("<i>eve</i>", text) for text in attacks]


def test_chat_browser_reconnects_after_a_server_restart(live_server, browser):
    server = live_server(chat_app())
    port = server.port
    ada, bob = browser(), browser()
    enter(ada, server.url, "ada")
    enter(bob, server.url, "bob")
    # Both move to a room created from the page.
    for driver in (ada, bob):
        room_input = driver.find_element(By.ID, "room-input")
        room_input.send_keys("after-hours")
        room_input.send_keys(Keys.ENTER)
        wait_for(driver, "#after-hours", lambda d: texts(d, "#room-title") == ["#after-hours"])
    wait_for(ada, "both in the room", lambda d: members(d) == ["ada", "bob"])
    say(bob, "before the restart")
    wait_for(ada, "the first message", lambda d: ("bob", "before the restart") in messages(d))

    server.stop()
    for driver in (ada, bob):
        wait_for(driver, "the page to notice", lambda d: status(d) != "online")
    assert texts(ada, "#status")[0].startswith("offline: reconnecting in")

    # A new process of the app on the same port: the pages come back by themselves.
    restarted = live_server(chat_app(), port=port)
    assert restarted.port == port
    for driver in (ada, bob):
        wait_for(driver, "reconnection", lambda d: status(d) == "online")
        wait_for(driver, "rejoined", lambda d: texts(d, "#room-title") == ["#after-hours"])
    wait_for(ada, "bob back in the room", lambda d: members(d) == ["ada", "bob"])
    wait_for(bob, "ada back in the room", lambda d: members(d) == ["ada", "bob"])

    say(ada, "after the restart")
    wait_for(
        bob, "a message after the restart", lambda d: ("ada", "after the restart") in messages(d)
    )
    # The new process has its own (empty) history: only the new message is shown.
    assert messages(bob) == [("ada", "after the restart")]


def test_chat_browser_rate_limit_is_shown_and_the_text_kept(live_server, browser):
    server = live_server(create_app(rate_limit=(5, 60.0), shutdown_timeout=1.0))
    ada = browser()
    enter(ada, server.url, "ada")  # the join is the first message of the window
    error = ada.find_element(By.ID, "error")
    box = ada.find_element(By.ID, "message-input")
    sent = 0
    while not error.is_displayed():
        assert sent < 10, "no rate_limited error after 10 messages"
        sent += 1
        say(ada, f"message {sent}")
        text = f"message {sent}"

        def answered(driver: WebDriver, text: str = text) -> bool:
            # Posted (shown, and the box cleared by the response) or refused.
            posted = ("ada", text) in messages(driver) and box.get_property("value") == ""
            return posted or bool(error.is_displayed())

        wait_for(ada, f"the answer to {text!r}", answered)
    assert error.get_attribute("data-code") == "rate_limited"
    assert error.text == "rate_limited: too many messages: slow down"
    # The refused message was not shown, and its text is still in the box to send later.
    assert ("ada", f"message {sent}") not in messages(ada)
    assert len(messages(ada)) == sent - 1
    assert box.get_property("value") == f"message {sent}"
