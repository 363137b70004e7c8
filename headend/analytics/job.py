"""The daily analytics job: an asyncio task that recomputes yesterday (and a few days before).

At ``run_at`` local time each day (and once ``start_delay_s`` after start, to catch up a missed
run) the job claims the day in ``analytics_runs`` (insert-if-absent: one head-end instance wins;
a claim left unfinished for ``STALE`` is taken over) and recomputes days
``yesterday − lookback_days``…``yesterday``.  The results are idempotent upserts, so even two
instances computing the same day would write the same rows.

Time is the head-end's one clock (``app.state.clock``): the job sleeps with ``clock.sleep`` and
takes "today" in the settings' zone from ``clock.now()``, so an accelerated demo clock computes
line loss right after a simulated 01:30.  A clock that does not move by itself (``ManualClock``:
``wall_seconds`` is 0, and its ``sleep`` *advances* it) is never slept on: the job polls it every
``POLL_S`` of wall time and runs only when whoever owns the clock has moved it past the run time,
so a test's clock is never fast-forwarded through days by the job.  ``start(app)`` runs the job
only for an app whose background workers run (``taiqu headend serve``), never for a bare router.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, and_, or_, select, update

from headend.analytics.service import Summary, recompute
from headend.analytics.settings import AnalyticsSettings
from headend.db.analytics_tables import analytics_runs
from headend.db.dialect import insert_ignore
from headend.db.engine import writing
from taiqu.clock import Clock

log = logging.getLogger(__name__)
STALE = timedelta(hours=1)
POLL_S = 0.05  # wall seconds between looks at a clock that does not move by itself
MAX_NAP = timedelta(hours=1)  # clock time slept at once before looking at the clock again


def instance_name() -> str:
    """Who claims a run: host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def claim(engine: Engine, day: date, who: str, now: datetime) -> bool:
    """Claim the job of ``day``; False if another instance has it (finished or fresh)."""
    key = day.isoformat()
    with writing(engine) as conn:
        done = conn.execute(
            insert_ignore(conn, analytics_runs).values(day=key, claimed_by=who, claimed_at=now)
        )
        if done.rowcount == 1:
            return True
        taken = conn.execute(
            update(analytics_runs)
            .where(
                analytics_runs.c.day == key,
                analytics_runs.c.finished_at.is_(None),
                or_(analytics_runs.c.claimed_at < now - STALE, analytics_runs.c.claimed_by == who),
            )
            .values(claimed_by=who, claimed_at=now)
        )
        return taken.rowcount == 1


def finish(engine: Engine, day: date, who: str, now: datetime, summary: Summary) -> None:
    """Mark the claimed run of ``day`` done."""
    body = {"areas": len(summary.areas), "losses": summary.losses, "suspects": summary.suspects}
    with writing(engine) as conn:
        conn.execute(
            update(analytics_runs)
            .where(
                and_(analytics_runs.c.day == day.isoformat(), analytics_runs.c.claimed_by == who)
            )
            .values(finished_at=now, summary=json.dumps(body))
        )


def is_done(engine: Engine, day: date) -> bool:
    """Whether the run of ``day`` finished."""
    with engine.connect() as conn:
        row = conn.execute(
            select(analytics_runs.c.finished_at).where(analytics_runs.c.day == day.isoformat())
        ).first()
    return row is not None and row.finished_at is not None


def run_day(
    engine: Engine, settings: AnalyticsSettings, today: date, now: datetime, who: str
) -> Summary | None:
    """The daily run for ``today`` (computes yesterday and the look-back); None if not ours."""
    if not claim(engine, today, who, now):
        return None
    yesterday = today - timedelta(days=1)
    summary = recompute(
        engine, settings, yesterday - timedelta(days=settings.lookback_days), yesterday, now
    )
    finish(engine, today, who, now, summary)
    return summary


class DailyJob:
    """Runs ``run_day`` at ``settings.run_at`` every day on ``clock``."""

    def __init__(self, engine: Engine, settings: AnalyticsSettings, clock: Clock) -> None:
        self.engine, self.settings, self.clock = engine, settings, clock
        self.who = instance_name()
        self.task: asyncio.Task[None] | None = None
        self.runs = 0

    def next_run(self, now: datetime) -> datetime:
        """The next ``run_at`` after ``now``."""
        local = now.astimezone(self.settings.tz)
        at = datetime.combine(local.date(), self.settings.run_at, tzinfo=self.settings.tz)
        return at if at > local else at + timedelta(days=1)

    async def once(self) -> Summary | None:
        """Run today's job now (in a worker thread) unless it is done or claimed."""
        now = self.clock.now()
        today = now.astimezone(self.settings.tz).date()
        result = await asyncio.to_thread(run_day, self.engine, self.settings, today, now, self.who)
        self.runs += result is not None
        return result

    async def until(self, when: datetime) -> None:
        """Return once ``clock.now() >= when`` (never moving a clock that moves only by hand)."""
        while (now := self.clock.now()) < when:
            left = min(when - now, MAX_NAP).total_seconds()
            if self.clock.wall_seconds(left) > 0:
                await self.clock.sleep(left)
            else:  # a manual clock: wait for its owner to move it
                await asyncio.sleep(POLL_S)

    async def _loop(self) -> None:
        await self.until(self.clock.now() + timedelta(seconds=self.settings.start_delay_s))
        now = self.clock.now()
        local = now.astimezone(self.settings.tz)
        if local.time() >= self.settings.run_at:
            await self._guarded()
        while True:
            await self.until(self.next_run(self.clock.now()))
            await self._guarded()

    async def _guarded(self) -> None:
        try:
            await self.once()
        except Exception:  # the job must survive a bad day; the next run retries
            log.exception("analytics daily job failed")

    def start(self) -> None:
        """Start the loop as a task of the running event loop."""
        if self.task is None:
            self.task = asyncio.get_running_loop().create_task(self._loop(), name="analytics-job")

    async def stop(self) -> None:
        """Cancel the loop and wait for it."""
        if self.task is not None:
            self.task.cancel()
            try:
                await self.task
            except asyncio.CancelledError:
                pass
            self.task = None


def workers_running(app: Any) -> bool:
    """Whether ``app`` runs its background workers (``serve``; the dispatcher is the sign)."""
    return getattr(app.state, "dispatcher", None) is not None


def start(app: Any, settings: AnalyticsSettings) -> DailyJob | None:
    """Start the daily job on ``app.state.clock`` once per app, when enabled and the app runs its
    background workers; the job started (or already running), else None."""
    job: DailyJob | None = getattr(app.state, "analytics_job", None)
    if job is None and settings.job and workers_running(app):
        job = DailyJob(app.state.engine, settings, app.state.clock)
        job.start()
        app.state.analytics_job = job
    return job
