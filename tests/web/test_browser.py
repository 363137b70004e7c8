"""The console in headless Chromium against the real chain, as an operator meets it.

Simulated meters (``simulators.fleet``, accelerated clock, pacing off) → a real gateway
(``gateway.daemon.app.Gateway`` in-process, trusting the head-end's exported key) → mosquitto →
the head-end as ``taiqu headend serve`` runs it (uvicorn, SQLite, ingest, dispatcher, jobs, signed
commands) → Chromium.  The chain is ``tests.integration.test_e2e_flows.running``, run on its own
event loop in a thread while Selenium drives the browsers from the test's thread.

One flow: sign in, open an area and see its line-loss chart drawn; ask a simulated meter for an
on-demand read and see its register's value arrive without reloading; request a bulk disconnect
of the simulated area as an operator, approve it as a supervisor in a second browser session, and
watch the relay state change on the meter page the operator keeps open (and in the simulator's
ground truth).  The line-loss chart is drawn from seeded daily frozen registers of area A2 (a
simulated midnight is ~15 wall minutes away at this clock factor).  Screenshots of every page go
to ``test-artifacts/screenshots/``.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select

from headend.db import reading, writing
from headend.db.ops_tables import command_targets
from headend.db.tables import readings
from headend.web import prefs
from headend.web.session import Prefs
from tests.headend.ops_support import PASSWORD, USERS, add_user, cheap_hashes_fixture, seed_archive
from tests.integration.test_e2e_flows import AREA, ENERGY, Rig, running
from tests.integration.test_e2e_flows import PASSWORD as ADMIN_PASSWORD
from tests.services import Mosquitto
from tests.web.browser import browser, require_chromium, shot, wait
from tests.web.support import SHANGHAI, recompute, seed_loss

__all__ = ["cheap_hashes_fixture"]
pytestmark = pytest.mark.integration
FACTOR = 60  # one wall second is a simulated minute: the events sweep (5 min) runs every 5 s


class Chain:
    """``running`` (fleet, gateway, head-end) on its own event loop in a thread."""

    def __init__(self, mosquitto: Mosquitto, tmp_path: Path) -> None:
        self._args = (mosquitto, tmp_path)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self.rig: Rig | None = None
        self._thread = threading.Thread(target=self._run, name="chain", daemon=True)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as e:  # reported to the test's thread
            self._error = e
            self._ready.set()

    async def _main(self) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        extra = {"guards": {"supervisor_threshold": 2}}
        async with running(*self._args, factor=FACTOR, extra=extra) as rig:
            self.rig = rig
            self._ready.set()
            await self._stop.wait()

    def start(self) -> Rig:
        self._thread.start()
        assert self._ready.wait(90), "the chain did not start"
        if self._error is not None:
            raise self._error
        assert self.rig is not None
        return self.rig

    def stop(self) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(60)
        assert not self._thread.is_alive(), "the chain did not stop"
        if self._error is not None:
            raise self._error


@dataclass
class Live:
    url: str
    rig: Rig

    def truth(self, meter: str) -> dict[str, Any]:
        """The simulated meter's ground truth now (its register, its relay)."""
        return dict(self.rig.fleet.control.truth_meter(meter))


@pytest.fixture
def live(
    tmp_path: Path, mosquitto: Mosquitto, monkeypatch: pytest.MonkeyPatch, cheap_hashes: None
) -> Iterator[Live]:
    require_chromium()
    monkeypatch.setenv("TAIQU_HEADEND_SECRET", "b" * 40)
    chain = Chain(mosquitto, tmp_path)
    rig = chain.start()
    try:
        engine, now = rig.engine, rig.app.state.clock.now()
        seed_archive(engine)  # area A2 and its daily registers: the line-loss chart
        for name in ("olga", "sam"):
            add_user(engine, name, *USERS[name])
        with writing(engine) as conn:  # the desk users chose English (it follows the user)
            for name in ("sam", "ada"):
                prefs.save(conn, name, Prefs("en", "Asia/Shanghai"))
        today = now.astimezone(SHANGHAI).date()
        rows = seed_loss(engine, today)
        with writing(engine) as conn:
            conn.execute(insert(readings), rows)
        recompute(engine, today, now)
        yield Live(str(rig.api.base_url).rstrip("/"), rig)
    finally:
        chain.stop()


def sign_in(driver: Any, url: str, name: str, password: str = PASSWORD) -> None:
    from selenium.webdriver.common.by import By

    driver.get(f"{url}/login")
    driver.find_element(By.ID, "username").send_keys(name)
    driver.find_element(By.ID, "password").send_keys(password)
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


def energy_since(live: Live, meter: str, since: datetime) -> list[Decimal]:
    """The meter's energy readings stored at or after ``since`` (simulated time)."""
    with reading(live.rig.engine) as conn:
        rows = conn.execute(
            select(readings.c.value).where(
                readings.c.meter == meter,
                readings.c.quantity == ENERGY,
                readings.c.time >= since,
            )
        ).all()
    return [Decimal(r.value) for r in rows]


def target_states(live: Live, command_id: str) -> dict[str, tuple[str, str | None]]:
    """Each target meter's final state and reason, as the head-end recorded them."""
    with reading(live.rig.engine) as conn:
        rows = conn.execute(
            select(command_targets).where(command_targets.c.command_id == command_id)
        ).all()
    return {r.meter: (r.state, r.reason) for r in rows}


