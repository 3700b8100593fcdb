"""The web UI in a real browser: headless Chromium opens it, sends English then Arabic, sees the replies.

Needs Debian's chromium and chromium-driver. Without them the test is skipped, unless
BIMEDIX_REQUIRE_BROWSER=1 (CI sets it), when it fails. The screenshot is kept under
logs/serve/test-artifacts/ (the path is printed).
"""

from __future__ import annotations

import datetime
import os
import shutil
import time

import pytest

from bimedix.paths import ROOT

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
ARTIFACTS = ROOT / "logs" / "serve" / "test-artifacts"
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,1800",
]
SERVER_ERROR = "NETWORK ERROR"  # what FastChat's UI shows when a reply fails


@pytest.fixture(scope="session")
def chromium():
    """Session-scoped, and asked for before the stack, so that a missing browser skips before anything starts."""
    if not (CHROMIUM and CHROMEDRIVER):
        reason = "headless Chromium is not installed (Debian packages chromium and chromium-driver)"
        if os.environ.get("BIMEDIX_REQUIRE_BROWSER") == "1":
            pytest.fail(f"BIMEDIX_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
    return CHROMIUM, CHROMEDRIVER


@pytest.fixture
def browser(chromium, tmp_path):
    from selenium import webdriver
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    binary, driver_path = chromium
    options = Options()
    options.binary_location = binary
    for flag in [*FLAGS, f"--user-data-dir={tmp_path / 'chromium-profile'}"]:
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=driver_path), options=options)
    yield driver
    driver.quit()


def wait_for(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def finished_replies(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    replies = [b.text for b in driver.find_elements(By.CSS_SELECTOR, "#chatbot [data-testid='bot']")]
    if any(not r.strip() or r.rstrip().endswith("▌") for r in replies):
        return []  # a reply is still streaming
    return replies


def test_chat_in_english_and_arabic_in_a_browser(chromium, stack, browser, tmp_path):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    browser.get(stack.web_url + "/")
    box = wait_for(lambda: browser.find_elements(By.CSS_SELECTOR, "#input_box textarea"), 60, "the message box")[0]
    assert browser.title == "BiMediX (research only)"
    notice = browser.find_element(By.ID, "bimedix_notice").text
    assert "not for clinical use" in notice and "ليس للاستخدام السريري" in notice

    messages = ["What is the first-line drug for type 2 diabetes?", "ما هي أعراض نقص فيتامين د؟ ٢٠ سؤالاً"]
    for count, message in enumerate(messages, start=1):
        box.send_keys(message)
        box.send_keys(Keys.ENTER)
        replies = wait_for(lambda n=count: len(finished_replies(browser)) == n and finished_replies(browser), 180, f"reply {count}")  # fmt: skip
        assert SERVER_ERROR not in replies[-1], replies[-1]
    users = [u.text for u in browser.find_elements(By.CSS_SELECTOR, "#chatbot [data-testid='user']")]
    assert users == messages

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"webui-{datetime.datetime.now():%Y%m%d-%H%M%S}.png"
    assert browser.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    shutil.copy(shot, tmp_path / shot.name)
    print(f"\nweb UI screenshot: {shot}")
