"""Aligned slots in the meters' zone, daily times, and the schedule loop on a manual clock."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

from hypothesis import given
from hypothesis import strategies as st

from gateway.polling.schedule import MIDNIGHT_GUARD_S, next_daily, next_slot, run_every
from taiqu.clock import ManualClock

ZONE = "Asia/Shanghai"


def test_slots_align_to_local_quarter_hours():
    now = datetime(2026, 1, 1, 0, 7, 30, tzinfo=UTC)  # 08:07:30 in Shanghai
    assert next_slot(now, 15, ZONE) == datetime(2026, 1, 1, 0, 15, tzinfo=UTC)
    assert next_slot(datetime(2026, 1, 1, 0, 15, tzinfo=UTC), 15, ZONE) == datetime(
        2026, 1, 1, 0, 30, tzinfo=UTC
    )


def test_slots_follow_a_half_hour_zone():
    now = datetime(2026, 1, 1, 0, 0, tzinfo=UTC)  # 05:30 in Kolkata
    assert next_slot(now, 60, "Asia/Kolkata") == datetime(2026, 1, 1, 0, 30, tzinfo=UTC)


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2040, 1, 1)),
    st.sampled_from([1, 5, 15, 30, 60]),
)
def test_next_slot_is_strictly_later_and_within_one_interval(naive, minutes):
    now = naive.replace(tzinfo=UTC)
    slot = next_slot(now, minutes, ZONE)
    assert now < slot <= now + timedelta(minutes=minutes)
    local = slot.astimezone(__import__("zoneinfo").ZoneInfo(ZONE))
    assert (local.hour * 60 + local.minute) % minutes == 0 and local.second == 0


def test_daily_time_is_local_and_strictly_later():
    now = datetime(2026, 1, 1, 16, 5, tzinfo=UTC)  # 00:05 on Jan 2 in Shanghai
    assert next_daily(now, time(0, 5), ZONE) == datetime(2026, 1, 2, 16, 5, tzinfo=UTC)
    assert next_daily(now - timedelta(seconds=1), time(0, 5), ZONE) == now


async def test_run_every_runs_each_slot_once_and_survives_a_failing_job():
    clock = ManualClock(datetime(2026, 1, 1, 0, 1, tzinfo=UTC))
    slots: list[datetime] = []

    async def job(slot: datetime) -> None:
        slots.append(slot)
        if len(slots) == 2:
            raise RuntimeError("boom")  # logged, the schedule goes on

    task = asyncio.ensure_future(run_every(clock, "t", 5, ZONE, job))
    while len(slots) < 4:
        await asyncio.sleep(0)
    task.cancel()
    assert [s.minute for s in slots] == [5, 10, 15, 20]


async def test_the_midnight_slot_starts_after_the_meters_freeze_guard():
    # 23:50 in Shanghai: the 00:00 slot runs a minute late (meters busy freezing), the others not
    clock = ManualClock(datetime(2026, 1, 1, 15, 50, tzinfo=UTC))
    ran: list[tuple[datetime, datetime]] = []

    async def job(slot: datetime) -> None:
        ran.append((slot, clock.now()))

    task = asyncio.ensure_future(run_every(clock, "t", 5, ZONE, job))
    while len(ran) < 4:
        await asyncio.sleep(0)
    task.cancel()
    late = {slot.astimezone(UTC).strftime("%H:%M"): (at - slot).total_seconds() for slot, at in ran}
    assert late == {"15:55": 0.0, "16:00": MIDNIGHT_GUARD_S, "16:05": 0.0, "16:10": 0.0}