def test_operator_and_supervisor_in_two_browsers(live: Live) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    url, fleet = live.url, live.rig.fleet
    # the switchable meters: DL/T 645 customer meters (never the area total, never Modbus)
    relays = [
        m["id"]
        for m in live.rig.meters
        if m["protocol"] == "dlt645-2007" and m["role"] == "customer"
    ]
    assert {fleet.control.relay(m)["relay"] for m in relays} == {"closed"}
    target = next(m["id"] for m in live.rig.meters if m["id"] in relays and m["role"] == "customer")
    # the operator works in Chinese on a tablet; the supervisor in English at a desk
    with browser("zh-CN", 768, 1024) as op, browser("en-US", 1280, 900) as sup:
        sign_in(op, url, "olga")
        assert op.find_element(By.TAG_NAME, "html").get_attribute("lang") == "zh-CN"
        shot(op, "01-overview-zh-tablet")
        op.find_element(By.CSS_SELECTOR, 'a[href="/areas/A2"]').click()
        wait(op, lambda d: d.find_elements(By.CSS_SELECTOR, "#loss-chart[data-drawn] canvas"))
        assert canvas_has_ink(op, "#loss-chart canvas"), "the line-loss chart is empty"
        shot(op, "02-area-A2-line-loss")

        # on-demand read: the simulated register's value arrives in the polled fragment
        op.get(f"{url}/meters/{target}")
        before = op.find_element(By.ID, "energy-value").text
        register_before = Decimal(str(live.truth(target)["import_register_end"]))
        asked = live.rig.app.state.clock.now()
        op.execute_script("window.__same_page = true")
        op.find_element(By.ID, "read-now").click()
        wait(op, lambda d: d.find_elements(By.CSS_SELECTOR, '#live-command [data-state="executed"]'),
             timeout=30, what="the read command executed")  # fmt: skip
        shown = wait(
            op,
            lambda d: (
                (t := d.find_element(By.ID, "energy-value").text) != before
                and t != "—"
                and Decimal(t) in energy_since(live, target, asked)
                and t
            ),
            what="the on-demand reading on the page",
        )
        register_after = Decimal(str(live.truth(target)["import_register_end"]))
        # every fresh value came from the simulated register between the click and now
        fresh = energy_since(live, target, asked)
        assert all(register_before - Decimal("0.01") <= v <= register_after for v in fresh), (
            fresh, register_before, register_after,
        )  # fmt: skip
        assert Decimal(shown) >= register_before - Decimal("0.01")
        assert op.execute_script("return window.__same_page") is True
        assert not op.find_elements(By.CSS_SELECTOR, "#live-command [hx-trigger]")  # polling ends
        shot(op, "03-meter-on-demand-read")

        # bulk disconnect of the simulated area (its 3 switchable meters > 2): approval needed
        op.get(f"{url}/areas/{AREA}")
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
        assert fleet.control.relay(target)["relay"] == "closed"  # nothing sent before approval

        # the operator keeps the meter page open while a supervisor approves elsewhere
        op.get(f"{url}/meters/{target}")
        wait(op, lambda d: d.find_element(By.ID, "relay-state").get_attribute("data-state") == "closed",
             what="the closed relay from a sweep")  # fmt: skip
        op.execute_script("window.__same_page = true")

        sign_in(sup, url, "sam")
        assert sup.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        sup.get(f"{url}/commands")
        shot(sup, "06-commands-approval-queue")
        sup.find_element(By.ID, f"approve-{command_id}").click()
        final = '.status[data-command="{}"]:is([data-state="executed"], [data-state="failed"])'
        wait(sup, lambda d: d.find_elements(By.CSS_SELECTOR, final.format(command_id)),
             timeout=40, what="the disconnect finished")  # fmt: skip
        # only switchable meters were targeted (the area total and Modbus meters left out)
        outcome = target_states(live, command_id)
        assert outcome == {m: ("executed", None) for m in relays}, outcome
        # the supervisor landed on the command page before the outcomes: its table followed live
        live_rows = '#targets tr[data-state="executed"]'
        wait(sup, lambda d: len(d.find_elements(By.CSS_SELECTOR, live_rows)) == len(relays),
             timeout=10, what="the per-meter table updated without a reload")  # fmt: skip
        shot(sup, "07-command-executed")
        for meter in relays:  # ground truth: the simulated meters' relays opened
            assert fleet.control.relay(meter)["relay"] == "open", meter

        wait(op, lambda d: d.find_element(By.ID, "relay-state").get_attribute("data-state") == "open",
             timeout=30, what="the relay state on the operator's meter page")  # fmt: skip
        assert op.execute_script("return window.__same_page") is True
        shot(op, "08-meter-relay-open")

        # the audit log with its chain verified (an admin), and the notifications log
        sup.get(f"{url}/login")
        sup.delete_all_cookies()
        sign_in(sup, url, "ada", ADMIN_PASSWORD)
        sup.get(f"{url}/audit")
        wait(sup, lambda d: d.find_elements(By.CSS_SELECTOR, '#verify[data-ok="true"]'))
        assert "command.approve" in sup.find_element(By.ID, "audit").text
        shot(sup, "09-audit-verified")
        sup.get(f"{url}/notifications")
        shot(sup, "10-notifications")
        sup.get(f"{url}/")
        assert sup.find_element(By.TAG_NAME, "html").get_attribute("lang") == "en"
        shot(sup, "11-overview-en-desktop")
