"""The estimation method, pure: the history's mean rate, local midnights, estimated readings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from headend.vee.estimate import fill, mean_rate, midnights

SH = ZoneInfo("Asia/Shanghai")
BERLIN = ZoneInfo("Europe/Berlin")
T0 = datetime(2026, 3, 5, tzinfo=SH)


def test_mean_rate_is_energy_over_hours_and_needs_enough_history():
    hist = [(T0, T0 + timedelta(hours=2), Decimal(3)), (T0, T0 + timedelta(hours=4), Decimal(1))]
    assert mean_rate(hist, Decimal(6)) == Decimal(4) / 6
    assert mean_rate(hist, Decimal("6.5")) is None
    assert mean_rate([], Decimal(0)) is None


def test_midnights_are_local_and_survive_a_dst_change():
    start = datetime(2026, 3, 28, 10, tzinfo=BERLIN)  # DST starts on 29 March 2026
    found = midnights(start, start + timedelta(days=3), BERLIN)
    assert [m.astimezone(BERLIN).strftime("%d %H:%M") for m in found] == [
        "29 00:00",
        "30 00:00",
        "31 00:00",
    ]
    assert found[1] - found[0] == timedelta(hours=23)
    assert midnights(T0, T0, SH) == [] and midnights(T0, T0 + timedelta(days=1), SH) == [
        T0 + timedelta(days=1)
    ]


def test_fill_values_from_the_origin_so_rounding_never_drifts():
    ends = [T0 + timedelta(hours=8 * k) for k in range(1, 4)]
    got = fill((T0, Decimal(100)), (T0, Decimal(100)), Decimal(1) / 3, ends)
    # 8/3 = 2.666…: 102.67, 105.33, 108.00 (not 102.67 + 2.67 + 2.67 = 108.01)
    assert [r.end_value for r in got] == [Decimal("102.67"), Decimal("105.33"), Decimal("108.00")]
    assert [r.start_value for r in got] == [Decimal(100), Decimal("102.67"), Decimal("105.33")]


def test_fill_continues_a_chain_and_skips_ends_already_covered():
    ends = [T0 + timedelta(days=k) for k in (1, 2, 3)]
    got = fill((T0, Decimal(0)), (ends[0], Decimal(12)), Decimal("0.5"), ends)
    assert [(r.start, r.end_value) for r in got] == [
        (ends[0], Decimal("24.00")),
        (ends[1], Decimal("36.00")),
    ]


@given(
    rate=st.decimals(min_value=0, max_value=50, places=4),
    hours=st.lists(st.integers(1, 200), min_size=1, max_size=10, unique=True),
)
def test_estimated_registers_never_run_backwards_and_add_up(rate, hours):
    ends = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(hours=h) for h in hours]
    origin = (datetime(2026, 1, 1, tzinfo=UTC), Decimal("500.00"))
    got = fill(origin, origin, rate, ends)
    assert all(r.delta >= 0 for r in got)
    assert sum((r.delta for r in got), Decimal(0)) == got[-1].end_value - Decimal("500.00")
    assert abs(got[-1].end_value - 500 - rate * max(hours)) <= Decimal("0.005")
