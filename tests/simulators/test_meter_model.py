"""The protocol-independent meter: load integral, TOU, relay, scenarios, freezes, prepay."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulators.energy import LoadIntegral
from simulators.errors import SimConfigError
from simulators.meter import Control, Cover, Meter, MeterSpec, Outcome, Prepay, Relay, total
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


def test_trip_stops_load_and_energy_and_direct_close_restores():
    m = make()
    before = m.registered(T0 + HOUR)[0]
    assert m.control(T0 + HOUR, Control.TRIP) is Outcome.OK
    assert m.relay(T0 + 2 * HOUR) is Relay.OPEN
    assert m.registered(T0 + 3 * HOUR)[0] == before
    assert total(m.true_kwh(T0 + HOUR, T0 + 3 * HOUR)) == 0
    assert m.power_kw(T0 + 2 * HOUR) == 0 and m.current(T0 + 2 * HOUR) == 0
    m.control(T0 + 3 * HOUR, Control.CLOSE)
    assert total(m.true_kwh(T0 + 3 * HOUR, T0 + 4 * HOUR)) > 0


def test_close_allowed_waits_for_the_button():
    m = make()
    m.control(T0 + HOUR, Control.TRIP)
    m.control(T0 + 2 * HOUR, Control.CLOSE_ALLOWED)
    assert m.relay(T0 + 3 * HOUR) is Relay.ARMED
    assert total(m.true_kwh(T0 + 2 * HOUR, T0 + 3 * HOUR)) == 0
    assert m.press_button(T0 + 3 * HOUR)
    assert m.relay(T0 + 3 * HOUR) is Relay.CLOSED
    assert not m.press_button(T0 + 4 * HOUR)  # nothing to close


def test_keep_power_refuses_trips_and_status_shows_it():
    m = make()
    m.control(T0, Control.KEEP_POWER)
    assert m.control(T0 + 1, Control.TRIP) is Outcome.REFUSED
    assert m.status_words(T0 + 2)[2] & (1 << 12)
    m.control(T0 + 3, Control.KEEP_POWER_RELEASE)
    assert m.control(T0 + 4, Control.TRIP) is Outcome.OK
    assert m.status_words(T0 + 5)[2] & (1 << 4)


def test_control_past_valid_until_is_refused():
    m = make()
    expired = m.meter_time(T0) - timedelta(minutes=1)
    assert m.control(T0, Control.TRIP, valid_until=expired) is Outcome.REFUSED
    assert m.relay(T0 + 1) is Relay.CLOSED


def test_passwords_levels_and_operator_codes():
    m = make(passwords={2: "123456", 4: "000000"}, operators=("00000001",))
    assert m.authorise(2, "123456", "00000001", need_level=2) is Outcome.OK
    assert m.authorise(2, "654321", "00000001", need_level=2) is Outcome.BAD_PASSWORD
    assert m.authorise(4, "000000", "00000001", need_level=2) is Outcome.UNAUTHORISED
    assert m.authorise(2, "123456", "99999999", need_level=2) is Outcome.UNAUTHORISED


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


def test_local_prepay_trips_at_the_exact_crossing_and_top_up_arms():
    m = make(prepay=Prepay(balance=5.0, prices=(1.0, 1.0, 1.0, 1.0)))
    far = T0 + 10 * DAY
    assert m.relay(far) is Relay.OPEN
    trip_ts, _, why = m.relay_log[-1]
    assert why == "prepay exhausted"
    assert m.balance(trip_ts) == pytest.approx(0.0, abs=1e-6)
    assert m.status_words(far)[2] & (1 << 7)  # low-credit alarm
    m.top_up(far, 50.0)
    assert m.relay(far) is Relay.ARMED
    assert m.press_button(far + 1)
    assert total(m.true_kwh(far + 1, far + DAY)) > 0


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
