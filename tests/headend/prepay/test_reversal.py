"""Payment reversal (冲正): its own ledger kind, supervisors only, once, in the reconciliation."""

from __future__ import annotations

from decimal import Decimal

from headend.db import writing
from tests.headend.test_prepay_api import NOW, run_jobs
from tests.headend.test_prepay_support import add_readings, local


def test_a_reversed_payment_is_debited_once_and_reconciled(api):
    api.post("olga", "/accounts/a2/topups", {"reference": "BANK-1", "amount": "100.00"})
    api.post("olga", "/accounts/a2/topups", {"reference": "BANK-2", "amount": "30.00"})
    path = "/payments/BANK-1/reversal"
    assert api.post("olga", path, {"reason": "cheque bounced"}).status_code == 403
    assert api.post("sid", "/payments/BANK-1/reversal", {"reason": ""}).status_code == 422
    r = api.post("sid", path, {"reason": "cheque bounced"})  # sid: supervisor of A2
    assert r.status_code == 200, r.text
    assert r.json()["state"] == "reversed" and r.json()["balance"] == "30.00"
    assert api.post("sam", path, {"reason": "again"}).status_code == 409
    assert api.post("sam", "/payments/NOPE/reversal", {"reason": "x"}).status_code == 404
    rows = api.get("vic", "/accounts/a2/ledger").json()["items"]
    kinds = [(x["kind"], x["amount"]) for x in rows]
    assert kinds == [
        ("topup", "100.000000"),
        ("topup", "30.000000"),
        ("payment_reversal", "-100.000000"),
    ]
    assert sum(Decimal(x["amount"]) for x in rows) == Decimal(30)
    rec = api.get("sam", "/reconciliation", day=NOW.date().isoformat()).json()
    assert rec["received"] == "130.000000" and rec["credited"] == "130.000000"
    assert rec["reversed"] == "100.000000" and rec["net"] == "30.000000"
    assert [x["reference"] for x in rec["reversals"]] == ["BANK-1"]
    assert rec["reversals"][0]["reason"] == "cheque bounced" and rec["balanced"] is True


def test_a_scoped_supervisor_cannot_reverse_another_areas_payment(api):
    api.post("olga", "/accounts/a1/topups", {"reference": "BANK-A1", "amount": "10.00"})
    r = api.post("sid", "/payments/BANK-A1/reversal", {"reason": "wrong account"})
    assert r.status_code == 403
    run_jobs(api)
    assert api.get("vic", "/accounts/a1/balance").json()["balance"] == "10.00"


def test_the_account_shows_what_restores_supply(api):
    with writing(api.engine) as conn:
        add_readings(conn, "A2-m01", [(local(2026, 3, 9), "0"), (local(2026, 3, 10), "5.283")])
    run_jobs(api)
    acct = api.get("vic", "/accounts/a2").json()
    # 5.283 kWh × 0.5 = 2.6415: shown −2.64, and 2.65 lifts it above the threshold 0.
    assert acct["balance"] == "-2.64" and acct["balance_exact"] == "-2.641500"
    assert acct["to_restore"] == "2.65" and acct["customer_class"] == "residential"


def test_retrying_a_failed_action_needs_an_operator_and_a_failed_action(api):
    from headend.db.prepay_tables import prepay_actions

    with writing(api.engine) as conn:
        conn.execute(
            prepay_actions.insert().values(
                account="a2", action="disconnect", state="failed", attempts=3,
                rule="max_attempts", created_at=NOW, updated_at=NOW, history=[],
            )
        )  # fmt: skip
    path = "/accounts/a2/actions/retry"
    assert api.post("vic", path, {"reason": "x"}).status_code == 403
    assert api.post("ola", path, {"reason": ""}).status_code == 422
    r = api.post("ola", path, {"reason": "the meter answers again"})
    assert r.status_code == 201, r.text
    assert api.post("ola", path, {"reason": "again"}).status_code == 409
    states = [a["state"] for a in api.get("vic", "/accounts/a2/actions").json()]
    assert states[-1] == "failed" and states[0] in ("waiting", "requested")
