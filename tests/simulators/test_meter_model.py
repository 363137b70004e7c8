"""The protocol-independent meter: load integral, TOU, relay, scenarios, freezes, prepay."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.energy import LoadIntegral
from simulators.errors import SimConfigError
from simulators.meter import Control, Cover, Meter, MeterSpec, total
from simulators.profiles import SLOT_SECONDS, LoadProfile, TouTable

ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 2, 0, 0, tzinfo=ZONE).timestamp()  # a Monday, local midnight
HOUR = 3600.0
DAY = 86400.0


def make(seed: int = 1, **spec: object) -> Meter:
    profile = spec.pop("profile", LoadProfile(seed=seed))
    return Meter(MeterSpec("000000000001", profile=profile, **spec), T0)  # type: ignore[arg-type]


@pytest.mark.parametrize("kind", ["residential", "commercial", "flat"])
def test_energy_is_the_integral_of_the_power_slot_by_slot(kind):
    integral = LoadIntegral(LoadProfile(kind, mean_kw=1.3, seed=7), ZONE, date(2026, 3, 1))
    start = T0 + 5 * SLOT_SECONDS
    summed = sum(integral.power_kw(start + i * SLOT_SECONDS + 1) * 0.25 for i in range(96 * 3))
    assert total(integral.cumulative(start + 3 * DAY)) - total(
        integral.cumulative(start)
    ) == pytest.approx(summed)


def test_same_seed_same_load_different_seed_different_load():
    a = LoadIntegral(LoadProfile(seed=5), ZONE, date(2026, 3, 1))
    b = LoadIntegral(LoadProfile(seed=5), ZONE, date(2026, 3, 1))
    c = LoadIntegral(LoadProfile(seed=6), ZONE, date(2026, 3, 1))
    ts = T0 + 2.5 * DAY
    assert a.cumulative(ts) == b.cumulative(ts)
    assert a.cumulative(ts) != c.cumulative(ts)


def test_tariff_split_follows_the_tou_table():
    tou = TouTable.parse({"00:00": 4, "19:00": 1, "21:00": 4})
    integral = LoadIntegral(LoadProfile(seed=2, tou=tou), ZONE, date(2026, 3, 1))
    evening = [
        a - b
        for a, b in zip(
            integral.cumulative(T0 + 21 * HOUR), integral.cumulative(T0 + 19 * HOUR), strict=True
        )
    ]
    assert evening[0] > 0 and evening[1] == evening[2] == evening[3] == 0
    night = [
        a - b
        for a, b in zip(integral.cumulative(T0 + 19 * HOUR), integral.cumulative(T0), strict=True)
    ]
    assert night[0] == 0 and night[3] > 0


def test_bad_tou_tables_are_refused_with_the_reason():
    with pytest.raises(SimConfigError, match="00:00"):
        TouTable.parse({"01:00": 1})
    with pytest.raises(SimConfigError, match="15-min"):
        TouTable.parse({"00:00": 1, "10:10": 2})
    with pytest.raises(SimConfigError, match="tariff 5"):
        TouTable.parse({"00:00": 5})


def test_commercial_load_is_lighter_at_weekends():
    integral = LoadIntegral(LoadProfile("commercial", seed=1, noise=0.0), ZONE, date(2026, 3, 1))
    monday = total(integral.cumulative(T0 + DAY)) - total(integral.cumulative(T0))
    saturday = total(integral.cumulative(T0 + 6 * DAY)) - total(integral.cumulative(T0 + 5 * DAY))
    assert saturday < monday / 2


def test_bypass_registers_a_fraction_of_the_true_load():
    m = make()
    m.schedule(T0 + 10 * HOUR, factor=0.25)
    a, b = T0 + 10 * HOUR, T0 + 20 * HOUR
    registered = total(m.registered(b)[0]) - total(m.registered(a)[0])
    assert registered == pytest.approx(0.25 * total(m.true_kwh(a, b)))


def test_reverse_wiring_registers_export_and_negative_power():
    m = make()
    m.schedule(T0, reversed=True)
    assert total(m.registered(T0 + DAY)[1]) == pytest.approx(total(m.true_kwh(T0, T0 + DAY)))
    assert m.power_kw(T0 + HOUR) < 0 and m.current(T0 + HOUR) < 0
    assert m.status_words(T0 + HOUR)[0] & 0x10


def test_stopped_meter_registers_nothing_while_load_flows():
    m = make()
    m.schedule(T0, factor=0.0)
    assert m.registered(T0 + DAY)[0] == m.registered(T0)[0]
    assert total(m.true_kwh(T0, T0 + DAY)) > 0


def test_power_down_is_an_event_and_stops_the_load():
    m = make()
    m.set_power(T0 + HOUR, False)
    m.set_power(T0 + 2 * HOUR, True)
    assert not m.answers(T0 + 1.5 * HOUR) and m.answers(T0 + 2.5 * HOUR)
    assert m.power_downs(T0 + 3 * HOUR) == [(T0 + HOUR, T0 + 2 * HOUR)]
    assert total(m.true_kwh(T0 + HOUR, T0 + 2 * HOUR)) == 0


def test_cover_records_count_and_times():
    m = make()
    m.open_cover(Cover.METER, T0 + HOUR, T0 + 2 * HOUR)
    m.open_cover(Cover.TERMINAL, T0 + 5 * HOUR)
    assert m.cover_records(Cover.METER, T0) == []
    assert m.cover_open(Cover.METER, T0 + 1.5 * HOUR) and not m.cover_open(
        Cover.METER, T0 + 3 * HOUR
    )
    assert m.status_words(T0 + 1.5 * HOUR)[6] & (1 << 9)
    assert m.close_cover(Cover.TERMINAL, T0 + 6 * HOUR)
    assert [r.end for r in m.cover_records(Cover.TERMINAL, T0 + 7 * HOUR)] == [T0 + 6 * HOUR]


@settings(max_examples=30, deadline=None)
@given(n=st.integers(1, 62), hours=st.floats(0, 48))
def test_daily_frozen_values_are_the_registers_at_local_midnight(n, hours):
    m = make(start_reading=500.0)
    now = T0 + hours * HOUR
    frozen = m.frozen(n, now)
    assert frozen is not None
    assert frozen.local_time.hour == 0 and frozen.local_time.minute == 0
    assert (m.meter_time(now).date() - frozen.local_time.date()).days == n - 1
    assert frozen.import_kwh == m.registered(frozen.instant)[0]


def test_only_62_freezes_are_kept():
    m = make()
    assert m.frozen(63, T0) is None and m.frozen(0, T0) is None


def test_clock_drift_and_time_sync():
    m = make(drift_ppm=100.0)
    assert (m.meter_time(T0 + 10 * DAY) - m.meter_time(T0)).total_seconds() == pytest.approx(
        10 * DAY * 1.0001, abs=1
    )
    m.set_time(T0 + DAY, datetime(2026, 3, 3, 0, 0))
    assert m.meter_time(T0 + DAY) == datetime(2026, 3, 3, 0, 0)


def test_meter_outside_its_installation_registers_nothing():
    removed = T0 + DAY
    m = make(removed_at=removed, start_reading=100.0)
    assert not m.installed(removed + 1)
    assert m.registered(removed + DAY) == m.registered(removed)


def test_state_at_a_past_instant_never_changes_with_later_commands():
    m = make()
    t = T0 + 30 * HOUR
    before = m.registered(t)
    m.control(t + HOUR, Control.TRIP)
    m.schedule(t + 2 * HOUR, factor=0.5)
    assert m.registered(t) == before
