"""Prepayment end to end on an accelerated clock: a customer's balance runs out on real readings
(simulated meter → gateway → ingest), the reminders reach a real SMTP server and a webhook, the
relay trips after the grace period (ground truth: the simulated relay is open), and a top-up
through the API restores supply (the simulated relay is closed again).
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.headend.test_prepay_support import SmtpSink, WebhookSink
from tests.integration.test_e2e_flows import TUESDAY, running, wait_for

pytestmark = pytest.mark.integration

METER = "202603100001"
FACTOR = 240  # a simulated hour in 15 s
PREPAY = {
    "prepay": {
        "balance_thresholds": ["30", "15"],
        "days_thresholds": [],
        "final_notice_balance": "0",
        "grace_hours": 0.25,
        "quiet_hours": None,
        "reconnect_action": "relay_close_direct",
        "job_interval": 60,
        "notify_retry_seconds": 60,
    },
    # the whole day: at 240× a slow machine carries the simulated clock past the default 17:00
    # end of the disconnect window, holding the disconnect (the window is tested elsewhere)
    "guards": {"window_start": "00:00", "window_end": "23:59"},
}


async def diagnosis(api: Any, account: str, meter: str) -> str:
    """What the head-end knows when a prepay step did not happen: the account, its actions with
    their history, the validation queue, the meter's newest readings and the commands."""
    parts = []
    for path in (
        f"/api/v1/prepay/accounts/{account}",
        f"/api/v1/prepay/accounts/{account}/actions",
        f"/api/v1/prepay/accounts/{account}/ledger",
        "/api/v1/vee/flags",
        f"/api/v1/meters/{meter}/readings?quantity=energy.active.import.total",
        "/api/v1/commands",
    ):
        r = await api.get(path)
        parts.append(f"GET {path} -> {r.status_code} {r.text[:3000]}")
    return "\n".join(parts)


@pytest.fixture
def sinks() -> Iterator[tuple[SmtpSink, WebhookSink]]:
    smtp, hook = SmtpSink(), WebhookSink()
    smtp.controller.start()
    hook.start()
    yield smtp, hook
    smtp.controller.stop()
    hook.stop()


async def test_balance_runs_out_reminders_disconnect_and_top_up(
    mosquitto: Any, tmp_path: Path, sinks: tuple[SmtpSink, WebhookSink]
) -> None:
    smtp, hook = sinks
    # 8 kW flat at 10.00 a kWh: 20.00 every 15 simulated minutes.
    async with running(mosquitto, tmp_path, factor=FACTOR, extra=PREPAY, mean_kw=8.0) as rig:
        api, fleet, clock = rig.api, rig.fleet, rig.app.state.clock
        since = (TUESDAY - timedelta(days=1)).isoformat()
        r = await api.post(
            "/api/v1/prepay/tariffs/res",
            json={"valid_from": since, "definition": {"kind": "flat", "price": "10.00"}},
        )
        assert r.status_code == 201, r.text
        contacts = [smtp.url("customer@example.test"), hook.url()]
        r = await api.post(
            "/api/v1/prepay/accounts", json={"id": "acc1", "language": "en", "contacts": contacts}
        )
        assert r.status_code == 201, r.text
        r = await api.post(
            "/api/v1/prepay/accounts/acc1/points",
            json={"point": METER, "valid_from": clock.now().isoformat()},
        )
        assert r.status_code == 201, r.text
        r = await api.post(
            "/api/v1/prepay/accounts/acc1/topups", json={"reference": "BANK-1", "amount": "50.00"}
        )
        assert r.status_code == 201, r.text

        async def account() -> dict[str, Any]:
            return dict((await api.get("/api/v1/prepay/accounts/acc1")).json())

        async def supply_off() -> Any:
            acct = await account()
            # the relay read-back moves ``supply`` at once; the jobs' next pass ends the action
            # and moves the stage to "off"
            return acct if acct["supply"] == "off" and acct["stage"] == "off" else None

        try:
            off = await wait_for(supply_off, "the disconnect after the grace period", timeout=60)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await diagnosis(api, 'acc1', METER)}") from None
        assert off["stage"] == "off" and float(off["balance"]) <= 0
        assert fleet.control.relay(METER)["relay"] == "open"  # ground truth
        # every reminder reached both sinks: the balance notices, the final notice, the disconnect.
        # Two balance thresholds; when a charge crosses both at once (a loaded machine runs the
        # accelerated job less often) only the lower one is sent — never one threshold twice.
        titles = [b["title"] for b in hook.bodies]
        low = [b["message"] for b in hook.bodies if b["title"] == "Low electricity balance"]
        assert 1 <= len(low) <= 2 and len(set(low)) == len(low), titles
        assert titles.count("Final notice before disconnection") == 1, titles

        async def both_sinks() -> bool:
            return len(smtp.messages) == len(hook.bodies) >= len(low) + 2

        await wait_for(both_sinks, "the disconnect notice in both sinks")
        actions = (await api.get("/api/v1/prepay/accounts/acc1/actions")).json()
        [trip] = [a for a in actions if a["action"] == "disconnect"]
        command = (await api.get(f"/api/v1/commands/{trip['command_id']}")).json()
        assert command["action"] == "relay_trip" and command["state"] == "executed"
        planned = datetime.fromisoformat(off["disconnect_at"])
        assert datetime.fromisoformat(command["created_at"]) >= planned  # not before the grace

        # a top-up restores supply
        r = await api.post(
            "/api/v1/prepay/accounts/acc1/topups", json={"reference": "BANK-2", "amount": "200.00"}
        )
        assert r.status_code == 201 and r.json()["reconnect"] is True, r.text

        async def supply_on() -> Any:
            acct = await account()
            return acct if acct["supply"] == "on" else None

        await wait_for(supply_on, "the reconnect", timeout=30)
        assert fleet.control.relay(METER)["relay"] == "closed"  # ground truth
