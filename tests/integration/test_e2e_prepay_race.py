"""Issue 18, case 1 end to end on mosquitto with an accelerated clock: the customer pays while
the disconnect is on its way to the meter.  The trip is followed to its end (the simulated relay
opens: ground truth), a reconnect is opened right after it, and the customer ends with supply
restored — the simulated relay closed, the account's ``supply`` as the meter reported it.

Uses the shared rig of ``test_e2e_flows`` (simulated fleet → gateway → head-end); no gateway
module is imported here.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.integration.test_e2e_flows import TUESDAY, running, wait_for
from tests.integration.test_e2e_prepay import METER, PREPAY, diagnosis

pytestmark = pytest.mark.integration
FACTOR = 240  # a simulated hour in 15 s


async def test_a_payment_while_the_trip_is_in_flight_ends_with_supply_restored(
    mosquitto: Any, tmp_path: Path
) -> None:
    async with running(mosquitto, tmp_path, factor=FACTOR, extra=PREPAY, mean_kw=8.0) as rig:
        api, fleet, clock = rig.api, rig.fleet, rig.app.state.clock
        since = (TUESDAY - timedelta(days=1)).isoformat()
        r = await api.post(
            "/api/v1/prepay/tariffs/res",
            json={"valid_from": since, "definition": {"kind": "flat", "price": "10.00"}},
        )
        assert r.status_code == 201, r.text
        assert (await api.post("/api/v1/prepay/accounts", json={"id": "acc1"})).status_code == 201
        r = await api.post(
            "/api/v1/prepay/accounts/acc1/points",
            json={"point": METER, "valid_from": clock.now().isoformat()},
        )
        assert r.status_code == 201, r.text
        r = await api.post(
            "/api/v1/prepay/accounts/acc1/topups", json={"reference": "BANK-1", "amount": "30.00"}
        )
        assert r.status_code == 201, r.text
        # The meter answers slowly (within the gateway's timeout): the trip takes a while.
        fleet.control.set_faults(METER, late_ms=200)

        async def trip_in_flight() -> Any:
            actions = (await api.get("/api/v1/prepay/accounts/acc1/actions")).json()
            trips = [a for a in actions if a["action"] == "disconnect" and a["command_id"]]
            if not trips:
                return None
            cmd = (await api.get(f"/api/v1/commands/{trips[0]['command_id']}")).json()
            return cmd if cmd["state"] in ("sent", "received") else None

        try:
            cmd = await wait_for(trip_in_flight, "the trip to be on its way to the meter", 90)
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{await diagnosis(api, 'acc1', METER)}") from None
        r = await api.post(
            "/api/v1/prepay/accounts/acc1/topups", json={"reference": "BANK-2", "amount": "300.00"}
        )
        assert r.status_code == 201, r.text
        actions = (await api.get("/api/v1/prepay/accounts/acc1/actions")).json()
        assert actions[0]["action"] == "disconnect" and actions[0]["state"] in ("requested", "done")

        async def restored() -> Any:
            acct = (await api.get("/api/v1/prepay/accounts/acc1")).json()
            relay = fleet.control.relay(METER)["relay"]
            return (
                acct
                if acct["supply"] == "on"
                and relay == "closed"
                and _reconnected((await api.get("/api/v1/prepay/accounts/acc1/actions")).json())
                else None
            )

        acct = await wait_for(restored, "supply restored after the trip", 60)
        assert float(acct["balance"]) > 0
        final = (await api.get(f"/api/v1/commands/{cmd['id']}")).json()
        assert final["state"] == "executed"  # the trip was followed, never dropped blind
        actions = (await api.get("/api/v1/prepay/accounts/acc1/actions")).json()
        states = [(a["action"], a["state"]) for a in reversed(actions)]
        assert states == [("disconnect", "done"), ("reconnect", "done")], states


def _reconnected(actions: list[dict[str, Any]]) -> bool:
    return any(a["action"] == "reconnect" and a["state"] == "done" for a in actions)
