"""Estimation (VEE's E): an open gap estimated, flagged, charged where the policy allows, trued up.

Hand-computed world: meter m1, flat 0.50/kWh, topped up 100.00, readings every 6 h from 2026-03-01
00:00 (Shanghai) at 3 kWh each: 100 … 148 at 03-05 00:00 — 48 kWh, 24.00, balance 76.00.  Then
nothing.  At 03-07 12:00 the gap is 60 h (≥ 48 h): the rate is 48 kWh / 96 h = 0.5 kWh/h, so the
estimates are 03-05→03-06 148→160 and 03-06→03-07 160→172: 24 kWh, 12.00, balance 64.00.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from decimal import Decimal

from sqlalchemy import Connection, select

from headend.db import reading, writing
from headend.db.prepay_tables import prepay_accounts, prepay_ledger
from headend.prepay import charging, estimates, jobs, payments
from headend.prepay.money import MoneySettings, from_micro
from headend.prepay.reminders import Facts, owes
from headend.vee.limits import VeeSettings
from headend.vee.tables import vee_estimates
from tests.headend.test_prepay_support import (
    SH,
    add_readings,
    balance,
    local,
    open_account,
    put_tariff,
    run_charges,
    seed_meters,
)

T0 = local(2026, 3, 1)
REACH = local(2026, 3, 5)
ALL = VeeSettings(estimate_charging="all")


FLAT = {"kind": "flat", "price": "0.5"}


def world(engine, *, mode="prepaid", topup="100.00", kind="interval", tariff=FLAT):
    seed_meters(engine, ["m1"])
    put_tariff(engine, "res", tariff)
    open_account(engine, "acc1", ["P-m1"], mode=mode, at=T0 - timedelta(hours=1))
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
        add_readings(
            conn,
            "m1",
            [(T0 + timedelta(hours=6 * k), str(100 + 3 * k)) for k in range(17)],
            kind=kind,
        )
    run_charges(engine, REACH + timedelta(minutes=5))


def estimate(engine, now, settings=ALL):
    @contextmanager
    def factory() -> Iterator[Connection]:
        with writing(engine) as conn:
            yield conn

    return estimates.estimate_all(factory, SH, now=now, settings=settings)


def rows(engine, state=None):
    with reading(engine) as conn:
        return estimates.listing(conn, "acc1", state=state)[::-1]


def kinds(engine):
    with reading(engine) as conn:
        return [
            (r.kind, from_micro(r.amount_micro))
            for r in conn.execute(
                select(prepay_ledger.c.kind, prepay_ledger.c.amount_micro)
                .where(prepay_ledger.c.kind != "topup")
                .order_by(prepay_ledger.c.id)
            )
        ][16:]  # after the 16 actual charges of the history


def test_a_short_gap_is_not_estimated(engine):
    world(engine)
    assert balance(engine, "acc1") == Decimal("76.00")
    assert estimate(engine, REACH + timedelta(hours=47)).created == 0
    assert rows(engine) == []


def test_an_open_gap_is_estimated_flagged_and_charged(engine):
    world(engine)
    result = estimate(engine, local(2026, 3, 7, 12))
    assert result.created == 2
    est = rows(engine)
    assert [(r["start"], r["end"], r["start_value"], r["end_value"]) for r in est] == [
        (REACH, local(2026, 3, 6), "148", "160.00"),
        (local(2026, 3, 6), local(2026, 3, 7), "160.00", "172.00"),
    ]
    assert {r["method"] for r in est} == {"history_mean"} and all(r["charged"] for r in est)
    assert [Decimal(r["amount"]) for r in est] == [Decimal("6.00"), Decimal("6.00")]
    assert balance(engine, "acc1") == Decimal("64.00")
    assert kinds(engine) == [("estimate", Decimal(-6)), ("estimate", Decimal(-6))]
    # the next pass the same day adds nothing; the next day one more interval
    assert estimate(engine, local(2026, 3, 7, 13)).created == 0
    assert estimate(engine, local(2026, 3, 8, 1)).created == 1
    assert rows(engine)[-1]["end_value"] == "184.00"
    assert balance(engine, "acc1") == Decimal("58.00")


def _actual(engine, value, at=local(2026, 3, 7, 6)):
    with writing(engine) as conn:
        add_readings(conn, "m1", [(at, value)])
    now = local(2026, 3, 7, 12, 30)
    run_charges(engine, now)
    return estimate(engine, now)


def test_the_actual_reading_higher_than_estimated_charges_the_difference(engine):
    world(engine)
    estimate(engine, local(2026, 3, 7, 12))
    assert balance(engine, "acc1") == Decimal("64.00")
    # 175 at 03-07 06:00: 27 kWh since 148 = 13.50 against 12.00 estimated: 1.50 more
    assert _actual(engine, "175").trued_up == 2
    assert balance(engine, "acc1") == Decimal("62.50")
    assert kinds(engine) == [
        ("estimate", Decimal(-6)),
        ("estimate", Decimal(-6)),
        ("charge", Decimal("-13.5")),
        ("estimate_trueup", Decimal(6)),
        ("estimate_trueup", Decimal(6)),
    ]
    assert rows(engine, "active") == []
    assert {r["actual_until"] for r in rows(engine)} == {local(2026, 3, 7, 6)}
    # 30 h after the actual reading: no new estimate, nothing moves twice
    assert estimate(engine, local(2026, 3, 8, 12)).created == 0
    assert balance(engine, "acc1") == Decimal("62.50")


def test_the_actual_reading_lower_than_estimated_credits_the_difference(engine):
    world(engine)
    estimate(engine, local(2026, 3, 7, 12))
    # 166: 18 kWh = 9.00 against 12.00 estimated: 3.00 back
    _actual(engine, "166")
    assert balance(engine, "acc1") == Decimal("67.00")
    assert sum(a for _, a in kinds(engine)) == Decimal(-9)


def test_an_actual_reading_inside_the_gap_replaces_every_estimate(engine):
    world(engine)
    estimate(engine, local(2026, 3, 8, 12))  # three days estimated: 148→160→172→184
    assert balance(engine, "acc1") == Decimal("58.00")
    # the daily freeze of 03-06 00:00 arrives late: 158 (10 kWh, 5.00); the gap since is 60 h
    with writing(engine) as conn:
        add_readings(conn, "m1", [(local(2026, 3, 6), "158")], kind="daily_frozen")
    run_charges(engine, local(2026, 3, 8, 12, 5))
    estimate(engine, local(2026, 3, 8, 12, 5))
    active = rows(engine, "active")
    # re-estimated from the actual 158 at the history up to it: 58 kWh in 120 h
    assert [(r["start"], r["start_value"]) for r in active] == [
        (local(2026, 3, 6), "158"),
        (local(2026, 3, 7), active[0]["end_value"]),
    ]  # to the midnights 03-07 and 03-08
    rate = Decimal(58) / 120
    assert Decimal(active[0]["end_value"]) == 158 + (rate * 24).quantize(Decimal("0.01"))
    estimated = sum(Decimal(r["amount"]) for r in active)
    assert balance(engine, "acc1") == Decimal("100") - Decimal(29) - estimated


def test_the_charge_job_trues_up_in_the_transaction_of_the_actual_charge(engine):
    world(engine)
    estimate(engine, local(2026, 3, 7, 12))
    with writing(engine) as conn:
        add_readings(conn, "m1", [(local(2026, 3, 7, 6), "175")])

    @contextmanager
    def factory() -> Iterator[Connection]:
        with writing(engine) as conn:
            yield conn

    charging.charge_all(
        factory,
        SH,
        now=local(2026, 3, 7, 12, 30),
        full=False,
        lookback=timedelta(days=62),
        after_point=estimates.true_up_point,
    )
    assert rows(engine, "active") == [] and balance(engine, "acc1") == Decimal("62.50")


def test_a_closed_account_is_not_estimated_past_its_closing(engine):
    world(engine)
    with writing(engine) as conn:
        conn.execute(prepay_accounts.update().values(closed_at=local(2026, 3, 6, 12)))
    estimate(engine, local(2026, 3, 9))
    assert [r["end"] for r in rows(engine)] == [local(2026, 3, 6)]


def test_policy_postpaid_records_prepaid_estimates_without_charging(engine):
    world(engine)
    estimate(engine, local(2026, 3, 7, 12), VeeSettings())  # the default policy
    est = rows(engine)
    assert len(est) == 2 and not any(r["charged"] for r in est)
    assert balance(engine, "acc1") == Decimal("76.00")
    _actual(engine, "175")
    assert balance(engine, "acc1") == Decimal("62.50")  # only the actual charge
    assert [k for k, _ in kinds(engine)] == ["charge"]


def test_policy_postpaid_charges_postpaid_accounts(engine):
    world(engine, mode="postpaid", kind="daily_frozen")
    estimate(engine, local(2026, 3, 7, 12), VeeSettings())
    assert all(r["charged"] for r in rows(engine))
    assert balance(engine, "acc1") == Decimal("64.00")


def test_estimates_climb_the_tiers_with_the_metered_usage(engine):
    """Monthly tiers: 0.50 up to 55 kWh, 1.00 above.  Metered 48 kWh in March (24.00); the
    estimates 148→160 (48→60 kWh: 7 × 0.50 + 5 × 1.00 = 8.50) and 160→172 (12 × 1.00 = 12.00)."""
    steps = [{"upto": "55", "price": "0.5"}, {"upto": None, "price": "1"}]
    world(engine, tariff={"kind": "tiered", "period": "monthly", "steps": steps})
    assert balance(engine, "acc1") == Decimal("76.00")
    estimate(engine, local(2026, 3, 7, 12))
    assert [Decimal(r["amount"]) for r in rows(engine)] == [Decimal("8.50"), Decimal("12.00")]
    # the next day's estimate counts the earlier ones: 12 × 1.00
    estimate(engine, local(2026, 3, 8, 1))
    assert Decimal(rows(engine)[-1]["amount"]) == Decimal("12.00")
    assert balance(engine, "acc1") == Decimal("43.50")


def test_no_estimate_without_enough_history(engine):
    world(engine)
    short = VeeSettings(estimate_charging="all", estimate_min_history_hours=97)
    assert estimate(engine, local(2026, 3, 7, 12), short).created == 0


def test_no_estimate_further_than_the_limit(engine):
    world(engine)
    capped = VeeSettings(estimate_charging="all", estimate_max_days=2)
    estimate(engine, local(2026, 3, 20), capped)
    assert [r["end"] for r in rows(engine)] == [local(2026, 3, 6), local(2026, 3, 7)]


def test_estimated_consumption_alone_never_disconnects(engine):
    """Topped up 30.00: 24.00 of metered use leaves 6.00; 12.00 estimated shows −6.00, but the
    final notice and the disconnect look at the metered 6.00."""
    world(engine, topup="30.00")
    estimate(engine, local(2026, 3, 7, 12))
    assert balance(engine, "acc1") == Decimal("-6.00")
    ctx = jobs.Context.from_extra({"prepay": {"quiet_hours": None, "grace_hours": 0}})
    now = local(2026, 3, 7, 12)
    with writing(engine) as conn:
        acct = jobs.store.account(conn, "acc1")
        facts = jobs.facts_of(conn, acct, now, ctx)
        assert facts.balance == Decimal("-6.00") and facts.estimated == Decimal("12.00")
        assert not owes(facts)
        assert jobs.settle(conn, "acc1", now, ctx) is None
        acct = jobs.store.account(conn, "acc1")
    assert acct.stage == "notice" and acct.disconnect_at is None  # low-balance notice, no final
    # once the actual reading says the same, the account owes
    _actual(engine, "172", at=local(2026, 3, 7))
    with writing(engine) as conn:
        facts = jobs.facts_of(conn, jobs.store.account(conn, "acc1"), now, ctx)
    assert facts.estimated == 0 and facts.balance == Decimal("-6.00") and owes(facts)


def test_owes_leaves_estimates_out_pure():
    base = Facts("prepaid", Decimal("-5"), Decimal(0), None, "final", 0, None)
    assert owes(base)
    assert not owes(Facts(**{**base.__dict__, "estimated": Decimal("5.01")}))
    post = Facts("postpaid", Decimal("-5"), Decimal(0), None, "final", 0, None)
    assert not owes(post)


def test_migration_0013_creates_the_table_idempotently(engine):
    import importlib

    from sqlalchemy import inspect

    m = importlib.import_module("headend.migrations.0013_estimates")
    with writing(engine) as conn:
        conn.exec_driver_sql("DROP TABLE vee_estimates")
    for _ in range(2):
        with writing(engine) as conn:
            m.upgrade(conn)
    with writing(engine) as conn:
        assert "vee_estimates" in inspect(conn).get_table_names()
        assert conn.execute(select(vee_estimates.c.id)).first() is None
