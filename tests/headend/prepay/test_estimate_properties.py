"""Property: estimating a gap and truing it up when the actual reading arrives leaves the balance
exactly where it would be had the actual reading come in time (tiered prices, month crossings,
any number of estimate passes during the gap)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, select

from headend.db import reading, writing
from headend.db.prepay_tables import prepay_charges, prepay_ledger
from headend.prepay import estimates
from headend.vee.limits import VeeSettings
from headend.vee.tables import vee_estimates
from tests.headend.test_prepay_support import (
    SH,
    TIERED,
    add_readings,
    balance,
    local,
    open_account,
    put_tariff,
    run_charges,
    seed_meters,
)

T0 = local(2026, 3, 25)
POLICY = VeeSettings(estimate_charging="all", estimate_min_history_hours=1)


def _estimate(engine, now):
    @contextmanager
    def factory() -> Iterator[Connection]:
        with writing(engine) as conn:
            yield conn

    return estimates.estimate_all(factory, SH, now=now, settings=POLICY)


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(st.decimals(min_value=0, max_value=9, places=2), min_size=1, max_size=6),
    every=st.sampled_from([1, 6, 12]),
    gap_hours=st.integers(50, 24 * 9),
    passes=st.lists(st.integers(1, 24 * 9), min_size=1, max_size=4).map(lambda p: [*p, 49]),
    actual=st.decimals(min_value=0, max_value=400, places=2),
)
def test_true_up_gives_the_balance_of_an_actual_in_time(
    sqlite_engine, steps, every, gap_hours, passes, actual
):
    engine = sqlite_engine
    with writing(engine) as conn:
        for table in (prepay_ledger, prepay_charges, vee_estimates):
            conn.execute(table.delete())
        conn.exec_driver_sql("DELETE FROM readings")
        conn.exec_driver_sql("DELETE FROM vee_flags")
    if not hasattr(engine, "_seeded"):
        seed_meters(engine, ["late", "ontime"])
        put_tariff(engine, "res", TIERED)
        open_account(engine, "A-late", ["P-late"], at=T0 - timedelta(hours=1))
        open_account(engine, "A-ontime", ["P-ontime"], at=T0 - timedelta(hours=1))
        engine._seeded = True  # type: ignore[attr-defined]
    history, v = [(T0, Decimal(100))], Decimal(100)
    for n, e in enumerate(steps, start=1):
        v += e
        history.append((T0 + timedelta(hours=every * n), v))
    reach = history[-1][0]
    arrived = (reach + timedelta(hours=gap_hours), v + actual)
    with writing(engine) as conn:
        add_readings(conn, "late", [(t, str(x)) for t, x in history])
    run_charges(engine, reach + timedelta(minutes=5))
    for p in sorted(h for h in passes if h < gap_hours):  # passes while the reading is missing
        now = reach + timedelta(hours=p)
        run_charges(engine, now)
        _estimate(engine, now)
    with writing(engine) as conn:
        add_readings(conn, "late", [(arrived[0], str(arrived[1]))])
        add_readings(conn, "ontime", [(t, str(x)) for t, x in [*history, arrived]])
    end = arrived[0] + timedelta(minutes=5)
    run_charges(engine, end)
    _estimate(engine, end)
    assert balance(engine, "A-late") == balance(engine, "A-ontime")
    with reading(engine) as conn:
        e = vee_estimates.c
        assert conn.execute(select(e.id).where(e.state == "active")).first() is None
        made = conn.execute(select(e.amount_micro).where(e.account == "A-late")).scalars().all()
        lg = prepay_ledger.c
        kinds = conn.execute(
            select(lg.kind, lg.amount_micro).where(lg.account == "A-late", lg.kind.like("estim%"))
        ).all()
    event(f"estimated intervals: {min(len(made), 3)}{'+' if len(made) > 3 else ''}")
    # every estimate made was debited and credited back exactly once
    assert sorted(-a for k, a in kinds if k == "estimate") == sorted(made)
    assert sorted(a for k, a in kinds if k == "estimate_trueup") == sorted(made)
