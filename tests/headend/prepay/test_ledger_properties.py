"""Property: whatever order readings, payments and reversals arrive in, the balance is the sum of
the ledger and equals payments − reversed payments − every kWh charged once at its price."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headend.db import writing
from headend.db.prepay_tables import prepay_charges, prepay_ledger, prepay_payments
from headend.prepay import jobs, payments
from headend.prepay.money import MoneySettings, from_micro
from tests.headend.test_prepay_support import (
    add_readings,
    balance,
    local,
    open_account,
    put_tariff,
    seed_meters,
)

CTX = jobs.Context.from_extra({"prepay": {"quiet_hours": None}})
T0 = local(2026, 5, 1)

op = st.one_of(
    st.tuples(st.just("pay"), st.integers(1, 20_000)),  # fen
    st.tuples(st.just("reverse"), st.integers(0, 9)),  # the n-th payment so far, if any
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(st.decimals(min_value=0, max_value=12, places=2), min_size=1, max_size=8),
    ops=st.lists(op, max_size=8),
    order=st.randoms(use_true_random=False),
)
def test_balance_is_the_ledger_in_any_order(sqlite_engine, steps, ops, order):
    engine = sqlite_engine
    with writing(engine) as conn:
        for table in (prepay_ledger, prepay_charges, prepay_payments):
            conn.execute(table.delete())
        conn.exec_driver_sql("DELETE FROM readings")
        conn.exec_driver_sql("DELETE FROM vee_flags")
    if not hasattr(engine, "_seeded"):
        seed_meters(engine, ["m1"])
        put_tariff(engine, "res", {"kind": "flat", "price": "0.5283"})
        open_account(engine, "acc1", ["P-m1"], at=T0 - timedelta(hours=1))
        engine._seeded = True  # type: ignore[attr-defined]
    readings, v = [(T0, Decimal(0))], Decimal(0)
    for n, e in enumerate(steps, start=1):
        v += e
        readings.append((T0 + timedelta(hours=n), v))
    events = [("reading", r) for r in readings] + [(kind, x) for kind, x in ops]
    order.shuffle(events)
    now = T0 + timedelta(hours=len(steps) + 1)
    paid: list[tuple[str, int]] = []
    reversed_: set[str] = set()
    for n, (kind, x) in enumerate(events):
        with writing(engine) as conn:
            if kind == "reading":
                add_readings(conn, "m1", [(x[0], str(x[1]))])
            elif kind == "pay":
                ref = f"P{n}"
                payments.top_up(
                    conn,
                    "acc1",
                    from_micro(x * 10_000),
                    ref,
                    channel="x",
                    paid_at=now,
                    money=MoneySettings(),
                    actor="t",
                    now=now,
                )
                paid.append((ref, x))
            elif paid:
                ref = paid[x % len(paid)][0]
                if ref not in reversed_:
                    payments.reverse_payment(conn, ref, reason="test", actor="t", now=now)
                    reversed_.add(ref)
        j = jobs.PrepayJobs(engine, CTX, _Clock(now))
        j.charge(now)
    j.charge(now)
    with writing(engine) as conn:
        ledger = sum(
            int(a)
            for a in conn.execute(
                prepay_ledger.select().with_only_columns(prepay_ledger.c.amount_micro)
            ).scalars()
        )
    energy = sum(steps, Decimal(0))
    kept = sum(x for ref, x in paid if ref not in reversed_)
    expected = Decimal(kept) / 100 - energy * Decimal("0.5283")
    assert balance(engine, "acc1") == from_micro(ledger) == expected


class _Clock:
    def __init__(self, t):
        self.t = t

    def now(self):
        return self.t
