"""The charge job on SQLite and PostgreSQL: ledger rows from readings, idempotent, back-fills,
meter replacements, tiers to the cent; balance = Σ ledger."""

from __future__ import annotations

import json
from datetime import timedelta
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import func, insert, select

from headend.db import reading, writing
from headend.db.prepay_tables import prepay_charges, prepay_ledger
from headend.db.tables import meter_replacements, meters
from headend.prepay import payments, store
from headend.prepay.errors import PaymentConflict
from headend.prepay.money import MoneySettings, from_micro
from tests.headend.test_prepay_support import (
    SINCE,
    TIERED,
    add_readings,
    balance,
    local,
    open_account,
    put_tariff,
    run_charges,
    seed_meters,
)

MONEY = MoneySettings()


@pytest.fixture
def tiered(engine):
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", TIERED)
    open_account(engine, "acc1", ["P-m1"])
    return engine


def ledger_sum(engine, account):
    with reading(engine) as conn:
        rows = store.ledger(conn, account, limit=100_000)
    return sum((Decimal(r["amount"]) for r in rows), Decimal(0))


def test_a_month_of_tiered_charges_to_the_cent_and_rerunning_changes_nothing(tiered):
    # 1 March 1000.00, 15 March 1150.00, 1 April 1480.50: 480.5 kWh in March.
    #   200 × 0.5283 + 200 × 0.5783 + 80.5 × 0.8283 = 105.66 + 115.66 + 66.67815 = 287.99815
    #   → the balance is −287.99815, shown as −288.00 CNY.
    engine = tiered
    with writing(engine) as conn:
        add_readings(
            conn,
            "m1",
            [
                (local(2026, 3, 1), "1000.00"),
                (local(2026, 3, 15), "1150.00"),
                (local(2026, 4, 1), "1480.50"),
            ],
        )
    now = local(2026, 4, 1, 1)
    assert run_charges(engine, now).created == 2
    assert balance(engine, "acc1") == Decimal("-287.99815")
    assert MONEY.round(balance(engine, "acc1")) == Decimal("-288.00")
    for full in (False, True, True):
        again = run_charges(engine, now, full=full)
        assert (again.created, again.reversed) == (0, 0)
    assert balance(engine, "acc1") == Decimal("-287.99815") == ledger_sum(engine, "acc1")


def test_a_late_back_filled_reading_splits_the_interval_without_changing_the_total(tiered):
    engine = tiered
    with writing(engine) as conn:
        add_readings(conn, "m1", [(local(2026, 3, 1), "1000.00"), (local(2026, 4, 1), "1480.50")])
    now = local(2026, 4, 1, 1)
    run_charges(engine, now)
    assert balance(engine, "acc1") == Decimal("-287.99815")
    with writing(engine) as conn:  # the frozen value of 15 March, read back later (补抄)
        add_readings(conn, "m1", [(local(2026, 3, 15), "1150.00")], kind="daily_frozen")
    assert run_charges(engine, now).created == 0  # the fast pass looks at new readings only
    result = run_charges(engine, now + timedelta(hours=1), full=True)
    assert (result.created, result.reversed) == (2, 1)
    assert balance(engine, "acc1") == Decimal("-287.99815")
    with reading(engine) as conn:
        states = conn.execute(
            select(prepay_charges.c.state, func.count()).group_by(prepay_charges.c.state)
        ).all()
        kinds = sorted(r["kind"] for r in store.ledger(conn, "acc1"))
    assert dict(states) == {"active": 2, "reversed": 1}
    assert kinds == ["charge", "charge", "charge", "reversal"]
    assert run_charges(engine, now + timedelta(hours=2), full=True).created == 0


def test_a_meter_replacement_mid_month_bills_the_right_energy(engine):
    # Old meter 500.00 (1 Mar) → 600.00 (10 Mar) → final 620.00 at the change (12 Mar 10:00);
    # new meter starts at 0.50 → 40.50 (20 Mar) → 100.50 (1 Apr).
    # 100 + 20 + 40 + 60 = 220 kWh: 200 × 0.5283 + 20 × 0.5783 = 105.66 + 11.566 = 117.226
    seed_meters(engine, ["old"])
    put_tariff(engine, "res", TIERED)
    open_account(engine, "acc1", ["P-old"])
    at = local(2026, 3, 12, 10)
    with writing(engine) as conn:
        conn.execute(
            insert(meters).values(
                id="new",
                point="P-old",
                area="A1",
                bus="bus1",
                protocol="dlt645-2007",
                address="000000000009",
                tariff_category="res",
                valid_from=at,
            )
        )
        conn.execute(
            insert(meter_replacements).values(
                point="P-old",
                old_meter="old",
                new_meter="new",
                at=at,
                old_final=json.dumps({"energy.active.import.total": "620.00"}),
                new_start=json.dumps({"energy.active.import.total": "0.50"}),
                recorded_at=at,
            )
        )
        add_readings(conn, "old", [(local(2026, 3, 1), "500.00"), (local(2026, 3, 10), "600.00")])
        add_readings(conn, "new", [(local(2026, 3, 20), "40.50"), (local(2026, 4, 1), "100.50")])
    run_charges(engine, local(2026, 4, 1, 1))
    run_charges(engine, local(2026, 4, 1, 2), full=True)
    with reading(engine) as conn:
        rows = conn.execute(
            select(prepay_charges.c.meter, prepay_charges.c.energy)
            .where(prepay_charges.c.state == "active")
            .order_by(prepay_charges.c.start)
        ).all()
    assert [(m, Decimal(e)) for m, e in rows] == [
        ("old", Decimal("100.00")),
        ("old", Decimal("20.00")),
        ("new", Decimal("40.00")),
        ("new", Decimal("60.00")),
    ]
    assert balance(engine, "acc1") == Decimal("-117.226")
    assert MONEY.round(balance(engine, "acc1")) == Decimal("-117.23")


