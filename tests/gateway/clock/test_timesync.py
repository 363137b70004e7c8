"""Time-sync policy: the drift limit, once a day, never near a whole hour (simulated days)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.clock.sync import (
    Broadcast,
    SiteVisit,
    Skip,
    SkipReason,
    TimeSyncPolicy,
    broadcast_time,
    plan_bus_time_sync,
    plan_time_sync,
)
from protocols.freeze_window import in_freeze_window
from simulators.meter import Meter, MeterSpec
from taiqu.clock import AcceleratedClock, ManualClock

ZONE = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 3, 1, tzinfo=ZONE)


def at(h: int, m: int, s: int = 0, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=h, minutes=m, seconds=s)


def test_small_drift_is_broadcast_away_from_the_hour():
    assert plan_time_sync(30, at(10, 30), None) == Broadcast(30)
    assert plan_time_sync(-299, at(10, 30), at(9, 0, day=-1)) == Broadcast(-299)


@pytest.mark.parametrize("drift", [300, -300, 3600, -86400])
def test_drift_of_five_minutes_or_more_needs_a_site_visit_never_a_broadcast(drift):
    assert plan_time_sync(drift, at(10, 30), None) == SiteVisit(drift)


def test_drift_within_tolerance_is_left_alone():
    assert plan_time_sync(2, at(10, 30), None) == Skip(SkipReason.IN_TOLERANCE)


def test_an_unsynced_gateway_clock_never_broadcasts():
    decision = plan_time_sync(30, at(10, 30), None, gateway_synced=False)
    assert decision == Skip(SkipReason.CLOCK_UNSYNCED)
    assert plan_bus_time_sync({"m": 30}, at(10, 30), None, gateway_synced=False).broadcast is False


def test_at_most_once_a_local_day():
    decision = plan_time_sync(30, at(22, 30), at(0, 20))
    assert isinstance(decision, Skip) and decision.reason is SkipReason.ALREADY_TODAY
    assert decision.retry_at == at(0, 10, day=1)
    assert plan_time_sync(30, at(0, 30, day=1), at(0, 20)) == Broadcast(30)


def test_the_meters_own_clock_must_be_clear_of_the_hour_too():
    # gateway at 10:12 is clear, but a meter 4 minutes slow shows 10:08: its freeze window
    decision = plan_time_sync(-240, at(10, 12), None)
    assert isinstance(decision, Skip) and decision.reason is SkipReason.FREEZE_WINDOW
    assert decision.retry_at == at(10, 14)
    assert plan_time_sync(-240, at(10, 14), None) == Broadcast(-240)


def test_a_bus_broadcasts_when_one_meter_needs_it_and_lists_site_visits():
    plan = plan_bus_time_sync({"a": 1, "b": 40, "c": 900}, at(15, 30), None)
    assert plan.broadcast and plan.needing == ("b",) and plan.site_visits == {"c": 900}
    quiet = plan_bus_time_sync({"a": 1, "c": 900}, at(15, 30), None)
    assert not quiet.broadcast and quiet.skip.reason is SkipReason.NO_METER_NEEDS_IT
    assert quiet.site_visits == {"c": 900}
    edge = plan_bus_time_sync({"fast": 200, "slow": -200}, at(15, 53), None)
    assert not edge.broadcast and edge.skip.reason is SkipReason.FREEZE_WINDOW


def test_the_broadcast_time_includes_the_frame_time_on_the_wire():
    t = broadcast_time(at(10, 30), baud=2400)
    assert t - at(10, 30) == timedelta(seconds=22 * 11 / 2400)
    with pytest.raises(ValueError):
        broadcast_time(at(10, 30), baud=0)


def test_policy_limits_are_validated():
    with pytest.raises(ValueError):
        TimeSyncPolicy(min_drift_s=400)
    with pytest.raises(ValueError):
        TimeSyncPolicy(margin=timedelta(minutes=45))


async def run_days(clock, meters: list[Meter], days: int, step_s: float, baud: int = 2400):
    """A gateway loop: every ``step_s`` read each meter's clock, plan, broadcast; a log of sends."""
    sends: list[datetime] = []
    site: set[str] = set()
    last: datetime | None = None
    end = clock.now() + timedelta(days=days)
    while clock.now() < end:
        now = clock.now()
        ts = now.timestamp()
        local = now.astimezone(ZONE)
        drifts = {
            m.address: (m.meter_time(ts).replace(tzinfo=ZONE) - local).total_seconds()
            for m in meters
        }
        plan = plan_bus_time_sync(drifts, local, last)
        site |= set(plan.site_visits)
        if plan.broadcast:
            when = broadcast_time(local, baud).replace(tzinfo=None)
            for m in meters:
                if abs(drifts[m.address]) < 300:  # meters refuse large steps themselves
                    m.set_time(ts + 22 * 11 / baud, when)
            sends.append(local)
            last = local
        await clock.sleep(step_s)
    return sends, site


async def test_a_simulated_week_syncs_drifting_meters_once_a_day_outside_the_windows():
    start = datetime(2026, 3, 1, 23, 0, tzinfo=ZONE)
    clock = ManualClock(start)
    origin = start.timestamp() - 86400
    meters = [
        Meter(MeterSpec(address="000000000001", drift_ppm=200), origin),
        Meter(MeterSpec(address="000000000002", drift_ppm=-150), origin),
        Meter(MeterSpec(address="000000000003"), origin),
    ]
    for meter, offset in zip(meters, (-40, 0, 1200), strict=True):  # the last is 20 min off
        naive = (start + timedelta(seconds=offset)).replace(tzinfo=None)
        meter.set_time(start.timestamp(), naive)
    sends, site = await run_days(clock, meters, days=7, step_s=60)
    assert site == {"000000000003"}
    assert len(sends) >= 6
    days = [s.date() for s in sends]
    assert len(days) == len(set(days))  # at most once per local day
    assert not any(in_freeze_window(s) for s in sends)
    ts = clock.now().timestamp()
    for m in meters[:2]:  # 200 ppm is 17 s a day: the daily sync keeps them within a day's drift
        drift = (m.meter_time(ts).replace(tzinfo=ZONE) - clock.now()).total_seconds()
        assert abs(drift) < 20
    far = (meters[2].meter_time(ts).replace(tzinfo=ZONE) - clock.now()).total_seconds()
    assert far > 1000  # never stepped by broadcast


async def test_an_accelerated_clock_crossing_midnight_never_broadcasts_in_the_window():
    # ten simulated hours per wall second, starting just before midnight: five simulated hours
    start = datetime(2026, 3, 1, 23, 52, tzinfo=ZONE)
    clock = AcceleratedClock(start, factor=36000.0, anchor=datetime.now(ZONE))
    meter = Meter(MeterSpec(address="000000000009"), start.timestamp() - 86400)
    meter.set_time(start.timestamp(), (start + timedelta(seconds=30)).replace(tzinfo=None))
    sends, _ = await run_days(clock, [meter], days=5 / 24, step_s=120)
    assert len(sends) == 1
    assert not in_freeze_window(sends[0])
    assert sends[0] >= datetime(2026, 3, 2, 0, 10, tzinfo=ZONE)
