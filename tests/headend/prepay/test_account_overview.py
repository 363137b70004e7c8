"""The account overview API: to_restore, a reconnect owed after a payment during an in-flight
disconnect, late fees per bill, payment reversals (冲正), estimates; the ledger filtered by kind."""

from __future__ import annotations

from headend.db import writing
from headend.db.prepay_tables import prepay_actions
from headend.prepay import store
from tests.headend.test_prepay_api import NOW


def _in_flight_disconnect(engine, account):
    history = [
        {"at": NOW.isoformat(), "outcome": "opened", "message": "final notice given"},
        {"at": NOW.isoformat(), "outcome": "requested", "command_id": "c-1"},
        {"at": NOW.isoformat(), "outcome": "superseded", "message": "the account was paid"},
    ]
    with writing(engine) as conn:
        conn.execute(
            prepay_actions.insert().values(
                account=account, action="disconnect", state="requested", command_id="c-1",
                attempts=1, created_at=NOW, updated_at=NOW, history=history,
            )
        )  # fmt: skip


def test_the_overview_shows_what_the_ledger_alone_does_not(api):
    api.post("olga", "/accounts/a2/topups", {"reference": "BANK-1", "amount": "100.00"})
    api.post("olga", "/accounts/a2/topups", {"reference": "BANK-2", "amount": "3.00"})
    assert (
        api.post("sid", "/payments/BANK-1/reversal", {"reason": "cheque bounced"}).status_code
        == 200
    )
    with writing(api.engine) as conn:
        store.post(
            conn, "a2", "late_fee", -20_000, NOW, "latefee:a2:2026-02:2026-03-05",
            actor="prepay", now=NOW, reason="0.001 a day of 20.00 unpaid on a2:2026-02",
        )  # fmt: skip
    _in_flight_disconnect(api.engine, "a2")
    view = api.get("vic", "/accounts/a2/overview").json()
    assert view["balance"] == "2.98" and view["to_restore"] == "0.00"
    assert view["reconnect_owed"]["command"] == "c-1"
    assert view["reconnect_owed"]["message"] == "the account was paid"
    [fee] = view["late_fees"]
    assert (fee["accrues_on"], fee["day"], fee["amount"]) == (
        "a2:2026-02",
        "2026-03-05",
        "0.020000",
    )
    [rev] = view["reversals"]
    assert (rev["payment"], rev["amount"], rev["paid"]) == ("BANK-1", "100.000000", "100.000000")
    assert rev["reason"] == "cheque bounced" and rev["by"] == "sid"
    assert view["estimates"] == [] and view["estimated"] == "0.000000"
    kinds = api.get("vic", "/accounts/a2/ledger", kind=["late_fee", "payment_reversal"]).json()
    assert [x["kind"] for x in kinds["items"]] == ["payment_reversal", "late_fee"]
    assert api.get("vic", "/accounts/a2/ledger", kind="bogus").status_code == 400
    assert api.get("vera", "/accounts/a1/overview").status_code == 403  # another area
    assert api.get("vic", "/accounts/a2/estimates").json() == []


def test_to_restore_is_the_payment_that_reconnects(api):
    with writing(api.engine) as conn:
        store.post(conn, "a1", "fee", -2_641_500, NOW, "f1", actor="t", now=NOW)
    view = api.get("vic", "/accounts/a1/overview").json()
    assert view["balance"] == "-2.64" and view["to_restore"] == "2.65"
    assert view["reconnect_owed"] is None


def test_the_balance_names_the_estimates_it_includes(api):
    from headend.vee.tables import vee_estimates

    api.post("olga", "/accounts/a2/topups", {"reference": "BANK-1", "amount": "10.00"})
    with writing(api.engine) as conn:
        row = conn.execute(
            vee_estimates.insert()
            .values(
                account="a2", point="P-A2-m01", meter="A2-m01", origin=NOW, start=NOW,
                end=NOW, start_value="1", end_value="25", multiplier="1", energy="24",
                rate="1", method="history_mean", amount_micro=12_000_000, lines=[],
                charged=True, state="active", created_at=NOW,
            )
            .returning(vee_estimates.c.id)
        ).one()  # fmt: skip
        store.post(
            conn, "a2", "estimate", -12_000_000, NOW, f"estimate:{row.id}", actor="p", now=NOW
        )
    got = api.get("vic", "/accounts/a2/balance").json()
    assert (got["balance"], got["estimated"], got["balance_metered"]) == ("-2.00", "12.00", "10.00")
    view = api.get("vic", "/accounts/a2/overview").json()
    assert view["estimated"] == "12.000000" and len(view["estimates"]) == 1
    assert api.get("vic", "/accounts/a2/estimates", state="trued_up").json() == []
