"""The daily analytics job: an asyncio task that recomputes yesterday (and a few days before).

At ``run_at`` local time each day (and once ``start_delay_s`` after start, to catch up a missed
run) the job claims the day in ``analytics_runs`` (insert-if-absent: one head-end instance wins;
a claim left unfinished for ``STALE`` is taken over) and recomputes days
``yesterday − lookback_days``…``yesterday``.  The results are idempotent upserts, so even two
instances computing the same day would write the same rows.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import socket
from datetime import date, datetime, timedelta

from sqlalchemy import Engine, and_, or_, select, update

from headend.analytics.service import Summary, recompute
from headend.analytics.settings import AnalyticsSettings
from headend.db.analytics_tables import analytics_runs
from headend.db.dialect import insert_ignore
from headend.db.engine import writing
from taiqu.clock import Clock

log = logging.getLogger(__name__)
STALE = timedelta(hours=1)


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

    async def _loop(self) -> None:
        await self.clock.sleep(self.settings.start_delay_s)
        now = self.clock.now()
        local = now.astimezone(self.settings.tz)
        if local.time() >= self.settings.run_at:
            await self._guarded()
        while True:
            now = self.clock.now()
            await self.clock.sleep((self.next_run(now) - now).total_seconds())
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