def test_multiplier_and_tou_registers_from_stored_readings(engine):
    # Multiplier 30.  t1..t4 deltas 0.10, 0.35, 0.20, 0.70 → 3, 10.5, 6, 21 kWh
    #   × 1.2, 0.9, 0.6, 0.3 = 3.6 + 9.45 + 3.6 + 6.3 = 22.95
    seed_meters(engine, ["m1"], tariff="tou", multiplier="30")
    put_tariff(
        engine,
        "tou",
        {
            "kind": "tou",
            "prices": {"1": "1.2", "2": "0.9", "3": "0.6", "4": "0.3"},
            "periods": [{"start": "00:00", "end": "00:00", "slot": 3}],
        },
    )
    open_account(engine, "acc1", ["P-m1"])
    t0, t1 = local(2026, 3, 2), local(2026, 3, 3)
    with writing(engine) as conn:
        add_readings(conn, "m1", [(t0, "10.00"), (t1, "11.35")], kind="daily_frozen")
        for n, (a, b) in enumerate(
            [("1.00", "1.10"), ("2.00", "2.35"), ("3.00", "3.20"), ("4.00", "4.70")], start=1
        ):
            add_readings(
                conn,
                "m1",
                [(t0, a), (t1, b)],
                kind="daily_frozen",
                quantity=f"energy.active.import.t{n}",
            )
    run_charges(engine, local(2026, 3, 3, 1))
    assert balance(engine, "acc1") == Decimal("-22.95")


def test_top_ups_are_idempotent_by_external_reference(tiered):
    engine = tiered
    kw = dict(
        channel="bank", paid_at=local(2026, 3, 1), money=MONEY, actor="pay", now=local(2026, 3, 1)
    )
    with writing(engine) as conn:
        first, created = payments.top_up(conn, "acc1", Decimal("100.00"), "BANK-1", **kw)
    with writing(engine) as conn:
        again, created_again = payments.top_up(conn, "acc1", Decimal("100.00"), "BANK-1", **kw)
    assert created and not created_again and first == again
    assert balance(engine, "acc1") == Decimal("100.00")
    with writing(engine) as conn, pytest.raises(PaymentConflict, match="BANK-1"):
        payments.top_up(conn, "acc1", Decimal("50.00"), "BANK-1", **kw)
    assert balance(engine, "acc1") == Decimal("100.00")


def test_charges_before_the_link_are_not_the_accounts(engine):
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "0.5"})
    open_account(engine, "acc1", ["P-m1"], at=local(2026, 3, 10))
    with writing(engine) as conn:
        add_readings(
            conn,
            "m1",
            [(local(2026, 3, 1), "0"), (local(2026, 3, 10), "100"), (local(2026, 3, 11), "110")],
        )
    run_charges(engine, local(2026, 3, 11, 1))
    assert balance(engine, "acc1") == Decimal("-5.0")  # 10 kWh × 0.5; the 100 before are not


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    steps=st.lists(st.decimals(min_value=0, max_value=300, places=2), min_size=1, max_size=6),
    topups=st.lists(st.integers(1, 50_000), max_size=4),
    order=st.randoms(use_true_random=False),
)
def test_balance_is_the_sum_of_the_ledger_whatever_order_readings_arrive_in(
    sqlite_engine, steps, topups, order
):
    engine = sqlite_engine
    with writing(engine) as conn:
        for table in (prepay_ledger, prepay_charges):
            conn.execute(table.delete())
        conn.exec_driver_sql("DELETE FROM readings")
        conn.exec_driver_sql("DELETE FROM vee_flags")
    if not hasattr(engine, "_seeded"):
        seed_meters(engine, ["m1"])
        with writing(engine) as conn:  # up to 300 kWh in 7 h: a 66 kW three-phase meter
            conn.exec_driver_sql("UPDATE meters SET model = 'DTZY 3×220/380V 10(100)A'")
        put_tariff(engine, "res", TIERED)
        open_account(engine, "acc1", ["P-m1"])
        engine._seeded = True  # type: ignore[attr-defined]
    t, v, points = local(2026, 5, 1), Decimal(0), []
    points.append((t, str(v)))
    for e in steps:
        t, v = t + timedelta(hours=7), v + e
        points.append((t, str(v)))
    expected = sum(steps, Decimal(0))
    shuffled = points[:]
    order.shuffle(shuffled)
    now = t + timedelta(hours=1)
    for n, p in enumerate(shuffled):  # readings arrive in any order; the job runs after each
        with writing(engine) as conn:
            add_readings(conn, "m1", [p])
        run_charges(engine, now, full=n % 2 == 1)
    run_charges(engine, now, full=True)
    with writing(engine) as conn:
        for n, cents in enumerate(topups):
            payments.top_up(
                conn,
                "acc1",
                from_micro(cents * 10_000),
                f"T{n}-{cents}",
                channel="x",
                paid_at=now,
                money=MONEY,
                actor="t",
                now=now,
            )
        energy = sum(
            (
                Decimal(e)
                for e in conn.execute(
                    select(prepay_charges.c.energy).where(prepay_charges.c.state == "active")
                ).scalars()
            ),
            Decimal(0),
        )
        conn.exec_driver_sql("DELETE FROM prepay_payments")
    assert energy == expected  # every kWh charged exactly once
    assert balance(engine, "acc1") == ledger_sum(engine, "acc1")
    # The same energy charged in one go costs the same (tiers by month, all in May).
    assert -balance(engine, "acc1") + sum(Decimal(c) / 100 for c in topups) >= 0
    assert run_charges(engine, now, full=True).created == 0
    _ = SINCE
