"""Line loss (pure): hand-computed examples and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from headend.analytics.lineloss import (
    Flag,
    area_loss,
    daily_losses,
    interpolate,
    month_bounds,
)
from headend.analytics.model import MeterSpan, Method, Point, Registers, boundary, freeze_day
from headend.analytics.trend import flag_sudden_changes, trend

Z = ZoneInfo("Asia/Shanghai")
D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 3)


def single(point: str, role: str = "customer", mult: str = "1") -> Point:
    return Point(point, role, (MeterSpan(point, D(mult)),))


def frozen(**by_day: str) -> Registers:
    return Registers({date.fromisoformat(k[1:].replace("_", "-")): D(v) for k, v in by_day.items()})


def test_hand_computed_day_with_multipliers():
    points = [single("T", "area_total", "40"), single("c1"), single("c2", mult="2")]
    regs = {
        "T": frozen(d2026_03_01="100.00", d2026_03_02="102.50"),  # 2.5 × 40 = 100 kWh
        "c1": frozen(d2026_03_01="10", d2026_03_02="40"),  # 30
        "c2": frozen(d2026_03_01="5", d2026_03_02="35"),  # 30 × 2 = 60
    }
    r = area_loss("A", points, regs, D1, D2, Z, target=D("0.08"))
    assert (r.supply, r.sales, r.loss, r.rate) == (D("100.00"), D(90), D("10.00"), D("0.1000"))
    assert r.coverage == 1 and r.method is Method.DAILY_FROZEN
    assert r.flags == (Flag.HIGH_LOSS,)


def test_missing_meter_lowers_coverage_and_is_never_zero():
    points = [single("T", "area_total"), single("c1"), single("c2")]
    regs = {
        "T": frozen(d2026_03_01="0", d2026_03_02="100"),
        "c1": frozen(d2026_03_01="0", d2026_03_02="50"),
        "c2": frozen(d2026_03_01="0"),  # silent on the 2nd
    }
    r = area_loss("A", points, regs, D1, D2, Z)
    assert r.loss is None and r.rate is None
    assert r.coverage == D("0.6667") and r.missing == ["c2"]
    assert Flag.INCOMPLETE in r.flags
    assert r.points[-1].reason == "missing:c2@2026-03-02"


def test_a_point_commissioned_after_the_day_is_not_part_of_it():
    # issue 23: a meter added today made every back-filled day of its area incomplete
    later = Point("new", "customer", (MeterSpan("new", D(1), start=boundary(D3, Z)),))
    points = [single("T", "area_total"), single("c1"), later]
    regs = {
        "T": frozen(d2026_03_01="0", d2026_03_02="110"),
        "c1": frozen(d2026_03_01="0", d2026_03_02="100"),
    }
    r = area_loss("A", points, regs, D1, D2, Z)
    assert (r.rate, r.coverage, r.points_total) == (D("0.0909"), 1, 2)
    assert Flag.INCOMPLETE not in r.flags


def test_month_spans_a_silent_day_from_its_boundaries():
    points = [single("T", "area_total"), single("c1")]
    regs = {
        "T": frozen(d2026_03_01="0", d2026_03_03="20"),
        "c1": frozen(d2026_03_01="0", d2026_03_03="19"),
    }
    assert area_loss("A", points, regs, D1, D3, Z).loss == 1
    assert area_loss("A", points, regs, D1, D2, Z).loss is None


def test_replacement_sums_both_meters():
    at = boundary(D1, Z) + timedelta(hours=13)
    point = Point(
        "P1",
        "customer",
        (
            MeterSpan("old", D(1), None, at, end_value=D("512.30")),
            MeterSpan("new", D(1), at, None, start_value=D("0.50")),
        ),
    )
    regs = {
        "T": frozen(d2026_03_01="0", d2026_03_02="30"),
        "old": frozen(d2026_03_01="500.00"),
        "new": frozen(d2026_03_02="12.70"),
    }
    r = area_loss("A", [single("T", "area_total"), point], regs, D1, D2, Z)
    # (512.30 − 500.00) + (12.70 − 0.50) = 24.50
    assert r.sales == D("24.50") and r.loss == D("5.50")
    assert Flag.REPLACEMENT in r.flags and Flag.NEGATIVE_LOSS not in r.flags
    assert r.points[1].meters == ("old", "new")


def test_backwards_register_is_invalid_not_negative_energy():
    regs = {
        "T": frozen(d2026_03_01="0", d2026_03_02="10"),
        "c1": frozen(d2026_03_01="9", d2026_03_02="8"),
    }
    r = area_loss("A", [single("T", "area_total"), single("c1")], regs, D1, D2, Z)
    assert r.loss is None and r.points[1].reason == "backwards:c1"


def test_negative_loss_flagged():
    regs = {
        "T": frozen(d2026_03_01="0", d2026_03_02="10"),
        "c1": frozen(d2026_03_01="0", d2026_03_02="11"),
    }
    r = area_loss("A", [single("T", "area_total"), single("c1")], regs, D1, D2, Z)
    assert r.loss == -1 and r.rate == D("-0.1000") and Flag.NEGATIVE_LOSS in r.flags


def test_no_area_total_meter_gives_no_loss():
    regs = {"c1": frozen(d2026_03_01="0", d2026_03_02="11")}
    r = area_loss("A", [single("c1")], regs, D1, D2, Z)
    assert r.supply is None and r.loss is None and Flag.NO_SUPPLY in r.flags


def test_interpolation_is_a_flagged_fallback_within_the_gap():
    t = boundary(D2, Z)
    series = [(t - timedelta(minutes=15), D("10")), (t + timedelta(minutes=45), D("14"))]
    assert interpolate(series, t, timedelta(hours=2)).value == D(11)  # type: ignore[union-attr]
    assert interpolate(series, t, timedelta(minutes=30)) is None
    regs = {
        "T": frozen(d2026_03_01="0", d2026_03_02="20"),
        "c1": Registers({D1: D("0")}, series),
    }
    r = area_loss("A", [single("T", "area_total"), single("c1")], regs, D1, D2, Z)
    assert r.sales == 11 and r.method is Method.INTERPOLATED and Flag.INTERPOLATED in r.flags
    assert r.points[0].method is Method.DAILY_FROZEN


def test_freeze_day_tolerates_meter_clock_skew():
    midnight = boundary(D2, Z)
    assert freeze_day(midnight - timedelta(seconds=40), Z) == D2
    assert freeze_day(midnight + timedelta(minutes=3), Z) == D2
    assert midnight == datetime(2026, 3, 1, 16, tzinfo=UTC)


def test_sudden_change_and_trend():
    points = [single("T", "area_total"), single("c1")]
    base = date(2026, 3, 1)
    t_reg, c_reg, t, c = {}, {}, D(0), D(0)
    for i in range(11):
        t_reg[base + timedelta(days=i)] = t
        c_reg[base + timedelta(days=i)] = c
        t += 100
        c += 96 if i < 7 else 86  # loss 4 % then 14 %
    regs = {"T": Registers(t_reg), "c1": Registers(c_reg)}
    results = daily_losses("A", points, regs, base, base + timedelta(days=9), Z)
    assert [r.rate for r in results] == [D("0.04")] * 7 + [D("0.14")] * 3
    flagged = flag_sudden_changes(results[:7], results[7])
    assert Flag.SUDDEN_CHANGE in flagged.flags
    assert Flag.SUDDEN_CHANGE not in flag_sudden_changes(results[:6], results[6]).flags
    tr = trend([(r.start, r.rate) for r in results], window=3)
    assert tr.slope_per_day is not None and tr.slope_per_day > 0
    assert tr.moving_average[-1] == D("0.14") and tr.moving_average[0] == D("0.04")


def test_month_bounds():
    assert month_bounds(date(2026, 12, 31)) == (date(2026, 12, 1), date(2027, 1, 1))
    assert month_bounds(date(2026, 2, 1)) == (date(2026, 2, 1), date(2026, 3, 1))


kwh = st.decimals(min_value=0, max_value=10_000, places=2, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    supply=kwh,
    start=st.lists(kwh, min_size=1, max_size=8),
    used=st.lists(kwh, min_size=8, max_size=8),
    mults=st.lists(st.sampled_from(["1", "2", "40", "0.5"]), min_size=8, max_size=8),
    silent=st.sets(st.integers(0, 7)),
)
def test_loss_is_supply_minus_sales_and_missing_is_never_zero(supply, start, used, mults, silent):
    points = [single("T", "area_total")] + [
        single(f"c{i}", mult=mults[i]) for i in range(len(start))
    ]
    regs = {"T": Registers({D1: D(0), D2: supply})}
    for i, s in enumerate(start):
        regs[f"c{i}"] = Registers({D1: s} if i in silent else {D1: s, D2: s + used[i]})
    r = area_loss("A", points, regs, D1, D2, Z)
    expected_sales = sum(
        (used[i] * D(mults[i]) for i in range(len(start)) if i not in silent), D(0)
    )
    assert r.sales == expected_sales
    missing = {i for i in silent if i < len(start)}
    assert r.points_valid == r.points_total - len(missing)
    if missing:
        assert r.loss is None and r.rate is None and Flag.INCOMPLETE in r.flags
    else:
        assert r.loss == supply - expected_sales
        assert r.coverage == 1


@settings(max_examples=60, deadline=None)
@given(old_start=kwh, old_used=kwh, new_start=kwh, new_used=kwh, hour=st.integers(1, 23))
def test_replacement_splits_energy(old_start, old_used, new_start, new_used, hour):
    at = boundary(D1, Z) + timedelta(hours=hour)
    point = Point(
        "P",
        "customer",
        (
            MeterSpan("old", D(1), None, at, end_value=old_start + old_used),
            MeterSpan("new", D(1), at, None, start_value=new_start),
        ),
    )
    regs = {
        "old": Registers({D1: old_start}),
        "new": Registers({D2: new_start + new_used}),
        "T": Registers({D1: D(0), D2: old_used + new_used}),
    }
    r = area_loss("A", [single("T", "area_total"), point], regs, D1, D2, Z)
    assert r.sales == old_used + new_used and r.loss == 0
