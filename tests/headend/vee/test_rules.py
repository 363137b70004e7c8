"""The VEE rules on hand-computed readings (pure: no database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from headend.vee.limits import VeeSettings, limits, rated_kw
from headend.vee.rules import Limits, Resolution, Sample, screen

T0 = datetime(2026, 3, 10, 1, tzinfo=UTC)
LIM = Limits(max_kw=Decimal("13.2"))  # 60 A × 220 V; ×1.2 → 15.84 kWh an hour (+0.02)


def hourly(*values: str, start: datetime = T0) -> list[Sample]:
    return [Sample(start + timedelta(hours=n), Decimal(v)) for n, v in enumerate(values)]


def kept(result):
    return [str(s.total) for s in result.kept]


def test_a_jump_is_held_and_the_next_good_reading_closes_the_interval():
    r = screen("m1", hourly("100", "101", "9101", "102", "103"), LIM)
    assert kept(r) == ["100", "101", "102", "103"]
    [f] = r.failures
    assert (f.rule, f.value, f.previous_value) == ("plausible_max", Decimal(9101), Decimal(101))


def test_the_plausible_maximum_is_rating_times_hours_times_margin():
    # 15.86 kWh in one hour is the most a 13.2 kW meter may show (15.84 + two register steps).
    assert kept(screen("m1", hourly("0", "15.86"), LIM)) == ["0", "15.86"]
    assert screen("m1", hourly("0", "15.87"), LIM).failures[0].rule == "plausible_max"
    # Over 10 h the same meter may pass 158.42 kWh.
    two = [Sample(T0, Decimal(0)), Sample(T0 + timedelta(hours=10), Decimal("158.42"))]
    assert not screen("m1", two, LIM).failures


def test_a_decrease_is_monotonic_failure_not_a_negative_charge():
    r = screen("m1", hourly("500", "501", "499.5", "502"), LIM)
    assert kept(r) == ["500", "501", "502"]
    assert [(f.rule, str(f.value)) for f in r.failures] == [("monotonic", "499.5")]


def test_a_roll_over_from_the_top_of_the_register_is_kept_and_unwrapped():
    # 999 998.50 → 000 002.25 on a six-digit register: 3.75 kWh, values unwrapped after it.
    r = screen("m1", hourly("999997", "999998.50", "2.25", "4"), LIM)
    assert not r.failures and r.rollovers == [T0 + timedelta(hours=2)]
    assert kept(r) == ["999997", "999998.50", "1000002.25", "1000004"]


def test_a_drop_to_zero_far_from_the_top_is_no_roll_over():
    r = screen("m1", hourly("123456", "123457", "0.5"), LIM)
    assert [f.rule for f in r.failures] == ["monotonic"]


def test_a_roll_over_too_large_for_the_meter_is_held():
    r = screen("m1", hourly("999000", "999990", "50"), Limits(max_kw=Decimal(100)))
    # 999 000 → 999 990 is 990 kWh in 1 h: plausible_max for 100 kW (≤ 120.02 kWh in 1 h);
    # then 50 against 999 000 would wrap to 1 050 kWh in 2 h (≤ 240.02): no roll-over explains
    # the decrease, so it is a monotonic failure.
    assert [f.rule for f in r.failures] == ["plausible_max", "monotonic"]


def test_a_spike_against_the_meters_own_history():
    lim = Limits(
        max_kw=Decimal("13.2"), spike_history=4, spike_factor=Decimal(10), spike_floor=Decimal(5)
    )
    # 0.5 kWh an hour for 4 hours, then 12 kWh in an hour: 24 × typical, above the 5 kWh floor.
    r = screen("m1", hourly("0", "0.5", "1", "1.5", "2", "14", "14.5"), lim)
    # 14.5 is 12.5 kWh over 2 h against 2: 6.25 kWh/h, 12.5 × typical: a spike too.
    assert [(f.rule, str(f.value)) for f in r.failures] == [("spike", "14"), ("spike", "14.5")]
    assert kept(r)[-1] == "2"
    # The same 12 kWh with no history yet is only checked against the rating.
    assert not screen("m1", hourly("0", "12"), lim).failures


def test_a_small_jump_is_never_a_spike():
    lim = Limits(max_kw=Decimal("13.2"), spike_history=2, spike_floor=Decimal(5))
    r = screen("m1", hourly("0", "0.01", "0.02", "4.9"), lim)
    assert not r.failures


def test_resolutions_override_the_rules():
    samples = hourly("100", "101", "9101", "102")
    t = samples[2].time
    accepted = screen("m1", samples, LIM, resolutions={t: Resolution("accepted")})
    assert kept(accepted) == ["100", "101", "9101"]
    assert [f.rule for f in accepted.failures] == ["monotonic"]  # 102 against 9101
    corrected = screen(
        "m1", samples, LIM, resolutions={t: Resolution("corrected", Decimal("101.5"))}
    )
    assert kept(corrected) == ["100", "101", "101.5", "102"] and not corrected.failures
    rejected = screen("m1", samples, LIM, resolutions={t: Resolution("rejected")})
    assert kept(rejected) == ["100", "101", "102"] and not rejected.failures


def test_a_reading_below_a_replacement_start_reading_names_the_replacement():
    samples = hourly("50", "49", "51")
    r = screen("m2", samples, LIM, replacement_times=frozenset({T0}))
    assert [f.rule for f in r.failures] == ["replacement"]


@pytest.mark.parametrize(
    ("model", "kw"),
    [
        ("DDZY1710-Z 220V 5(60)A", Decimal("13.2")),
        ("DDSY 10(40)A", Decimal("8.8")),
        ("DTZY 3×220/380V 1.5(6)A", Decimal("3.96")),
        ("DTSD 3x57.7/100V 1.5(6)A", Decimal("1.0386")),
        (None, Decimal("13.2")),  # the [vee] default: 60 A at 220 V
    ],
)
def test_the_rating_on_the_nameplate(model, kw):
    assert rated_kw(model, VeeSettings()) == kw


def test_the_contract_capacity_is_compared_on_the_primary_side():
    # A CT meter (multiplier 30) with a 100 kVA contract: the register may see 3.33… kW.
    lim = limits("DTZY 3×220/380V 1.5(6)A", Decimal(30), VeeSettings(), contract_kva=Decimal(100))
    assert lim.max_kw == Decimal(100) / 30


@given(st.lists(st.decimals(min_value=0, max_value=15, places=2), min_size=1, max_size=30))
def test_plausible_increasing_readings_are_all_kept(steps):
    values, v = ["0"], Decimal(0)
    for s in steps:
        v += s
        values.append(str(v))
    r = screen("m1", hourly(*values), LIM)
    assert not r.failures and kept(r) == values
