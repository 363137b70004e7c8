"""The disconnect guard rails as a pure policy: each rule refusing and allowing."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from headend.guards import (
    GuardSettings,
    GuardState,
    MeterFacts,
    RecentCounts,
    evaluate,
)
from protocols.uplink import CommandAction

SHANGHAI = ZoneInfo("Asia/Shanghai")
TRIP = CommandAction.RELAY_TRIP
SETTINGS = GuardSettings()  # 08:00-17:00 Asia/Shanghai, Mon-Fri, CN holidays, N=10
QUIET = GuardState()
NONE = RecentCounts()
RULES = {
    "pause",
    "keep_power",
    "window.holiday",
    "window.extreme_weather",
    "window.weekday",
    "window.hours",
    "hourly_limit.area",
    "hourly_limit.fleet",
    "supervisor_approval",
}


def local(y: int, mo: int, d: int, h: int, mi: int = 0) -> datetime:
    """An aware UTC instant given as Shanghai wall time."""
    return datetime(y, mo, d, h, mi, tzinfo=SHANGHAI).astimezone(UTC)


TUESDAY_10 = local(2026, 3, 10, 10)


def meters(n: int, area: str = "A1", keep: int = 0) -> list[MeterFacts]:
    return [MeterFacts(f"{area}-m{i}", "gw1", area, keep_power=i < keep) for i in range(n)]


def decide(targets, now=TUESDAY_10, settings=SETTINGS, state=QUIET, counts=NONE, **kw):
    return evaluate(TRIP, targets, now, settings, state, counts, **kw)


def test_an_ordinary_disconnect_in_the_window_is_allowed():
    d = decide(meters(3))
    assert d.allowed and d.rule is None


def test_other_actions_are_not_guarded_even_when_paused_at_night():
    night = local(2026, 3, 10, 23)
    state = GuardState(paused=True)
    for action in (CommandAction.READ, CommandAction.RELAY_CLOSE_ALLOWED, CommandAction.TIME_SYNC):
        assert evaluate(action, meters(50, keep=5), night, SETTINGS, state, NONE).allowed


def test_pause_switch_refuses_every_disconnect_and_names_itself():
    d = decide(meters(1), state=GuardState(paused=True, pause_reason="storm response"))
    assert d.refused and d.rule == "pause"
    assert "storm response" in d.message
    assert decide(meters(1), state=GuardState(paused=False)).allowed


def test_keep_power_meters_are_never_tripped():
    targets = meters(4, keep=1)
    d = decide(targets)
    assert d.refused and d.rule == "keep_power"
    assert "A1-m0" in d.message
    # ...not even with a supervisor's approval
    assert decide(targets, supervisor_approved=True).rule == "keep_power"
    assert decide([m for m in targets if not m.keep_power]).allowed


@pytest.mark.parametrize(
    ("hour", "minute", "allowed"),
    [
        (7, 59, False),
        (8, 0, True),
        (12, 30, True),
        (16, 59, True),
        (17, 0, False),
        (23, 0, False),
        (3, 0, False),
    ],
)
def test_disconnects_only_inside_the_hours(hour, minute, allowed):
    d = decide(meters(1), now=local(2026, 3, 10, hour, minute))
    assert d.allowed is allowed
    if not allowed:
        assert d.rule == "window.hours"
        assert "Asia/Shanghai" in d.message


def test_the_window_is_in_the_utilitys_zone_not_utc():
    # 01:30 UTC is 09:30 in Shanghai (allowed), but 01:30 in London (night, refused)
    now = datetime(2026, 3, 10, 1, 30, tzinfo=UTC)
    assert decide(meters(1), now=now).allowed
    london = SETTINGS.model_copy(update={"timezone": "Europe/London", "holiday_country": "GB"})
    assert decide(meters(1), now=now, settings=london).rule == "window.hours"


def test_naive_now_is_a_bug():
    with pytest.raises(ValueError, match="aware"):
        decide(meters(1), now=datetime(2026, 3, 10, 10))


@pytest.mark.parametrize("day", [14, 15])  # Saturday, Sunday
def test_no_disconnects_at_weekends(day):
    d = decide(meters(1), now=local(2026, 3, day, 10))
    assert d.refused and d.rule == "window.weekday"
    everyday = SETTINGS.model_copy(update={"weekdays": frozenset(range(1, 8))})
    assert decide(meters(1), now=local(2026, 3, day, 10), settings=everyday).allowed


def test_no_disconnects_on_public_holidays_of_the_configured_country():
    national_day = local(2026, 10, 1, 10)  # a Thursday
    d = decide(meters(1), now=national_day)
    assert d.refused and d.rule == "window.holiday"
    assert "National Day" in d.message
    # a country without that holiday allows it; so does a utility that configures none
    de = SETTINGS.model_copy(update={"holiday_country": "DE", "timezone": "Europe/Berlin"})
    assert decide(meters(1), now=datetime(2026, 10, 1, 9, tzinfo=UTC), settings=de).allowed
    assert decide(
        meters(1), now=national_day, settings=SETTINGS.model_copy(update={"holiday_country": None})
    ).allowed


def test_declared_extreme_weather_days_refuse_and_only_that_day():
    state = GuardState(extreme_weather_days=frozenset({date(2026, 3, 10)}))
    d = decide(meters(1), state=state)
    assert d.refused and d.rule == "window.extreme_weather"
    assert decide(meters(1), now=TUESDAY_10 + timedelta(days=1), state=state).allowed


def test_the_extreme_weather_day_is_the_local_date():
    # 2026-03-10 00:30 Shanghai is still 2026-03-09 in UTC: the declared day is local
    state = GuardState(extreme_weather_days=frozenset({date(2026, 3, 10)}))
    anytime = SETTINGS.model_copy(update={"window_start": time(0, 0), "window_end": time(23, 59)})
    now = local(2026, 3, 10, 0, 30)
    assert now.date() == date(2026, 3, 9)
    assert decide(meters(1), now=now, settings=anytime, state=state).rule == (
        "window.extreme_weather"
    )


def test_per_area_hourly_limit():
    limited = SETTINGS.model_copy(update={"hourly_limit_area": 5})
    recent = RecentCounts(fleet=3, by_area={"A1": 3})
    d = decide(meters(3), settings=limited, counts=recent)
    assert d.refused and d.rule == "hourly_limit.area"
    assert "'A1'" in d.message
    assert decide(meters(2), settings=limited, counts=recent).allowed
    # another area has its own budget
    assert decide(meters(3, area="B2"), settings=limited, counts=recent).allowed


def test_fleet_wide_hourly_limit():
    limited = SETTINGS.model_copy(update={"hourly_limit_fleet": 8})
    recent = RecentCounts(fleet=6, by_area={"B2": 6})
    d = decide(meters(3), settings=limited, counts=recent)
    assert d.refused and d.rule == "hourly_limit.fleet"
    assert decide(meters(2), settings=limited, counts=recent).allowed


def test_more_than_n_meters_needs_a_supervisors_approval():
    d = decide(meters(11))
    assert d.outcome == "needs_approval" and d.rule == "supervisor_approval"
    assert decide(meters(10)).allowed
    assert decide(meters(11), supervisor_approved=True).allowed
    three = SETTINGS.model_copy(update={"supervisor_threshold": 3})
    assert decide(meters(4), settings=three).outcome == "needs_approval"


def test_refusals_come_before_approval():
    # a large request at night is refused outright, not queued for approval
    assert decide(meters(20), now=local(2026, 3, 10, 22)).rule == "window.hours"


def test_pause_is_checked_before_everything_else():
    d = decide(meters(3, keep=1), now=local(2026, 3, 14, 23), state=GuardState(paused=True))
    assert d.rule == "pause"


@given(
    instant=st.datetimes(
        min_value=datetime(2024, 1, 1), max_value=datetime(2030, 12, 31), timezones=st.just(UTC)
    ),
    n=st.integers(1, 30),
    keep=st.integers(0, 30),
    paused=st.booleans(),
    approved=st.booleans(),
)
def test_a_keep_power_meter_is_never_allowed_and_every_decision_names_a_known_rule(
    instant, n, keep, paused, approved
):
    targets = meters(n, keep=min(keep, n))
    d = decide(targets, now=instant, state=GuardState(paused=paused), supervisor_approved=approved)
    if d.allowed:
        assert d.rule is None
        assert not any(m.keep_power for m in targets)
        local_time = instant.astimezone(SHANGHAI)
        assert local_time.isoweekday() <= 5 and 8 <= local_time.hour < 17
        assert not paused
    else:
        assert d.rule in RULES and d.message


@pytest.mark.parametrize(
    ("update", "match"),
    [
        ({"timezone": "Mars/Olympus"}, "unknown time zone"),
        ({"window_start": "18:00", "window_end": "08:00"}, "window_start must be before"),
        ({"weekdays": [0, 8]}, "ISO numbers"),
        ({"holiday_country": "XX"}, "holidays package"),
        ({"holiday_subdivision": "ZZ"}, "subdivision"),
        ({"supervisor_threshold": 0}, "greater than or equal to 1"),
    ],
)
def test_bad_settings_are_refused_with_the_fix(update, match):
    with pytest.raises(ValidationError, match=match):
        GuardSettings.model_validate(update)
