"""Headless Chromium (Debian's ``chromium`` + ``chromedriver``) through Selenium: sessions, waits
and screenshots."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
FLAGS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)


def require_chromium() -> None:
    """Skip without Debian's chromium and chromedriver (fail under CI, which installs them)."""
    if all(os.access(p, os.X_OK) for p in (CHROMIUM, CHROMEDRIVER)):
        return
    message = (
        "chromium / chromium-driver are not installed (apt-get install chromium chromium-driver)"
    )
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def browser(lang: str, width: int, height: int) -> Iterator[Any]:
    """A fresh headless Chromium session (own profile) with ``lang`` and a window size."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="taiqu-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile}")
    options.add_argument(f"--lang={lang}")
    options.add_argument(f"--window-size={width},{height}")
    options.add_experimental_option("prefs", {"intl.accept_languages": lang})
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def wait(driver: Any, condition: Callable[[Any], Any], timeout: float = 20, what: str = "") -> Any:
    """Wait for ``condition(driver)`` to be truthy (with a deadline), return its value."""
    from selenium.common.exceptions import NoSuchElementException, StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    # htmx swaps polled fragments in place: an element found a moment ago may be gone
    ignored = (StaleElementReferenceException, NoSuchElementException)
    waiter = WebDriverWait(driver, timeout, poll_frequency=0.1, ignored_exceptions=ignored)
    return waiter.until(condition, what)


def shot(driver: Any, name: str) -> Path:
    """Save a full-height screenshot of the page as a test artefact."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.get_window_size()["width"]
    driver.set_window_size(width, min(max(int(height) + 120, 600), 4000))
    driver.save_screenshot(str(path))
    return path
