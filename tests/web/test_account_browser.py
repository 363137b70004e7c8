"""The account page in headless Chromium (zh-CN): what restores supply, the reconnect owed after a
payment during an in-flight disconnect, late fees and reversals, read from the rendered DOM."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import uvicorn

from headend.db.migrate import upgrade
from taiqu.clock import ManualClock
from tests.headend.ops_support import TUESDAY_10, USERS, add_user, seed_archive
from tests.web.browser import browser, require_chromium, shot, wait
from tests.web.conftest import Web
from tests.web.support import make_app, settings
from tests.web.test_account_page import _account
from tests.web.test_charts import free_port, sign_in

pytestmark = pytest.mark.integration


@pytest.fixture
def console(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cheap_hashes: None) -> Iterator[str]:
    """The head-end with the console on a real port, the archive, users and account ACC-1."""
    require_chromium()
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "d" * 40)
    app = make_app(settings(tmp_path / "account.db"))
    clock = ManualClock(TUESDAY_10)
    app.state.clock = clock
    upgrade(app.state.engine)
    seed_archive(app.state.engine)
    for name, (role, scope) in USERS.items():
        add_user(app.state.engine, name, role, scope)
    _account(Web(app, app.state.engine, clock, TUESDAY_10.date(), TUESDAY_10))
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="console", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive(), "the console did not start"
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(30)


def test_the_account_page_in_a_browser(console: str) -> None:
    from selenium.webdriver.common.by import By

    with browser("zh-CN", 1024, 1400) as driver:
        sign_in(driver, console, "vera")  # A2's viewer
        driver.get(f"{console}/accounts/ACC-1")
        restore = wait(driver, lambda d: d.find_element(By.ID, "to-restore"), what="to_restore")
        assert restore.text == "2.67"
        owed = driver.find_element(By.ID, "reconnect-owed")
        assert "待复电" in owed.text and "c-77" in owed.text
        fees = driver.find_elements(By.CSS_SELECTOR, "#late-fees tbody tr")
        assert [r.find_elements(By.TAG_NAME, "td")[1].text for r in fees] == ["ACC-1:2026-02"]
        rows = driver.find_elements(By.CSS_SELECTOR, "#reversals tbody tr")
        cells = [td.text for td in rows[0].find_elements(By.TAG_NAME, "td")]
        assert len(rows) == 1 and cells[1] == "BANK-1" and cells[4] == "sid"
        assert cells[5] == "cheque bounced"
        assert driver.find_element(By.ID, "a-rev").text == "冲正"
        shot(driver, "account-01-zh")
