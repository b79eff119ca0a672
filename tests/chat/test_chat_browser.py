"""The example chat end to end: real uvicorn, real headless Chromium, driven by Selenium,
at desktop size and at phone size (390x844). The screenshots of docs/chat.md are taken here.

Chromium and chromedriver are required, never optional: ``apt-get install chromium
chromium-driver`` (``.ci/run`` does it). Without them these tests fail.
"""

from __future__ import annotations

import json
import urllib.request
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
from example_chat.app import RATE_LIMIT, create_app

pytestmark = [pytest.mark.browser, pytest.mark.integration]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
SCREENSHOT = ARTIFACTS / "chat-browser.png"
DOCS = Path(__file__).resolve().parents[2] / "docs"
PHONE = (390, 844)
WAIT = 20.0  # seconds; a reconnection after a restart backs off up to 8 s

T = TypeVar("T")


def chat_app(**settings: Any) -> App:
    """The chat, with a route that closes a person's socket from the server's side (code
    1013 and a ``retry=`` reason: the page waits that long before it reconnects)."""
    settings.setdefault("rate_limit", None)
    settings.setdefault("shutdown_timeout", 1.0)
    app = create_app(**settings)

    @app.route("/test/drop/{name}", methods=["POST"])
    async def drop(req: Any, res: Any, name: str) -> None:
        gone = [m["id"] for m in await app.hub.presence("general") if m["user"] == {"name": name}]
        for conn_id in gone:
            await app.hub.disconnect(conn_id, 1013, "dropped by the test; retry=4")
        res.json = {"dropped": len(gone)}

    return app


@pytest.fixture
def browser() -> Iterator[Callable[..., webdriver.Chrome]]:
    """Open a headless Chromium page (its own browser, so its own session storage);
    ``phone=True`` emulates a 390x844 phone."""
    missing = [str(path) for path in (CHROMIUM, CHROMEDRIVER) if not path.exists()]
    if missing:
        pytest.fail(
            f"{' and '.join(missing)} missing: the browser tests need Chromium "
            "(apt-get install chromium chromium-driver; .ci/run installs them)"
        )
    drivers: list[webdriver.Chrome] = []

    def open_browser(*, phone: bool = False) -> webdriver.Chrome:
        options = Options()
        options.binary_location = str(CHROMIUM)
        for argument in (
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--hide-scrollbars",
            "--window-size=1100,760",
        ):
            options.add_argument(argument)
        if phone:
            width, height = PHONE
            metrics = {"width": width, "height": height, "pixelRatio": 2, "touch": True}
            options.add_experimental_option("mobileEmulation", {"deviceMetrics": metrics})
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
    """The connection state the page shows: online, connecting or reconnecting."""
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
    chat = driver.find_element(By.ID, "chat")
    wait_for(driver, f"{name} in the chat", lambda d: chat.is_displayed())
    assert texts(driver, "#room-title") == ["#general"]
    assert status(driver) == "online"


def say(driver: WebDriver, text: str) -> None:
    box = driver.find_element(By.ID, "message-input")
    box.send_keys(text)
    driver.find_element(By.ID, "send-button").click()


def severe_console_errors(driver: webdriver.Chrome) -> list[dict[str, Any]]:
    entries: list[dict[str, Any]] = driver.get_log("browser")  # type: ignore[no-untyped-call]
    return [entry for entry in entries if entry["level"] == "SEVERE"]


def notice(driver: WebDriver) -> str:
    bar = driver.find_element(By.ID, "notice")
    return bar.text if bar.is_displayed() else ""


