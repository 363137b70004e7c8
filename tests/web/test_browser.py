"""The console in headless Chromium against a live head-end, a real broker and a fake gateway.

One flow, as operators use it: sign in, open an area and see its line-loss chart drawn; ask a
meter for an on-demand read and see the value arrive without reloading; request a bulk disconnect
as an operator, approve it as a supervisor in a second browser session, and watch the relay state
change on the meter page the operator keeps open.  Screenshots of every page go to
``test-artifacts/screenshots/``.

Parts that are real: mosquitto, the head-end app (uvicorn, SQLite, its MQTT ingest), the
head-end's ``Dispatcher`` (run by the test: ``create_app`` does not start it yet), Chromium.  The
gateway is ``tests.web.fake_gateway`` (answers commands on MQTT with the contract's messages).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from headend.config import MqttSettings
from headend.db.migrate import upgrade
from tests.headend.ops_support import PASSWORD, cheap_hashes_fixture  # noqa: F401
from tests.services import Mosquitto
from tests.web.browser import DispatcherThread, Server, browser, require_chromium, shot, wait
from tests.web.fake_gateway import FakeGateway
from tests.web.support import OPEN_WINDOW, SHANGHAI, make_app, recompute, seed, settings

pytestmark = pytest.mark.integration
READ_VALUE = Decimal("987.65")


@dataclass
class Live:
    url: str
    gateway: FakeGateway


@pytest.fixture
def live(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, cheap_hashes: None
) -> Iterator[Live]:
    require_chromium()
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "b" * 40)
    mqtt = MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="web-headend")
    app = make_app(settings(tmp_path / "live.db", guards=OPEN_WINDOW, mqtt=mqtt), ingest=True)
    upgrade(app.state.engine)
    now = datetime.now(UTC) - timedelta(minutes=30)  # seeded readings are older than live ones
    today = datetime.now(UTC).astimezone(SHANGHAI).date()
    seed(app.state.engine, today, now)
    recompute(app.state.engine, today, now)
    server = Server(app)
    server.start()
    assert app.state.ingest.connected.wait(15), "the ingest did not subscribe"
    dispatcher = DispatcherThread(app, mosquitto.host, mosquitto.port)
    dispatcher.start()
    gateway = FakeGateway(mosquitto.host, mosquitto.port, "gw2", READ_VALUE)
    try:
        yield Live(server.url, gateway)
    finally:
        gateway.stop()
        dispatcher.stop()
        server.stop()


def sign_in(driver: Any, url: str, name: str) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(PASSWORD)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()
    wait(
        driver,
        lambda d: d.find_elements(By.CSS_SELECTOR, f'[data-user="{name}"]'),
        what="signed in",
    )


def canvas_has_ink(driver: Any, selector: str) -> bool:
    """Whether the chart's canvas has non-transparent pixels (uPlot drew something)."""
    return bool(
        driver.execute_script(
            """
            const c = document.querySelector(arguments[0]);
            if (!c) return false;
            const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
            let n = 0; for (let i = 3; i < d.length; i += 4) if (d[i]) n++;
            return n > 200;
            """,
            selector,
        )
    )


def test_operator_and_supervisor_in_two_browsers(live: Live) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url = live.url
    # the operator works in Chinese on a tablet; the supervisor in English at a desk
    with browser("zh-CN", 768, 1024) as op, browser("en-US", 1280, 900) as sup:
        sign_in(op, url, "olga")
        assert op.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
        shot(op, "01-overview-zh-tablet")
        op.find_element(By.CSS_SELECTOR, 'a[href="/areas/A2"]').click()
        wait(op, lambda d: d.find_elements(By.CSS_SELECTOR, "#loss-chart[data-drawn] canvas"))
        assert canvas_has_ink(op, "#loss-chart canvas"), "the line-loss chart is empty"
        shot(op, "02-area-A2-line-loss")

        # on-demand read: the value arrives in the polled fragment, the page is not reloaded
        op.get(f"{url}/meters/A2-m01")
        wait(op, lambda d: d.find_elements(By.CSS_SELECTOR, "#energy-chart[data-drawn] canvas"))
        before = op.find_element(By.ID, "energy-value").text
        assert before and before != str(READ_VALUE)
        op.execute_script("window.__same_page = true")
        op.find_element(By.ID, "read-now").click()
        wait(op, lambda d: d.find_element(By.ID, "energy-value").text == str(READ_VALUE),
             what="the on-demand reading")  # fmt: skip
        wait(op, lambda d: d.find_elements(By.CSS_SELECTOR, '#live-command [data-state="executed"]'),
             what="the read command executed")  # fmt: skip
        assert op.execute_script("return window.__same_page") is True
        assert not op.find_elements(
            By.CSS_SELECTOR, "#live-command [hx-trigger]"
        )  # polling stopped
        shot(op, "03-meter-on-demand-read")

        # bulk disconnect of area A2 (6 meters > 3): the confirmation shows the guard rails
        op.get(f"{url}/areas/A2")
        Select(op.find_element(By.ID, "bulk-action")).select_by_value("relay_trip")
        op.find_element(By.ID, "bulk-note").send_keys("arrears, field team on site")
        op.find_element(By.ID, "bulk-review").click()
        rules = wait(op, lambda d: d.find_elements(By.CSS_SELECTOR, "#guard-rails tr[data-rule]"))
        states = {r.get_attribute("data-rule"): r.get_attribute("data-status") for r in rules}
        assert states["supervisor_approval"] == "needs_approval" and states["keep_power"] == "ok"
        shot(op, "04-confirm-bulk-disconnect")
        op.find_element(By.ID, "confirm-send").click()
        status = wait(op, lambda d: d.find_elements(By.CSS_SELECTOR, ".status[data-command]"))[0]
        command_id = status.get_attribute("data-command")
        assert status.get_attribute("data-state") == "awaiting_approval"
        shot(op, "05-command-awaiting-approval")

        # the operator keeps the meter page open while a supervisor approves elsewhere
        op.get(f"{url}/meters/A2-m01")
        assert op.find_element(By.ID, "relay-state").get_attribute("data-state") == "closed"
        op.execute_script("window.__same_page = true")

        sign_in(sup, url, "sam")
        sup.get(f"{url}/commands")
        shot(sup, "06-commands-approval-queue")
        sup.find_element(By.ID, f"approve-{command_id}").click()
        wait(sup, lambda d: d.find_elements(By.CSS_SELECTOR, '.status[data-state="executed"]'),
             timeout=30, what="the disconnect executed")  # fmt: skip
        shot(sup, "07-command-executed")

        wait(op, lambda d: d.find_element(By.ID, "relay-state").get_attribute("data-state") == "open",
             what="the relay state on the operator's meter page")  # fmt: skip
        assert op.execute_script("return window.__same_page") is True
        shot(op, "08-meter-relay-open")
        assert [c.action for c in live.gateway.commands] == ["read", "relay_trip"]

        # the audit log with its chain verified (an admin), and the notifications log
        sup.get(f"{url}/login")
        sup.delete_all_cookies()
        sign_in(sup, url, "ada")
        sup.get(f"{url}/audit")
        wait(sup, lambda d: d.find_elements(By.CSS_SELECTOR, '#verify[data-ok="true"]'))
        assert "command.approve" in sup.find_element(By.ID, "audit").text
        shot(sup, "09-audit-verified")
        sup.get(f"{url}/notifications")
        shot(sup, "10-notifications")
        sup.get(f"{url}/")
        shot(sup, "11-overview-en-desktop")
