"""A simulated meter's remote control, authority and local prepayment (``simulators.relay``)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from simulators.meter import Control, Outcome, Prepay, Relay, total
from tests.simulators.test_meter_model import DAY, HOUR, T0, make


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