def test_chat_browser_two_pages_messages_presence_typing_errors(live_server, browser):
    server = live_server(chat_app())
    ada, bob = browser(), browser()
    enter(ada, server.url, "ada")
    assert members(ada) == ["ada"]
    # An empty room says so.
    assert ada.find_element(By.ID, "empty").is_displayed()
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
    assert not ada.find_element(By.ID, "empty").is_displayed()
    wait_for(bob, "bob's own copy", lambda d: ("bob", "hello ada") in messages(d))
    wait_for(
        bob,
        "input cleared",
        lambda d: d.find_element(By.ID, "message-input").get_property("value") == "",
    )
    # Consecutive messages of one author are grouped; one's own are set apart.
    say(bob, "see https://example.com/docs?x=1, and <b>this</b>")
    wait_for(ada, "bob's second message", lambda d: len(messages(d)) == 2)
    classes = ada.execute_script(
        'return [...document.querySelectorAll("#messages li.message")].map((li) => li.className);'
    )
    assert classes == ["message", "message grouped"]
    wait_for(bob, "bob's two messages", lambda d: len(messages(d)) == 2)
    assert len(bob.find_elements(By.CSS_SELECTOR, "#messages li.message.mine")) == 2
    assert ada.find_elements(By.CSS_SELECTOR, "#messages li.message.mine") == []
    # A link is clickable and safe; the rest stays text.
    link = ada.find_element(By.CSS_SELECTOR, "#messages li.message a")
    assert link.get_attribute("href") == "https://example.com/docs?x=1"
    assert link.get_attribute("rel") == "noopener noreferrer"
    assert ada.find_elements(By.CSS_SELECTOR, "#messages b") == []
    say(ada, "hi bob")
    wait_for(bob, "ada's answer", lambda d: ("ada", "hi bob") in messages(d))
    # Timestamps do not wrap.
    heights = ada.execute_script(
        'return [...document.querySelectorAll("#messages .time")].map((t) => t.offsetHeight);'
    )
    assert len({h for h in heights if h}) == 1  # grouped ones are hidden (0)

    ARTIFACTS.mkdir(exist_ok=True)
    assert ada.save_screenshot(str(SCREENSHOT))
    assert ada.save_screenshot(str(DOCS / "chat-desktop.png"))

    # Bob leaves the page: ada sees him go; he comes back with the Back button, under the
    # same name.
    bob.get("about:blank")
    wait_for(ada, "bob gone", lambda d: members(d) == ["ada"])
    assert "bob left #general" in texts(ada, "#messages li.notice")
    bob.back()
    wait_for(ada, "bob back", lambda d: members(d) == ["ada", "bob"])
    wait_for(bob, "bob rejoined", lambda d: members(d) == ["ada", "bob"])

    # A second "bob" is refused, in words.
    other = browser()
    other.get(server.url)
    other.find_element(By.ID, "name-input").send_keys("bob", Keys.ENTER)
    error = other.find_element(By.ID, "login-error")
    wait_for(other, "the refusal", lambda d: error.is_displayed())
    assert error.get_attribute("data-code") == "name_taken"
    assert error.text == "Someone in this room already has that name: choose another one."
    assert severe_console_errors(ada) == []


