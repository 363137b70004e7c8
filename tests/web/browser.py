"""Headless Chromium (Debian's ``chromium`` + ``chromedriver``) through Selenium, a live head-end
served by uvicorn on a free loopback port, and the head-end's command dispatcher in a thread."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
import uvicorn
from fastapi import FastAPI
from paho.mqtt.enums import CallbackAPIVersion

from tests.services import free_port

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


class Server:
    """uvicorn serving ``app`` on a free loopback port, in a thread."""

    def __init__(self, app: FastAPI) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def start(self) -> None:
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("uvicorn did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(15)


class DispatcherThread:
    """The head-end's ``Dispatcher`` publishing through its own MQTT client, in a thread."""

    def __init__(self, app: FastAPI, host: str, port: int) -> None:
        from headend.commands.dispatcher import Dispatcher
        from headend.commands.settings import ops_settings
        from taiqu.clock import RealClock

        guards, commands = ops_settings(app.state.settings.extra, None)
        self._client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="web-dispatcher")
        self._client.connect(host, port)
        self._client.loop_start()
        self.dispatcher = Dispatcher(app.state.engine, self._publish, RealClock(), guards, commands)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _publish(self, topic: str, payload: bytes) -> None:
        self._client.publish(topic, payload, qos=1).wait_for_publish(10)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.dispatcher.run_once()
            self._stop.wait(0.2)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)
        self._client.loop_stop()
        self._client.disconnect()
