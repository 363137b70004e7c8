"""Case 2 of issue 18: one corrupted reading must not drive a charge or a disconnect.

Hand-computed: meter m1 (no rating on its nameplate: the default 60 A × 220 V = 13.2 kW, margin
1.2 → at most 15.84 kWh in an hour), flat 0.50/kWh, topped up 100.00.  Readings 100, 101, 9101,
102, 103 an hour apart: 9101 is held (plausible_max), the intervals are 100→101, 101→102 (over the
held reading), 102→103: 3 kWh, 1.50, balance 98.50.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from headend.db import reading, writing
from headend.db.errors import Conflict, InvalidRequest
from headend.db.ops_tables import audit_log
from headend.db.prepay_tables import prepay_charges
from headend.prepay import payments
from headend.prepay.money import MoneySettings
from headend.vee import store as vee
from tests.headend.test_prepay_support import (
    add_readings,
    balance,
    local,
    open_account,
    put_tariff,
    run_charges,
    seed_meters,
)

T0 = local(2026, 3, 10, 9)


def _world(engine, values, *, topup="100.00"):
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "0.5"})
    open_account(engine, "acc1", ["P-m1"], at=T0 - timedelta(hours=1))
    with writing(engine) as conn:
        payments.top_up(
            conn,
            "acc1",
            Decimal(topup),
            "B1",
            channel="bank",
            paid_at=T0,
            money=MoneySettings(),
            actor="test",
            now=T0,
        )
        add_readings(conn, "m1", [(T0 + timedelta(hours=n), v) for n, v in enumerate(values)])
    return T0 + timedelta(hours=len(values))


def _flags(engine, state="open"):
    with reading(engine) as conn:
        return vee.queue(conn, state=state)


def _energy(engine):
    with reading(engine) as conn:
        rows = conn.execute(
            select(prepay_charges.c.energy).where(prepay_charges.c.state == "active")
        ).scalars()
        return sum((Decimal(e) for e in rows), Decimal(0))


def test_one_corrupted_reading_is_held_and_never_charged(engine):
    now = _world(engine, ["100", "101", "9101", "102", "103"])
    run_charges(engine, now)
    run_charges(engine, now + timedelta(hours=1), full=True)  # the full pass agrees
    assert _energy(engine) == Decimal(3)
    assert balance(engine, "acc1") == Decimal("98.50")
    [flag] = _flags(engine)
    assert flag["rule"] == "plausible_max" and flag["value"] == "9101"
    assert flag["time"] == T0 + timedelta(hours=2) and flag["previous_value"] == "101"


def test_readings_arriving_one_by_one_give_the_same_result(engine):
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "0.5"})
    open_account(engine, "acc1", ["P-m1"], at=T0 - timedelta(hours=1))
    for n, v in enumerate(["100", "101", "9101", "102", "103"]):
        with writing(engine) as conn:
            add_readings(conn, "m1", [(T0 + timedelta(hours=n), v)])
        run_charges(engine, T0 + timedelta(hours=n, minutes=5))
    assert _energy(engine) == Decimal(3) and balance(engine, "acc1") == Decimal("-1.50")
    assert [f["rule"] for f in _flags(engine)] == ["plausible_max"]


def test_a_correction_splits_the_interval_and_keeps_the_total(engine):
    now = _world(engine, ["100", "101", "9101", "102", "103"])
    run_charges(engine, now)
    [flag] = _flags(engine)
    with writing(engine) as conn:
        vee.resolve(
            conn,
            flag["id"],
            "correct",
            value="101.6",
            reason="digit 9 misread",
            actor="olga",
            now=now,
        )
    run_charges(engine, now + timedelta(hours=1), full=True)
    with reading(engine) as conn:
        rows = conn.execute(
            select(prepay_charges.c.start_value, prepay_charges.c.end_value)
            .where(prepay_charges.c.state == "active")
            .order_by(prepay_charges.c.start)
        ).all()
        [entry] = [a for a in conn.execute(select(audit_log)) if a.action == "vee.correct"]
    assert [(r.start_value, r.end_value) for r in rows] == [
        ("100", "101"),
        ("101", "101.6"),
        ("101.6", "102"),
        ("102", "103"),
    ]
    assert balance(engine, "acc1") == Decimal("98.50")
    assert entry.actor == "olga" and "digit 9 misread" in entry.detail


def test_an_accepted_reading_is_charged_as_read(engine):
    # 39 kWh in an hour is more than a 13.2 kW meter passes: held until an operator looks.
    now = _world(engine, ["100", "101", "140", "141"])
    run_charges(engine, now)
    assert _energy(engine) == Decimal(1)  # 100→101 only: 140 held, 141 is measured against 101
    flags = _flags(engine)
    assert [(f["value"], f["rule"]) for f in flags] == [
        ("140", "plausible_max"),
        ("141", "plausible_max"),
    ]
    with writing(engine) as conn:
        vee.resolve(
            conn,
            flags[0]["id"],
            "accept",
            reason="site visit: welding on the premises",
            actor="olga",
            now=now,
        )
    run_charges(engine, now + timedelta(hours=1), full=True)
    assert _energy(engine) == Decimal(41) and balance(engine, "acc1") == Decimal("79.50")
    assert _flags(engine) == []  # 141 passes against the accepted 140: cleared
    assert [f["value"] for f in _flags(engine, "cleared")] == ["141"]


def test_a_rejected_reading_stays_out(engine):
    now = _world(engine, ["100", "101", "9101", "102"])
    run_charges(engine, now)
    [flag] = _flags(engine)
    with writing(engine) as conn:
        vee.resolve(conn, flag["id"], "reject", reason="bus noise", actor="olga", now=now)
        with pytest.raises(Conflict):
            vee.resolve(conn, flag["id"], "accept", reason="again", actor="olga", now=now)
    run_charges(engine, now + timedelta(hours=1), full=True)
    assert _energy(engine) == Decimal(2) and _flags(engine) == []


def test_a_decision_needs_a_reason_and_a_correction_a_value(engine):
    now = _world(engine, ["100", "101", "9101"])
    run_charges(engine, now)
    [flag] = _flags(engine)
    with writing(engine) as conn:
        with pytest.raises(InvalidRequest):
            vee.resolve(conn, flag["id"], "accept", reason="  ", actor="olga", now=now)
        with pytest.raises(InvalidRequest):
            vee.resolve(conn, flag["id"], "correct", reason="x", value="NaN", actor="o", now=now)
        with pytest.raises(InvalidRequest):
            vee.resolve(conn, flag["id"], "reject", reason="x", value="1", actor="o", now=now)


def test_an_account_with_an_unresolved_failure_is_never_disconnected_automatically(engine):
    from tests.headend.test_reminder_disconnect import _owing_world

    world = _owing_world(engine, start=local(2026, 3, 10, 9))  # owes 5.00, final notice given
    with writing(engine) as conn:  # a corrupted reading slipped in half an hour ago
        add_readings(conn, "m1", [(world.clock.now() - timedelta(minutes=30), "99999")])
    world.tick(1, kwh="0")
    [action] = world.actions()
    assert action.rule == "validation" and world.commands() == []
    assert "1 readings" in action.message
    [flag] = _flags(engine)
    with writing(engine) as conn:
        vee.resolve(
            conn, flag["id"], "reject", reason="frame noise", actor="olga", now=world.clock.now()
        )
    world.clock.current = action.next_try - timedelta(hours=1)
    world.tick(1, kwh="0")
    assert [c.action for c in world.commands()] == ["relay_trip"]


def test_a_spike_is_held_alike_by_fast_and_full_passes(engine):
    # 26 hours at 0.5 kWh an hour, charged as they come (the spike rule's history is the
    # meter's own last 24 charges), then 12 kWh in an hour: 24 × typical, above the 5 kWh floor.
    values = [str(Decimal("0.5") * n) for n in range(27)] + ["25", "25.5"]
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", {"kind": "flat", "price": "0.5"})
    open_account(engine, "acc1", ["P-m1"], at=T0 - timedelta(hours=1))
    for n, v in enumerate(values):
        with writing(engine) as conn:
            add_readings(conn, "m1", [(T0 + timedelta(hours=n), v)])
        run_charges(engine, T0 + timedelta(hours=n, minutes=5))  # fast passes
    # 25.5 against 13 is 12.5 kWh in 2 h (6.25 kWh an hour): a spike too.
    held = [("spike", "25"), ("spike", "25.5")]
    assert [(f["rule"], f["value"]) for f in _flags(engine)] == held
    run_charges(engine, T0 + timedelta(hours=len(values)), full=True)
    assert [(f["rule"], f["value"]) for f in _flags(engine)] == held
    assert _energy(engine) == Decimal(13)  # 0 → 13 over 26 h, nothing of the spike