def test_chat_browser_on_a_phone_everything_is_reachable(live_server, browser):
    server = live_server(chat_app())
    phone, friend = browser(phone=True), browser()
    enter(phone, server.url, "ada")
    enter(friend, server.url, "bob")
    say(friend, "hello from a laptop, a message long enough to wrap on a narrow phone screen")
    wait_for(phone, "bob's message", lambda d: len(messages(d)) == 1)
    width, height = PHONE
    assert phone.execute_script("return window.innerWidth;") == width
    # Nothing overflows sideways, and the composer, the rooms and the members are on screen.
    assert phone.execute_script("return document.documentElement.scrollWidth;") <= width
    for element_id in ("message-input", "send-button", "rooms", "members", "status"):
        box = phone.execute_script(
            "return arguments[0].getBoundingClientRect().toJSON();",
            phone.find_element(By.ID, element_id),
        )
        assert box["left"] >= 0 and box["right"] <= width, (element_id, box)
        assert box["top"] >= 0 and box["bottom"] <= height, (element_id, box)
    say(phone, "and hello from a phone")
    wait_for(
        friend, "the phone's message", lambda d: ("ada", "and hello from a phone") in messages(d)
    )
    wait_for(phone, "sent", lambda d: len(messages(d)) == 2)
    # A room from the phone.
    room_input = phone.find_element(By.ID, "room-input")
    room_input.send_keys("phones", Keys.ENTER)
    wait_for(phone, "#phones", lambda d: texts(d, "#room-title") == ["#phones"])
    assert phone.find_element(By.ID, "empty").is_displayed()
    # One script finds and clicks: the list is redrawn whenever the room list changes.
    phone.execute_script(
        "document.querySelector('#rooms li[data-room=\"general\"] button').click();"
    )
    wait_for(phone, "back in #general", lambda d: len(messages(d)) == 2)
    # The room list (pushed at most every 2 s) counts both people in #general again.
    count = '#rooms li[data-room="general"] .count'
    wait_for(phone, "2 users in #general", lambda d: texts(d, count) == ["2"])
    assert phone.save_screenshot(str(DOCS / "chat-mobile.png"))


def test_chat_browser_network_drop_recovers_what_was_said_meanwhile(live_server, browser):
    server = live_server(chat_app())
    ada, bob = browser(), browser()
    enter(ada, server.url, "ada")
    enter(bob, server.url, "bob")
    say(bob, "before the drop")
    wait_for(ada, "the first message", lambda d: ("bob", "before the drop") in messages(d))

    # The server closes ada's socket (1013, retry=4): she is offline for 4 seconds.
    request = urllib.request.Request(server.url + "/test/drop/ada", method="POST")
    with urllib.request.urlopen(request, timeout=WAIT) as response:
        assert json.loads(response.read()) == {"dropped": 1}
    wait_for(ada, "ada offline", lambda d: status(d) == "reconnecting")
    assert not ada.find_element(By.ID, "message-input").is_enabled()
    assert not ada.find_element(By.ID, "send-button").is_enabled()
    assert "offline" in (ada.find_element(By.TAG_NAME, "body").get_attribute("class") or "")
    assert texts(ada, "#status")[0].startswith("Offline: retrying in")
    wait_for(bob, "ada gone", lambda d: members(d) == ["bob"])
    for text in ("while you were away", "and another one"):
        say(bob, text)

        def shown(driver: WebDriver, text: str = text) -> bool:
            return ("bob", text) in messages(driver)

        wait_for(bob, text, shown)
    assert status(ada) == "reconnecting"  # they were said while she was away

    wait_for(ada, "ada back", lambda d: status(d) == "online")
    wait_for(ada, "the notice", lambda d: notice(d) == "Back online: nothing was lost.")
    wait_for(ada, "the missed messages", lambda d: len(messages(d)) == 3)
    assert messages(ada) == [
        ("bob", "before the drop"),
        ("bob", "while you were away"),
        ("bob", "and another one"),
    ]
    assert members(ada) == ["ada", "bob"]
    say(ada, "back")
    wait_for(bob, "ada's message", lambda d: ("ada", "back") in messages(d))


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
    assert texts(ada, "#status")[0].startswith("Offline: retrying in")

    # A new process of the app on the same port: the pages come back by themselves.
    restarted = live_server(chat_app(), port=port)
    assert restarted.port == port
    for driver in (ada, bob):
        wait_for(driver, "reconnection", lambda d: status(d) == "online")
        wait_for(driver, "rejoined", lambda d: texts(d, "#room-title") == ["#after-hours"])
        # The new process has its own (empty) history, and the page says so.
        wait_for(driver, "the notice", lambda d: "could not be recovered" in notice(d))
    wait_for(ada, "bob back in the room", lambda d: members(d) == ["ada", "bob"])
    wait_for(bob, "ada back in the room", lambda d: members(d) == ["ada", "bob"])

    say(ada, "after the restart")
    wait_for(
        bob, "a message after the restart", lambda d: ("ada", "after the restart") in messages(d)
    )
    assert messages(bob) == [("ada", "after the restart")]


