"""Case 3 of issue 18: postpaid bills after the month-end freeze (or at the cut-off), late charges
on the next bill, late fees per customer class — all hand-computed at 0.50/kWh."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select

from headend.db import reading, writing
from headend.db.prepay_tables import prepay_bills, prepay_ledger
from headend.prepay import jobs, payments
from headend.prepay.money import MoneySettings, from_micro
from taiqu.clock import ManualClock
from tests.headend.test_prepay_support import (
    add_readings,
    local,
    open_account,
    put_tariff,
    seed_meters,
)

EXTRA = {
    "prepay": {
        "quiet_hours": None,
        "late_fees": {"residential": {"rate": "0.001"}, "commercial": {"rate": "0.002"}},
    }
}


# without estimates (the default policy bills an open gap's estimate: test_an_estimated_bill_…)
NO_ESTIMATES = {**EXTRA, "vee": {"estimate_charging": "none"}}


def _world(engine, cls="residential", extra=EXTRA):
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "0.5"})
    open_account(engine, "pp", ["P-m1"], mode="postpaid", at=local(2026, 1, 31))
    if cls != "residential":
        with writing(engine) as conn:
            conn.exec_driver_sql(f"UPDATE prepay_accounts SET customer_class = '{cls}'")
    clock = ManualClock(local(2026, 2, 1, 1))
    return jobs.PrepayJobs(engine, jobs.Context.from_extra(extra), clock)


def _frozen(engine, *points):
    with writing(engine) as conn:
        add_readings(conn, "m1", [(local(*d), v) for d, v in points], kind="daily_frozen")


def _run(j, *at):
    j.clock.current = local(*at)
    return j.run_once()


def _bills(engine):
    with reading(engine) as conn:
        rows = conn.execute(select(prepay_bills).order_by(prepay_bills.c.period)).all()
    return [(r.period, str(MoneySettings().round(from_micro(r.amount_micro)))) for r in rows]


def test_the_bill_waits_for_the_month_end_freeze(engine):
    j = _world(engine)
    _frozen(engine, ((2026, 2, 1), "1000"), ((2026, 2, 15), "1040"))
    _run(j, 2026, 3, 1, 0, 30)  # the 00:00 freeze of 1 March is not read yet
    assert _bills(engine) == []
    _frozen(engine, ((2026, 3, 1), "1100"))  # read at 02:00
    _run(j, 2026, 3, 1, 2, 10)
    assert _bills(engine) == [("2026-02", "50.00")]  # 100 kWh × 0.50, not 40 kWh


def test_a_charge_created_after_the_cut_off_goes_on_the_next_bill(engine):
    j = _world(engine, extra=NO_ESTIMATES)
    _frozen(engine, ((2026, 2, 1), "1000"), ((2026, 2, 15), "1040"))
    _run(j, 2026, 3, 3, 23)  # 71 h after the month's end: still waiting for the freeze
    assert _bills(engine) == []
    _run(j, 2026, 3, 4, 1)  # 73 h: the cut-off bills what there is: 40 kWh
    assert _bills(engine) == [("2026-02", "20.00")]
    _frozen(engine, ((2026, 3, 1), "1100"))  # the freeze arrives on 5 March (补抄)
    _run(j, 2026, 3, 5, 9)
    _frozen(engine, ((2026, 4, 1), "1200"))
    _run(j, 2026, 4, 1, 1)
    # March: its own 100 kWh (50.00) and February's late 60 kWh (30.00).
    assert _bills(engine) == [("2026-02", "20.00"), ("2026-03", "80.00")]
    with reading(engine) as conn:
        [march] = conn.execute(select(prepay_bills).where(prepay_bills.c.period == "2026-03"))
        unbilled = conn.execute(
            select(prepay_ledger.c.id).where(
                prepay_ledger.c.kind == "charge", prepay_ledger.c.bill.is_(None)
            )
        ).all()
    assert march.lines[-1] == {"rows": 2, "late": 1} and unbilled == []


def test_an_estimated_bill_is_trued_up_on_the_next_bill(engine):
    """The default policy bills an open gap's estimate.  Readings 1000 (1 Feb), 1040 (15 Feb):
    40 kWh in 14 days.  At the cut-off (4 March 01:00) nothing since 15 Feb: estimated at the same
    rate to the midnights up to 4 March; February's bill = 40 kWh actual (20.00) + 14 days
    estimated (40 kWh, 20.00) = 40.00.  The freeze of 1 March (1100) then replaces the estimates:
    March's bill = February's late 60 kWh (30.00) − February's estimate (20.00) + March's own
    100 kWh (50.00) = 60.00; the two bills together are 200 kWh × 0.50 = 100.00, nothing twice."""
    j = _world(engine)
    _frozen(engine, ((2026, 2, 1), "1000"), ((2026, 2, 15), "1040"))
    _run(j, 2026, 3, 4, 1)
    assert _bills(engine) == [("2026-02", "40.00")]
    with reading(engine) as conn:
        [feb] = conn.execute(select(prepay_bills).where(prepay_bills.c.period == "2026-02"))
    assert {"kind": "estimate", "amount": "20.000000"} in feb.lines
    _frozen(engine, ((2026, 3, 1), "1100"))
    _run(j, 2026, 3, 5, 9)
    _frozen(engine, ((2026, 4, 1), "1200"))
    _run(j, 2026, 4, 1, 1)
    assert _bills(engine) == [("2026-02", "40.00"), ("2026-03", "60.00")]
    with reading(engine) as conn:
        [march] = conn.execute(select(prepay_bills).where(prepay_bills.c.period == "2026-03"))
    kinds = {line["kind"]: line["amount"] for line in march.lines if "kind" in line}
    assert kinds["charge"] == "80.000000"  # February's late 60 kWh and March's 100 kWh
    # February's estimate back (+20.00) net of March's own estimates, debited and credited (0)
    assert Decimal(kinds["estimate_trueup"]) + Decimal(kinds.get("estimate", 0)) == Decimal(-20)


def _overdue_world(engine, cls):
    j = _world(engine, cls)
    _frozen(engine, ((2026, 2, 1), "1000"), ((2026, 3, 1), "1100"))
    _run(j, 2026, 3, 1, 1)  # bill 2026-02: 50.00, due 16 March 01:00
    assert _bills(engine) == [("2026-02", "50.00")]
    return j


def _fees(engine):
    with reading(engine) as conn:
        rows = conn.execute(
            select(prepay_ledger.c.reference, prepay_ledger.c.amount_micro)
            .where(prepay_ledger.c.kind == "late_fee")
            .order_by(prepay_ledger.c.reference)
        ).all()
    return [
        (r.reference.rsplit(":", 1)[1], str(-from_micro(r.amount_micro)).rstrip("0")) for r in rows
    ]


def test_late_fees_accrue_per_day_until_paid(engine):
    j = _overdue_world(engine, "residential")
    _run(j, 2026, 3, 17, 12)  # 16 March is the due day; no full overdue day yet
    assert _fees(engine) == []
    _run(j, 2026, 3, 20, 10)  # 17, 18, 19 March over: 3 × 1‰ × 50.00 = 3 × 0.05
    assert _fees(engine) == [
        ("2026-03-17", "0.05"),
        ("2026-03-18", "0.05"),
        ("2026-03-19", "0.05"),
    ]
    _run(j, 2026, 3, 20, 11)  # running again charges nothing twice
    assert len(_fees(engine)) == 3
    now = local(2026, 3, 20, 11)
    with writing(engine) as conn:
        payments.top_up(
            conn,
            "pp",
            Decimal("50.00"),
            "P1",
            channel="bank",
            paid_at=now,
            money=MoneySettings(),
            actor="t",
            now=now,
        )
    _run(j, 2026, 3, 25, 10)  # paid during 20 March: no fee for it or after
    assert len(_fees(engine)) == 3
    _frozen(engine, ((2026, 4, 1), "1100"))
    _run(j, 2026, 4, 1, 1)  # the fees go on the next bill: 0 kWh + 0.15
    assert _bills(engine)[-1] == ("2026-03", "0.15")


def test_the_late_fee_rate_is_the_customer_class(engine):
    j = _overdue_world(engine, "commercial")
    _run(j, 2026, 3, 18, 10)  # 17 March over: 2‰ × 50.00
    assert _fees(engine) == [("2026-03-17", "0.1")]
