"""Tariffs and charges as pure functions: hand-computed examples to the cent, and properties."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from headend.prepay.charges import (
    Interval,
    PointPlan,
    Replacement,
    Sample,
    Usage,
    chain,
    price_interval,
    reconcile,
)
from headend.prepay.errors import MoneyError, TariffError
from headend.prepay.money import MoneySettings, from_micro, payment, to_micro
from headend.prepay.tariffs import (
    TariffBook,
    TariffVersion,
    parse_definition,
    parse_split,
)

SH = ZoneInfo("Asia/Shanghai")
MONEY = MoneySettings()
EPOCH = datetime(2020, 1, 1, tzinfo=UTC)
TIERED = {
    "kind": "tiered",
    "period": "monthly",
    "steps": [
        {"upto": "200", "price": "0.5283"},
        {"upto": "400", "price": "0.5783"},
        {"upto": None, "price": "0.8283"},
    ],
}
TOU = {
    "kind": "tou",
    "prices": {"1": "1.2", "2": "0.9", "3": "0.6", "4": "0.3"},
    "periods": [
        {"start": "23:00", "end": "07:00", "slot": 4},
        {"start": "07:00", "end": "11:00", "slot": 2},
        {"start": "11:00", "end": "19:00", "slot": 3},
        {"start": "19:00", "end": "23:00", "slot": 2},
    ],
}


def local(*args: int) -> datetime:
    return datetime(*args, tzinfo=SH)  # type: ignore[misc]


def book(**tariffs: object) -> TariffBook:
    versions = []
    for name, spec in tariffs.items():
        items = spec if isinstance(spec, list) else [(EPOCH, spec)]
        for since, definition in items:
            versions.append(TariffVersion(name, since, parse_definition(definition)))
    return TariffBook(versions)


def charge_all(
    plan: PointPlan, tariffs: TariffBook, intervals: list[Interval], usage: Usage | None = None
) -> list[list]:
    """Price intervals in time order, as the charge job does (usage accumulates)."""
    usage = usage or Usage()
    out = []
    for interval in intervals:
        lines = price_interval(plan, tariffs, SH, interval, usage)
        usage.add(interval.end, lines)
        out.append(lines)
    return out


def total(charges: list[list]) -> Decimal:
    return sum((ln.amount for lines in charges for ln in lines), Decimal(0))


def series(meter: str, *points: tuple[datetime, str]) -> dict[str, list[Sample]]:
    return {meter: [Sample(t, Decimal(v)) for t, v in points]}


def one(_meter: str, _t: datetime) -> Decimal:
    return Decimal(1)


def test_tiered_month_matches_the_hand_computation() -> None:
    # March: 1000.00 → 1150.00 (150 kWh) → 1480.50 (330.5 kWh); 480.5 kWh in the month.
    #   step 1: 200   × 0.5283 = 105.66
    #   step 2: 200   × 0.5783 = 115.66
    #   step 3:  80.5 × 0.8283 =  66.67815
    #   total                  = 287.99815 → 288.00 CNY (half-up to the fen)
    # Per interval: 150 × 0.5283 = 79.245; then 50 × 0.5283 + 200 × 0.5783 + 80.5 × 0.8283
    #   = 26.415 + 115.66 + 66.67815 = 208.75315.
    readings = series(
        "m1",
        (local(2026, 3, 1), "1000.00"),
        (local(2026, 3, 15), "1150.00"),
        (local(2026, 4, 1), "1480.50"),
    )
    intervals = chain(readings, [], one).intervals
    charges = charge_all(PointPlan("res"), book(res=TIERED), intervals)
    assert [sum(ln.amount for ln in c) for c in charges] == [
        Decimal("79.245"),
        Decimal("208.75315"),
    ]
    assert MONEY.round(total(charges)) == Decimal("288.00")
    assert {ln.period for c in charges for ln in c} == {"2026-03"}


def test_tiered_restarts_each_month_and_yearly_does_not() -> None:
    # 300 kWh in March, 300 in April.  Monthly: each month 200 × 0.5283 + 100 × 0.5783
    #   = 105.66 + 57.83 = 163.49; two months 326.98.
    # Yearly (same steps): 200 × 0.5283 + 200 × 0.5783 + 200 × 0.8283
    #   = 105.66 + 115.66 + 165.66 = 386.98.
    readings = series(
        "m1", (local(2026, 3, 1), "0"), (local(2026, 4, 1), "300"), (local(2026, 5, 1), "600")
    )
    intervals = chain(readings, [], one).intervals
    monthly = charge_all(PointPlan("res"), book(res=TIERED), intervals)
    yearly = charge_all(PointPlan("res"), book(res={**TIERED, "period": "yearly"}), intervals)
    assert total(monthly) == Decimal("326.98")
    assert total(yearly) == Decimal("386.98")


def test_tou_from_registers_with_a_multiplier() -> None:
    # CT 150/5 → multiplier 30.  Register deltas: t1 0.10, t2 0.35, t3 0.20, t4 0.70 (kWh)
    #   × 30 = 3, 10.5, 6, 21 kWh; × (1.2, 0.9, 0.6, 0.3) = 3.6 + 9.45 + 3.6 + 6.3 = 22.95
    t0, t1 = local(2026, 3, 2), local(2026, 3, 3)
    regs0 = {1: Decimal("1.00"), 2: Decimal("2.00"), 3: Decimal("3.00"), 4: Decimal("4.00")}
    regs1 = {1: Decimal("1.10"), 2: Decimal("2.35"), 3: Decimal("3.20"), 4: Decimal("4.70")}
    readings = {"m1": [Sample(t0, Decimal("10.00"), regs0), Sample(t1, Decimal("11.35"), regs1)]}
    intervals = chain(readings, [], lambda _m, _t: Decimal(30)).intervals
    assert intervals[0].piece.energy == Decimal("40.50")
    charges = charge_all(PointPlan("tou"), book(tou=TOU), intervals)
    assert {ln.slot: ln.energy for ln in charges[0]} == {
        "sharp": Decimal("3.00"),
        "peak": Decimal("10.50"),
        "flat": Decimal("6.00"),
        "valley": Decimal("21.00"),
    }
    assert total(charges) == Decimal("22.95")


def test_tou_from_periods_shares_an_interval_across_a_boundary_by_time() -> None:
    # 06:30 → 07:30 local, 2 kWh: 06:30–07:00 valley (1 kWh × 0.3), 07:00–07:30 peak
    #   (1 kWh × 0.9) = 0.30 + 0.90 = 1.20.  No registers: periods apply.
    readings = series(
        "m1", (local(2026, 3, 2, 6, 30), "100.00"), (local(2026, 3, 2, 7, 30), "102.00")
    )
    charges = charge_all(PointPlan("tou"), book(tou=TOU), chain(readings, [], one).intervals)
    assert {ln.slot: ln.energy for ln in charges[0]} == {
        "peak": Decimal("1.0000"),
        "valley": Decimal("1.0000"),
    }
    assert total(charges) == Decimal("1.20")


def test_tou_from_periods_over_a_whole_day() -> None:
    # 24 kWh evenly over a local day: valley 8 h, peak 4 h + 4 h, flat 8 h → 8 kWh each.
    #   8 × 0.3 + 8 × 0.9 + 8 × 0.6 = 2.4 + 7.2 + 4.8 = 14.40
    readings = series("m1", (local(2026, 3, 2), "0"), (local(2026, 3, 3), "24"))
    charges = charge_all(PointPlan("tou"), book(tou=TOU), chain(readings, [], one).intervals)
    assert total(charges) == Decimal("14.40")


def test_a_tariff_change_applies_from_its_effective_date_only() -> None:
    # 0.50 until 1 April 00:00 local, 0.55 from then.  31 March 12:00 → 1 April 12:00, 24 kWh:
    #   12 kWh × 0.50 + 12 kWh × 0.55 = 6.00 + 6.60 = 12.60
    changing = [
        (EPOCH, {"kind": "flat", "price": "0.50"}),
        (local(2026, 4, 1), {"kind": "flat", "price": "0.55"}),
    ]
    readings = series("m1", (local(2026, 3, 31, 12), "0"), (local(2026, 4, 1, 12), "24"))
    charges = charge_all(PointPlan("f"), book(f=changing), chain(readings, [], one).intervals)
    assert total(charges) == Decimal("12.60")
    # A later interval is priced wholly at the new price: 10 kWh × 0.55 = 5.50.
    later = series("m1", (local(2026, 4, 2), "100"), (local(2026, 4, 3), "110"))
    assert total(charge_all(PointPlan("f"), book(f=changing), chain(later, [], one).intervals)) == (
        Decimal("5.50")
    )


def test_fixed_ratio_split() -> None:
    # 100 kWh, 30 % to commercial at 0.80, the rest residential at 0.50:
    #   70 × 0.50 + 30 × 0.80 = 35.00 + 24.00 = 59.00
    split = parse_split({"kind": "ratio", "parts": [{"tariff": "com", "ratio": "0.3"}]})
    readings = series("m1", (local(2026, 3, 2), "0"), (local(2026, 3, 3), "100"))
    tariffs = book(res={"kind": "flat", "price": "0.50"}, com={"kind": "flat", "price": "0.80"})
    charges = charge_all(PointPlan("res", split), tariffs, chain(readings, [], one).intervals)
    assert total(charges) == Decimal("59.00")


def test_fixed_quantity_split_takes_the_first_kwh_of_each_month() -> None:
    # 100 kWh a month to commercial (0.80), the rest residential (0.50).  March 60 + 60 kWh:
    #   first 60 × 0.80 = 48.00; second 40 × 0.80 + 20 × 0.50 = 32.00 + 10.00 = 42.00.
    # April 50 kWh: the quota starts again: 50 × 0.80 = 40.00.  Total 130.00.
    split = parse_split({"kind": "quantity", "parts": [{"tariff": "com", "quantity": "100"}]})
    readings = series(
        "m1",
        (local(2026, 3, 2), "0"),
        (local(2026, 3, 9), "60"),
        (local(2026, 3, 16), "120"),
        (local(2026, 4, 2), "120"),
        (local(2026, 4, 9), "170"),
    )
    tariffs = book(res={"kind": "flat", "price": "0.50"}, com={"kind": "flat", "price": "0.80"})
    charges = charge_all(PointPlan("res", split), tariffs, chain(readings, [], one).intervals)
    per = [sum(ln.amount for ln in c) for c in charges]
    assert per == [Decimal("48.00"), Decimal("42.00"), Decimal("0"), Decimal("40.00")]


def test_meter_replacement_mid_month_bills_the_right_energy() -> None:
    # Old meter: 500.00 (1 Mar), 600.00 (10 Mar), removed 12 Mar at final 620.00.
    # New meter: start 0.50 (12 Mar), 40.50 (20 Mar), 100.50 (1 Apr).
    # Energy: 100 + 20 + 40 + 60 = 220 kWh, tiered: 200 × 0.5283 + 20 × 0.5783
    #   = 105.66 + 11.566 = 117.226 → 117.23.
    at = local(2026, 3, 12, 10)
    readings = {
        "old": [
            Sample(local(2026, 3, 1), Decimal("500.00")),
            Sample(local(2026, 3, 10), Decimal("600.00")),
            Sample(local(2026, 3, 13), Decimal("999.00")),
        ],  # after removal: ignored
        "new": [
            Sample(local(2026, 3, 20), Decimal("40.50")),
            Sample(local(2026, 4, 1), Decimal("100.50")),
        ],
    }
    rep = Replacement("old", "new", at, Sample(at, Decimal("620.00")), Sample(at, Decimal("0.50")))
    intervals = chain(readings, [rep], one).intervals
    assert [(i.meter, i.piece.energy) for i in intervals] == [
        ("old", Decimal("100.00")),
        ("old", Decimal("20.00")),
        ("new", Decimal("40.00")),
        ("new", Decimal("60.00")),
    ]
    charges = charge_all(PointPlan("res"), book(res=TIERED), intervals)
    assert MONEY.round(total(charges)) == Decimal("117.23")


def test_a_lower_reading_is_skipped_not_billed() -> None:
    readings = series(
        "m1", (local(2026, 3, 1), "100"), (local(2026, 3, 2), "90"), (local(2026, 3, 3), "110")
    )
    result = chain(readings, [], one)
    assert [(i.start, i.end, i.piece.energy) for i in result.intervals] == [
        (local(2026, 3, 1), local(2026, 3, 3), Decimal("10"))
    ]
    assert result.skipped == [("m1", local(2026, 3, 2), Decimal("90"))]


def test_a_back_filled_reading_reverses_the_interval_and_charges_both_halves() -> None:
    a, b, c = local(2026, 3, 1), local(2026, 3, 2), local(2026, 3, 3)
    before = chain(series("m1", (a, "0"), (c, "20")), [], one).intervals
    plan = reconcile(before, [])
    assert [i.key for i in plan.create] == [(a, c)]
    after = chain(series("m1", (a, "0"), (b, "5"), (c, "20")), [], one).intervals
    plan = reconcile(after, [(a, c)])
    assert plan.reverse == [(a, c)]
    assert [i.key for i in plan.create] == [(a, b), (b, c)]
    # Applied: running it again changes nothing.
    assert reconcile(after, [(a, b), (b, c)], [(a, c)]) == type(plan)([], [])


def test_bad_definitions_name_the_field() -> None:
    with pytest.raises(TariffError, match="cover the day"):
        parse_definition({**TOU, "periods": TOU["periods"][:2]})  # type: ignore[index]
    with pytest.raises(TariffError, match="step bounds must increase"):
        parse_definition(
            {
                "kind": "tiered",
                "steps": [
                    {"upto": "400", "price": "1"},
                    {"upto": "200", "price": "1"},
                    {"price": "1"},
                ],
            }
        )
    with pytest.raises(TariffError, match="ratios must add up"):
        parse_split(
            {
                "kind": "ratio",
                "parts": [{"tariff": "a", "ratio": "0.6"}, {"tariff": "b", "ratio": "0.5"}],
            }
        )
    with pytest.raises(TariffError, match="no version"):
        book(x={"kind": "flat", "price": "1"}).at("x", datetime(2019, 1, 1, tzinfo=UTC))


def test_money_rounding_and_payments() -> None:
    assert MONEY.round(Decimal("23.045")) == Decimal("23.05")  # half-up, not banker's
    assert MoneySettings(rounding="ROUND_HALF_EVEN").round(Decimal("23.045")) == Decimal("23.04")
    assert to_micro(Decimal("0.0000005")) == 1 and from_micro(1_500_000) == Decimal("1.5")
    assert payment("100.50", MONEY) == Decimal("100.50")
    with pytest.raises(MoneyError, match="decimal places"):
        payment("1.005", MONEY)
    with pytest.raises(MoneyError, match="not a number"):
        payment("ten", MONEY)
    with pytest.raises(MoneyError, match="float"):
        payment(1.5, MONEY)  # type: ignore[arg-type]


# --- properties -------------------------------------------------------------------------------

kwh = st.decimals(min_value=0, max_value=500, places=2)
flat_or_tiered = st.sampled_from(
    [{"kind": "flat", "price": "0.5283"}, TIERED, {**TIERED, "period": "yearly"}]
)


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(st.tuples(st.integers(1, 200), kwh), min_size=1, max_size=8),
    cut_at=st.integers(1, 10_000),
    fraction=st.fractions(min_value=0, max_value=1),
    definition=flat_or_tiered,
)
def test_splitting_an_interval_anywhere_gives_the_same_total(
    steps, cut_at, fraction, definition
) -> None:
    t = local(2026, 1, 20)
    points = [(t, Decimal("1000.00"))]
    for hours, energy in steps:
        t += timedelta(hours=hours)
        points.append((t, points[-1][1] + energy))
    whole = chain({"m": [Sample(p, v) for p, v in points]}, [], one).intervals
    # One more reading anywhere inside one interval, with any value between its ends.
    target = whole[cut_at % len(whole)]
    span = (target.end - target.start).total_seconds()
    mid = target.start + timedelta(seconds=max(1, int(span * fraction)) if span > 1 else 0)
    if not target.start < mid < target.end:
        return
    value = target.start_value + (target.end_value - target.start_value) * Decimal(
        fraction.numerator
    ) / Decimal(fraction.denominator)
    value = value.quantize(Decimal("0.01"))
    finer = chain({"m": [Sample(p, v) for p, v in [*points, (mid, value)]]}, [], one).intervals
    tariffs = book(x=definition)
    a = total(charge_all(PointPlan("x"), tariffs, whole))
    b = total(charge_all(PointPlan("x"), tariffs, finer))
    # An interval across a month start is shared out in proportion to time, to 0.0001 kWh
    # (tariffs.ENERGY); the remainder of that rounding may land in the other month's tier, so
    # the totals agree to well under a fen, not to the micro-unit (issue 18: this compared
    # exactly and failed in about 2 of 5 fresh runs).  Each interval's share is rounded to
    # 0.0001 kWh at both of its ends and priced at under 1.0 a kWh: at most 0.0002 of money per
    # interval (a stored Hypothesis example reached 0.00051 over 5 intervals, past the earlier
    # 0.0001 per interval); with at most 9 intervals that stays under 0.002, and a real double
    # charge (≥ 0.01 kWh, ≥ 0.005 at these prices) still fails this.
    assert abs(a - b) < Decimal("0.0002") * len(finer), (a, b)


@settings(max_examples=40, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(1, 48), kwh), min_size=1, max_size=10))
def test_reconciling_charged_intervals_changes_nothing(steps) -> None:
    t = local(2026, 2, 1)
    samples = [Sample(t, Decimal(0))]
    for hours, energy in steps:
        t += timedelta(hours=hours)
        samples.append(Sample(t, samples[-1].total + energy))
    intervals = chain({"m": samples}, [], one).intervals
    first = reconcile(intervals, [])
    assert len(first.create) == len(intervals) and not first.reverse
    again = reconcile(intervals, [i.key for i in first.create])
    assert again.create == [] and again.reverse == []
