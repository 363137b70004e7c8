"""Case 4 of issue 18: tiers per account per tier period, hand-computed.

Monthly tariff: 200 kWh at 0.5283, up to 400 at 0.5783, above at 0.8283 (``TIERED``).
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from headend.db import writing
from headend.db.prepay_tables import prepay_charges, prepay_ledger
from headend.prepay import jobs, store
from tests.headend.test_prepay_support import (
    TIERED,
    add_readings,
    balance,
    local,
    open_account,
    put_tariff,
    seed_meters,
)

YEARLY = {
    "kind": "tiered",
    "period": "yearly",
    "steps": [
        {"upto": "2160", "price": "0.4883"},
        {"upto": "4200", "price": "0.5383"},
        {"upto": None, "price": "0.7883"},
    ],
}


class _Clock:
    def __init__(self, t):
        self.t = t

    def now(self):
        return self.t


def _charge(engine, now, extra=None):
    ctx = jobs.Context.from_extra({"prepay": {"quiet_hours": None, **(extra or {})}})
    jobs.PrepayJobs(engine, ctx, _Clock(now)).charge(now)  # a full pass: charges, true-up


def _readings(engine, meter, *points):
    with writing(engine) as conn:
        add_readings(conn, meter, [(local(*d), v) for d, v in points])


def test_two_meters_of_one_household_share_the_yearly_steps(engine):
    # 2 × 2000 kWh in January: 2160 × 0.4883 + 1840 × 0.5383 = 1054.728 + 990.472 = 2045.20
    seed_meters(engine, ["m1", "m2"])
    put_tariff(engine, "res", YEARLY)
    open_account(engine, "acc1", ["P-m1", "P-m2"], at=local(2026, 1, 1))
    for m in ("m1", "m2"):
        _readings(engine, m, ((2026, 1, 1), "0"), ((2026, 2, 1), "2000"))
    _charge(engine, local(2026, 2, 1, 1))
    assert balance(engine, "acc1") == Decimal("-2045.200000")
    _charge(engine, local(2026, 2, 1, 2))  # again: nothing more
    assert balance(engine, "acc1") == Decimal("-2045.200000")


def test_a_new_connection_mid_month_gets_a_pro_rated_allowance(engine):
    # 新装 on 16 April: 15 of 30 days → steps at 100 and 200 kWh.
    # 120 kWh: 100 × 0.5283 + 20 × 0.5783 = 52.83 + 11.566 = 64.396
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", TIERED)
    open_account(engine, "acc1", ["P-m1"], at=local(2026, 4, 16))
    _readings(engine, "m1", ((2026, 4, 16), "0"), ((2026, 5, 1), "120"))
    _charge(engine, local(2026, 5, 1, 1))
    assert balance(engine, "acc1") == Decimal("-64.396")


def test_a_new_occupant_does_not_inherit_the_previous_ones_usage(engine):
    # 过户 on 16 April.  X (1–16 April, steps 100/200): 250 kWh = 100 × 0.5283 + 100 × 0.5783
    # + 50 × 0.8283 = 152.075.  Y (16–30 April, steps 100/200): 100 kWh × 0.5283 = 52.83.
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", TIERED)
    open_account(engine, "x", ["P-m1"], at=local(2026, 4, 1))
    with writing(engine) as conn:
        at = local(2026, 4, 16)
        store.unlink_point(conn, "x", "P-m1", at, actor="t", now=at)
        store.create_account(conn, "y", mode="prepaid", actor="t", now=at)
        store.link_point(conn, "y", "P-m1", at, actor="t", now=at)
    _readings(engine, "m1", ((2026, 4, 1), "0"), ((2026, 4, 16), "250"), ((2026, 5, 1), "350"))
    _charge(engine, local(2026, 5, 1, 1))
    assert balance(engine, "x") == Decimal("-152.075")
    assert balance(engine, "y") == Decimal("-52.83")


def test_the_tier_year_starts_where_configured(engine):
    # Tier year from 1 July: June's 150 kWh end the 2025 year (100 × 0.5 + 50 × 1.0 = 100.00);
    # July's 50 kWh start the 2026 year at step 1 (25.00).  A calendar year would charge 50.00.
    seed_meters(engine, ["m1"])
    steps = [{"upto": "100", "price": "0.5"}, {"upto": None, "price": "1.0"}]
    put_tariff(
        engine, "res", {"kind": "tiered", "period": "yearly", "steps": steps}, at=local(2025, 7, 1)
    )
    open_account(engine, "acc1", ["P-m1"], at=local(2025, 7, 1))
    _readings(engine, "m1", ((2026, 6, 1), "0"), ((2026, 7, 1), "150"), ((2026, 8, 1), "200"))
    _charge(engine, local(2026, 8, 1, 1), {"tier_year_start": "07-01"})
    assert balance(engine, "acc1") == Decimal("-125.0")


def test_a_large_household_allowance_raises_every_step(engine):
    # tier_extra 100 kWh a month: steps at 300 and 500; 250 kWh × 0.5283 = 132.075
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", TIERED)
    with writing(engine) as conn:
        at = local(2026, 4, 1)
        store.create_account(
            conn, "big", mode="prepaid", tier_extra=Decimal(100), actor="t", now=at
        )
        store.link_point(conn, "big", "P-m1", at, actor="t", now=at)
    _readings(engine, "m1", ((2026, 4, 1), "0"), ((2026, 5, 1), "250"))
    _charge(engine, local(2026, 5, 1, 1))
    assert balance(engine, "big") == Decimal("-132.075")


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    a=st.lists(st.integers(0, 300), min_size=1, max_size=5),
    b=st.lists(st.integers(0, 300), min_size=1, max_size=5),
)
def test_account_tier_totals_do_not_depend_on_how_the_month_is_read(sqlite_engine, a, b):
    """Two meters read in any number of steps: the account pays the tiers on its total."""
    engine = sqlite_engine
    with writing(engine) as conn:
        for table in (prepay_ledger, prepay_charges):
            conn.execute(table.delete())
        conn.exec_driver_sql("DELETE FROM readings")
        conn.exec_driver_sql("DELETE FROM vee_flags")
    if not hasattr(engine, "_seeded"):
        seed_meters(engine, ["m1", "m2"])
        with writing(engine) as conn:
            conn.exec_driver_sql("UPDATE meters SET model = 'DTZY 3×220/380V 10(100)A'")
        put_tariff(engine, "res", TIERED)
        open_account(engine, "acc1", ["P-m1", "P-m2"], at=local(2026, 4, 1))
        engine._seeded = True  # type: ignore[attr-defined]
    total = Decimal(0)
    for meter, steps in (("m1", a), ("m2", b)):
        t, v = local(2026, 4, 1), 0
        points = [(t, "0")]
        for n, e in enumerate(steps, start=1):
            v += e
            points.append((local(2026, 4, 1) + timedelta(hours=6 * n), str(v)))
        with writing(engine) as conn:
            add_readings(conn, meter, points)
        total += v
    _charge(engine, local(2026, 5, 1))
    e = total
    expected = min(e, 200) * Decimal("0.5283") + max(0, min(e, 400) - 200) * Decimal("0.5783")
    expected += max(0, e - 400) * Decimal("0.8283")
    # Each charge is rounded to the micro-unit once: at most half a micro each.
    assert abs(-balance(engine, "acc1") - expected) <= Decimal("0.000001") * (len(a) + len(b))


def test_tou_with_tiers_surcharges_the_households_total(engine):
    # Two meters, 150 kWh each over 1 March (no registers: shared by time, 8 h valley, 12 h
    # peak, 4 h flat = 50 / 75 / 25 kWh): base 50 × 0.3 + 75 × 0.8 + 25 × 0.5 = 87.5 each, 175.
    # Surcharge on the household's 300 kWh: 100 × 0 + 100 × 0.05 + 100 × 0.3 = 35.  Total 210.
    from tests.headend.prepay.test_tou_tiers import TOU_TIERED

    seed_meters(engine, ["m1", "m2"])
    put_tariff(engine, "res", TOU_TIERED)
    open_account(engine, "acc1", ["P-m1", "P-m2"], at=local(2026, 3, 1))
    for m in ("m1", "m2"):
        _readings(engine, m, ((2026, 3, 1), "0"), ((2026, 3, 2), "150"))
    _charge(engine, local(2026, 3, 2, 1))
    assert balance(engine, "acc1") == Decimal("-210")


def test_a_threshold_change_mid_month_is_pro_rated(engine):
    # Step 1 ends at 200 kWh until 16 April, at 100 from then: April's bound is
    # 200 × 15/30 + 100 × 15/30 = 150.  180 kWh: 150 × 0.5283 + 30 × 0.5783 = 96.594.
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", TIERED, at=local(2026, 4, 1))
    lower = {**TIERED, "steps": [{**TIERED["steps"][0], "upto": "100"}, *TIERED["steps"][1:]]}
    put_tariff(engine, "res", lower, at=local(2026, 4, 16))
    open_account(engine, "acc1", ["P-m1"], at=local(2026, 4, 1))
    _readings(engine, "m1", ((2026, 4, 1), "0"), ((2026, 5, 1), "180"))
    _charge(engine, local(2026, 5, 1, 1))
    assert balance(engine, "acc1") == Decimal("-96.594")