@pytest.mark.redis
def test_chat_browser_server_restart_on_redis_loses_nothing(live_server, browser, redis_server):
    # Two processes of the chat on one Redis; ada's process restarts while bob, on the
    # other, goes on talking: the history is in Redis, so she gets all of it back.
    def shared_chat() -> App:
        return chat_app(hub_backend=redis_server.url, hub_prefix="chat-restart")

    first, second = live_server(shared_chat()), live_server(shared_chat())
    port = first.port
    ada, bob = browser(), browser()
    enter(ada, first.url, "ada")
    enter(bob, second.url, "bob")
    wait_for(ada, "bob from the other process", lambda d: members(d) == ["ada", "bob"])
    say(bob, "before the restart")
    wait_for(ada, "the first message", lambda d: ("bob", "before the restart") in messages(d))

    first.stop()
    wait_for(ada, "ada offline", lambda d: status(d) != "online")
    for text in ("while you were away", "and another one"):
        say(bob, text)

        def shown(driver: WebDriver, text: str = text) -> bool:
            return ("bob", text) in messages(driver)

        wait_for(bob, text, shown)

    restarted = live_server(shared_chat(), port=port)
    assert restarted.port == port
    wait_for(ada, "ada back", lambda d: status(d) == "online")
    wait_for(ada, "the notice", lambda d: notice(d) == "Back online: nothing was lost.")
    wait_for(ada, "the missed messages", lambda d: len(messages(d)) == 3)
    assert messages(ada) == [
        ("bob", "before the restart"),
        ("bob", "while you were away"),
        ("bob", "and another one"),
    ]
    say(ada, "back")
    wait_for(bob, "ada's message", lambda d: ("ada", "back") in messages(d))


def test_chat_browser_twenty_messages_never_hit_the_rate_limit(live_server, browser):
    # The default limit (30 messages per 10 s): 20 messages sent as fast as the page
    # answers, faster than anyone types, with the typing notices they cause.
    server = live_server(chat_app(rate_limit=RATE_LIMIT))
    ada, bob = browser(), browser()
    enter(ada, server.url, "ada")
    enter(bob, server.url, "bob")
    bob.execute_script(
        "window.typingSeen = 0;"
        "new MutationObserver(() => {"
        "  if (document.getElementById('typing').textContent) window.typingSeen += 1;"
        "}).observe(document.getElementById('typing'), {childList: true, characterData: true,"
        " subtree: true});"
    )
    started = ada.execute_script("return Date.now();")
    for n in range(1, 21):
        say(ada, f"message {n}")

        def count(driver: WebDriver, n: int = n) -> bool:
            return len(messages(driver)) == n

        wait_for(ada, f"message {n}", count)
    error = ada.find_element(By.ID, "error")
    assert not error.is_displayed(), error.text
    wait_for(bob, "all 20", lambda d: len(messages(d)) == 20)
    elapsed = (ada.execute_script("return Date.now();") - started) / 1000
    # At most one typing notice per 3 seconds.
    assert bob.execute_script("return window.typingSeen;") <= elapsed // 3 + 1


def test_chat_browser_rate_limit_is_shown_and_the_text_kept(live_server, browser):
    server = live_server(chat_app(rate_limit=(5, 60.0)))
    ada = browser()
    enter(ada, server.url, "ada")  # hello and join are the first two of the window
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
    assert error.text == (
        "You are sending messages very fast: wait a few seconds, then send it again."
    )
    # The refused message was not shown, and its text is still in the box to send later.
    assert ("ada", f"message {sent}") not in messages(ada)
    assert len(messages(ada)) == sent - 1
    assert box.get_property("value") == f"message {sent}"
