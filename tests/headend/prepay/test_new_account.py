"""A new prepaid account waits for its opening purchase (开户购电) before the reminder machine
runs: opened and linked with nothing on its ledger, it is not sent a final notice (found by the
prepay end-to-end run: the operator links the meter, and the seconds before the first top-up is
entered sent "final notice before disconnection" and planned a disconnect)."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from sqlalchemy import select

from headend.db import reading, writing
from headend.db.prepay_tables import prepay_reminders
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


def _settle(engine, now):
    with writing(engine) as conn:
        return jobs.settle(conn, "acc1", now, CTX)


def _state(engine):
    with reading(engine) as conn:
        acct = store.account(conn, "acc1")
        keys = conn.execute(select(prepay_reminders.c.key)).scalars().all()
    return acct.stage, acct.disconnect_at, sorted(keys)


def test_an_account_with_an_empty_ledger_is_not_reminded(engine):
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "1.00"})
    open_account(engine, "acc1", ["P-m1"], at=T0)
    assert _settle(engine, T0 + timedelta(minutes=1)) is None
    assert _state(engine) == ("ok", None, [])
    with writing(engine) as conn:  # the opening purchase
        payments.top_up(
            conn,
            "acc1",
            Decimal("100.00"),
            "B1",
            channel="bank",
            paid_at=T0,
            money=MoneySettings(),
            actor="test",
            now=T0 + timedelta(minutes=2),
        )
    assert _settle(engine, T0 + timedelta(minutes=2)) is None
    assert _state(engine) == ("ok", None, [])


def test_the_first_charge_starts_the_machine_even_without_a_payment(engine):
    # 12 kWh at 1.00 on an account nobody paid into: −12.00, the final notice is due.
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "1.00"})
    open_account(engine, "acc1", ["P-m1"], at=T0 - timedelta(hours=1))
    with writing(engine) as conn:
        add_readings(conn, "m1", [(T0, "0"), (T0 + timedelta(hours=1), "12")])
    now = T0 + timedelta(hours=2)
    run_charges(engine, now)
    _settle(engine, now)
    stage, planned, keys = _state(engine)
    assert stage == "final" and planned is not None and "final" in keys
