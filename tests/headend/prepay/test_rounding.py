"""Case 5 of issue 18: every decision on the balance rounded to the fen, as the customer sees it.

Hand-computed: 5 kWh at 0.5283 is a charge of 2.6415, so the balance is −2.6415 and shown −2.64.
Paying the shown 2.64 leaves −0.0015 exactly, which is 0.00 to the fen: shown "0.00" (never
"−0.00") and treated as 0.00 — at the final-notice balance, not above the reconnect threshold 0,
so the account tells the customer to pay 0.01 more, and 0.01 more restores supply.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select, update

from headend.db import reading, writing
from headend.db.prepay_tables import prepay_accounts, prepay_reminders
from headend.prepay import jobs, payments, store
from headend.prepay.money import MoneySettings
from tests.headend.test_prepay_support import (
    add_readings,
    local,
    open_account,
    put_tariff,
    run_charges,
    seed_meters,
)

T0 = local(2026, 3, 10, 9)
CTX = jobs.Context.from_extra({"prepay": {"quiet_hours": None, "days_thresholds": []}})


def _pay(engine, amount, ref, now):
    with writing(engine) as conn:
        payments.top_up(
            conn,
            "acc1",
            Decimal(amount),
            ref,
            channel="bank",
            paid_at=now,
            money=MoneySettings(),
            actor="test",
            now=now,
        )
        return jobs.settle(conn, "acc1", now, CTX)


def _facts(engine, now):
    with reading(engine) as conn:
        return jobs.facts_of(conn, store.account(conn, "acc1"), now, CTX)


def _world(engine, price, kwh):
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": price})
    open_account(engine, "acc1", ["P-m1"], at=T0 - timedelta(hours=1))
    with writing(engine) as conn:
        add_readings(conn, "m1", [(T0, "0"), (T0 + timedelta(hours=1), kwh)])


def test_paying_the_shown_debt_leaves_zero_not_minus_zero(engine):
    _world(engine, "0.5283", "5")
    now = T0 + timedelta(hours=2)
    run_charges(engine, now)
    assert _facts(engine, now).balance == Decimal("-2.64")
    with writing(engine) as conn:  # as after a prepayment disconnect
        conn.execute(update(prepay_accounts).values(stage="off", supply="off"))
    assert _pay(engine, "2.64", "B1", now) is None  # 0.00 is not above the threshold 0
    facts = _facts(engine, now)
    assert facts.balance == Decimal("0.00") and str(facts.balance) == "0.00"
    assert MoneySettings().show(Decimal("-0.0015")) == "0.00 CNY"
    assert _pay(engine, "0.01", "B2", now) == "reconnect"


def test_a_threshold_is_crossed_by_the_balance_as_shown(engine):
    # 30.00 − 10 kWh × 0.9996 = 20.004, shown 20.00: the "at or below 20" notice is due.
    _world(engine, "0.9996", "10")
    now = T0 + timedelta(hours=2)
    with writing(engine) as conn:
        payments.top_up(
            conn,
            "acc1",
            Decimal("30.00"),
            "B1",
            channel="bank",
            paid_at=T0,
            money=MoneySettings(),
            actor="test",
            now=T0,
        )
    run_charges(engine, now)
    with writing(engine) as conn:
        jobs.settle(conn, "acc1", now, CTX)
        keys = set(conn.execute(select(prepay_reminders.c.key)).scalars())
    assert "balance:20" in keys
