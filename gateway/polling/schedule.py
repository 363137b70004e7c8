"""When sweeps run: slots aligned to the meters' local midnight, and the daily frozen read.

``next_slot(now, minutes, zone)`` is the first slot boundary strictly after ``now`` (a 15-minute
schedule runs at :00, :15, :30, :45 local time); ``next_daily`` the next occurrence of a local
time of day.  ``run_every`` sleeps on the injected clock (so an accelerated clock runs a day of
schedules in minutes), runs the job, and skips slots a slow job overran (logged), never running
one slot twice.  A slot at local midnight starts ``MIDNIGHT_GUARD_S`` late: meters write
their daily freeze at 00:00 and many stay silent meanwhile (tens of seconds), which would
otherwise count as unreachable.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

from taiqu.clock import Clock

log = logging.getLogger(__name__)
MIDNIGHT_GUARD_S = 60.0


def next_slot(now: datetime, minutes: int, zone: str) -> datetime:
    """The first ``minutes``-aligned local slot strictly after ``now`` (aware, UTC)."""
    local = now.astimezone(ZoneInfo(zone))
    midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
    elapsed = (local - midnight).total_seconds()
    step = minutes * 60
    slot = midnight + timedelta(seconds=(int(elapsed // step) + 1) * step)
    return slot.astimezone(now.tzinfo or ZoneInfo("UTC"))


def next_daily(now: datetime, at: time, zone: str) -> datetime:
    """The next local ``at`` strictly after ``now``."""
    tz = ZoneInfo(zone)
    local = now.astimezone(tz)
    candidate = datetime.combine(local.date(), at, tz)
    if candidate <= local:
        candidate = datetime.combine(local.date() + timedelta(days=1), at, tz)
    return candidate.astimezone(now.tzinfo or ZoneInfo("UTC"))


Job = Callable[[datetime], Awaitable[object]]
NextFn = Callable[[datetime], datetime]


async def run_at(clock: Clock, name: str, next_fn: NextFn, job: Job) -> None:
    """Run ``job(slot)`` at every time ``next_fn`` gives, until cancelled."""
    slot = next_fn(clock.now())
    while True:
        while (wait := (slot - clock.now()).total_seconds()) > 0:
            await clock.sleep(wait)
        try:
            await job(slot)
        except Exception:  # a failing job must not end the schedule
            log.exception("%s job for %s failed", name, slot.isoformat())
        following = next_fn(clock.now())
        skipped = next_fn(slot)
        if following > skipped:
            log.warning("%s: the %s run overran its slot; skipping to %s", name, slot, following)
        slot = max(following, skipped)


async def run_every(clock: Clock, name: str, minutes: int, zone: str, job: Job) -> None:
    """Run ``job`` at every ``minutes``-aligned slot (the midnight slot ``MIDNIGHT_GUARD_S``
    late)."""
    tz = ZoneInfo(zone)

    async def guarded(slot: datetime) -> object:
        if slot.astimezone(tz).time() == time(0, 0):
            wait = (slot + timedelta(seconds=MIDNIGHT_GUARD_S) - clock.now()).total_seconds()
            if wait > 0:
                await clock.sleep(wait)
        return await job(slot)

    await run_at(clock, name, lambda now: next_slot(now, minutes, zone), guarded)


async def run_daily(clock: Clock, name: str, at: time, zone: str, job: Job) -> None:
    """Run ``job`` every day at local time ``at``."""
    await run_at(clock, name, lambda now: next_daily(now, at, zone), job)
