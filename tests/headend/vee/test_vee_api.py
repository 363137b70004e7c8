"""The validation queue over HTTP: listing by area scope, decisions with reasons and roles,
contract capacities; invalid requests are 4xx and change nothing."""

from __future__ import annotations

from decimal import Decimal

from headend.db import writing
from tests.headend.test_prepay_api import run_jobs
from tests.headend.test_prepay_support import add_readings, local

VEE = "/api/v1/vee"


def _get(api, who, path, **params):
    return api.client.get(VEE + path, params=params, headers=api.h(who))


def _post(api, who, path, body, method="post"):
    return getattr(api.client, method)(VEE + path, json=body, headers=api.h(who))


def _held(api):
    with writing(api.engine) as conn:  # A2-m01 (account a2): 10 → 11 → 9011 → 12, hourly
        add_readings(
            conn,
            "A2-m01",
            [(local(2026, 3, 10, 5 + n), v) for n, v in enumerate(["10", "11", "9011", "12"])],
        )
    run_jobs(api)


def test_the_queue_is_scoped_and_a_decision_needs_an_operator_and_a_reason(api):
    _held(api)
    [flag] = _get(api, "vic", "/flags").json()["items"]
    assert flag["rule"] == "plausible_max" and flag["value"] == "9011"
    assert [f["id"] for f in _get(api, "vera", "/flags").json()["items"]] == [flag["id"]]
    path = f"/flags/{flag['id']}/decision"
    assert _post(api, "vic", path, {"decision": "reject", "reason": "x"}).status_code == 403
    assert _post(api, "olga", path, {"decision": "reject", "reason": ""}).status_code == 422
    bad = _post(api, "olga", path, {"decision": "correct", "reason": "misread"})
    assert bad.status_code == 400 and "value" in bad.json()["detail"]
    r = _post(api, "ola", path, {"decision": "correct", "reason": "misread 0→9", "value": "11.5"})
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "corrected" and r.json()["resolved_by"] == "ola"
    again = _post(api, "olga", path, {"decision": "accept", "reason": "x"})
    assert again.status_code == 409
    assert _get(api, "vic", "/flags").json()["items"] == []
    run_jobs(api)
    bal = api.get("vic", "/accounts/a2/balance").json()
    assert Decimal(bal["balance"]) == Decimal("-1.00")  # 10 → 11 → 11.5 → 12: 2 kWh × 0.5


def test_a_scoped_operator_cannot_decide_another_areas_reading(api):
    with writing(api.engine) as conn:
        add_readings(
            conn,
            "A1-m01",
            [(local(2026, 3, 10, 5 + n), v) for n, v in enumerate(["10", "11", "9011"])],
        )
    run_jobs(api)
    [flag] = _get(api, "olga", "/flags").json()["items"]
    assert _get(api, "vera", "/flags").json()["items"] == []
    r = _post(api, "ola", f"/flags/{flag['id']}/decision", {"decision": "reject", "reason": "x"})
    assert r.status_code == 403
    assert (
        _post(
            api, "olga", "/flags/999999/decision", {"decision": "reject", "reason": "x"}
        ).status_code
        == 404
    )


def test_contract_capacity_is_admin_only_and_validated(api):
    body = {"contract_kva": "8"}
    assert _post(api, "olga", "/limits/P-A2-m01", body, "put").status_code == 403
    r = _post(api, "ada", "/limits/P-A2-m01", body, "put")
    assert r.status_code == 200 and r.json()["contract_kva"] == "8"
    assert _post(api, "ada", "/limits/P-nowhere", body, "put").status_code == 404
    assert _post(api, "ada", "/limits/P-A2-m01", {"contract_kva": "-1"}, "put").status_code == 422
    # 8 kVA × 1 h × 1.2 = 9.6 kWh: 10 kWh in an hour is now held.
    with writing(api.engine) as conn:
        add_readings(conn, "A2-m01", [(local(2026, 3, 10, 5), "0"), (local(2026, 3, 10, 6), "10")])
    run_jobs(api)
    [flag] = _get(api, "vic", "/flags").json()["items"]
    assert flag["value"] == "10" and "8" in flag["detail"]
