"""Daily frozen data (日冻结) and back-fill (补抄).

Every meter snapshots its registers at its own midnight and keeps the last 62 freezes; DI0 of
``0506xxnn`` selects the n-th last.  For each meter, newest first::

    n = 1 … days:  read freeze time n ──► none / older than the window ──► stop
                                     └──► newer than ``until`` or already stored ──► next n
                                     └──► read the frozen energy n, store it keyed by the
                                          meter's freeze time (flag ``backfilled`` for n > 1)

A driver that reads several freezes at once (``Driver.frozen_range``: DL/T 698.45 GET-Record
Selector10, newest first) gets one read for the whole window, the same checks per row; if the
meter refuses or ignores it, the freezes are read one by one as above.

The daily run (``schedule.daily_frozen_at``, default 00:05) reads ``backfill_days`` (default 7)
so missed days fill themselves; the head-end can order a date range (``backfill`` command).  A
meter's freeze time is the key, so reading a freeze twice never stores it twice.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Protocol

from gateway.bus.worker import Priority
from gateway.polling.meter import MeterPoller
from gateway.polling.sweep import Poller
from protocols.model import Event, Flag, MeterTime, ReadingKind
from taiqu.clock import Clock

log = logging.getLogger(__name__)
MAX_DAYS = 62


class FrozenIndex(Protocol):
    """What the store tells about frozen records already kept."""

    def has_frozen(self, meter: str, freeze_time: Any) -> bool: ...


@dataclass
class FrozenReport:
    """What a frozen run did."""

    stored: dict[str, list[date]] = field(default_factory=dict)
    failed: list[str] = field(default_factory=list)
    unsupported: list[str] = field(default_factory=list)

    @property
    def days_stored(self) -> int:
        return sum(len(v) for v in self.stored.values())


class FrozenReader:
    """Reads daily freezes of every meter through the poller."""

    def __init__(self, poller: Poller, index: FrozenIndex) -> None:
        self.poller = poller
        self.index = index

    async def run(
        self,
        days: int,
        *,
        since: date | None = None,
        until: date | None = None,
        meters: list[str] | None = None,
        priority: Priority = Priority.SCHEDULED,
    ) -> FrozenReport:
        """Read up to ``days`` freezes back (dates ``since``…``until`` inclusive, if given)."""

        days = max(0, min(days, MAX_DAYS))
        report = FrozenReport()
        by_bus = self.poller.by_bus()
        await asyncio.gather(
            *(
                self._bus(
                    [mp for mp in mps if meters is None or mp.meter.id in meters],
                    days,
                    since,
                    until,
                    priority,
                    report,
                )
                for mps in by_bus.values()
            )
        )
        return report

    async def _bus(
        self,
        meters: list[MeterPoller],
        days: int,
        since: date | None,
        until: date | None,
        priority: Priority,
        report: FrozenReport,
    ) -> None:
        for mp in meters:
            if not mp.driver.supports_frozen:
                report.unsupported.append(mp.meter.id)
                continue
            if not mp.state.due(self.poller.clock.now()):
                report.failed.append(mp.meter.id)
                continue
            ok = await self.read_meter(mp, days, since, until, priority, report)
            if not ok:
                report.failed.append(mp.meter.id)

    async def read_meter(
        self,
        mp: MeterPoller,
        days: int,
        since: date | None,
        until: date | None,
        priority: Priority,
        report: FrozenReport,
    ) -> bool:
        """Read one meter's freezes; False if the meter stopped answering."""
        item = mp.driver.frozen_range(days) if days else None
        if item is not None:
            done = await self._read_range(mp, item, since, until, priority, report)
            if done is not None:
                return done
        for n in range(1, days + 1):
            events: list[Event] = []
            time_item, value_items = mp.driver.frozen_items(n)
            got = await mp.read_items([time_item], priority, events)
            values = got.values  # one record row (DL/T 698.45) carries the values too
            if events:
                self.poller.sink.append_events(events)
            self.poller.keep_capabilities(mp)
            if not got.ok:
                return False
            stamp = got.values.get("freeze.time")
            if not isinstance(stamp, MeterTime):
                if n == 1 and got.refused:  # refuses even the last freeze: it keeps none
                    report.unsupported.append(mp.meter.id)
                return True  # the meter has no n-th freeze (or an empty record): done
            day = stamp.local.date()
            if since is not None and day < since:
                return True
            if until is not None and day > until:
                continue
            freeze_time = stamp.aware
            if self.index.has_frozen(mp.meter.id, freeze_time):
                continue
            if value_items:
                got = await mp.read_items(value_items, priority, events)
                if events:
                    self.poller.sink.append_events(events)
                self.poller.keep_capabilities(mp)
                if not got.ok:
                    return False
                values = got.values
            self._store(mp.meter.id, n, values, freeze_time, day, report)
        return True

    async def _read_range(
        self,
        mp: MeterPoller,
        item: Any,
        since: date | None,
        until: date | None,
        priority: Priority,
        report: FrozenReport,
    ) -> bool | None:
        """The last freezes in one read (DL/T 698.45); None if the meter does not do it (the
        caller reads them one by one), False if the meter stopped answering."""
        events: list[Event] = []
        got = await mp.read_items([item], priority, events)
        if events:
            self.poller.sink.append_events(events)
        self.poller.keep_capabilities(mp)
        if not got.ok:
            return False
        rows = got.values.get("frozen.rows")
        if not isinstance(rows, list):
            return None  # refused or ignored: one by one
        for n, values in enumerate(rows, start=1):  # newest first
            stamp = values.get("freeze.time")
            if not isinstance(stamp, MeterTime):
                continue
            day = stamp.local.date()
            if since is not None and day < since:
                break
            if (until is not None and day > until) or self.index.has_frozen(
                mp.meter.id, stamp.aware
            ):
                continue
            self._store(mp.meter.id, n, values, stamp.aware, day, report)
        return True

    def _store(
        self,
        meter: str,
        n: int,
        values: dict[str, Any],
        freeze_time: datetime,
        day: date,
        report: FrozenReport,
    ) -> None:
        """Keep the n-th last freeze (flagged ``backfilled`` unless it is the newest)."""
        readings = self.poller.readings(
            meter,
            values,
            ReadingKind.DAILY_FROZEN,
            freeze_time=freeze_time,
            extra_flags=(Flag.BACKFILLED.value,) if n > 1 else (),
        )
        if readings:
            self.poller.sink.append_readings(readings)
            report.stored.setdefault(meter, []).append(day)


Collection = Callable[[str, str, int, int, datetime], None]
"""``GatewayMetrics.collection``: (schedule, phase, due, read, at)."""


class FrozenJobs:
    """The daily run, its retry of failed meters, the start-up catch-up, and their books.

    Phases (``taiqu_collection_success_ratio{schedule="daily_frozen"}``): the daily run is
    ``first_sweep``; the retry ``retry_s`` later and the start-up catch-up are
    ``after_backfill``.  Due = meters that keep daily freezes; read = those not failing.
    """

    def __init__(
        self,
        reader: FrozenReader,
        days: int,
        clock: Clock,
        collection: Collection,
        *,
        retry_s: float = 3600.0,
    ) -> None:
        self.reader = reader
        self.days = days
        self.clock = clock
        self.collection = collection
        self.retry_s = retry_s
        self.failed: set[str] = set()
        self.last: dict[str, Any] = {}
        self._lock = asyncio.Lock()

    async def run(
        self, phase: str, priority: Priority, meters: list[str] | None = None
    ) -> FrozenReport:
        """One run over ``meters`` (all by default); updates the failing set and the books."""
        async with self._lock:
            report = await self.reader.run(self.days, meters=meters, priority=priority)
        capable = {m for m, mp in self.reader.poller.meters.items() if mp.driver.supports_frozen}
        kept = set() if meters is None else self.failed - set(meters)
        self.failed = (kept | set(report.failed)) & capable
        refused = set(report.unsupported) & capable  # answered, but keep no freeze: not collected
        now = self.clock.now()
        collected = len(capable - self.failed - refused)
        self.collection("daily_frozen", phase, len(capable), collected, now)
        self.last = {
            "at": now.isoformat(),
            "phase": phase,
            "stored": report.days_stored,
            "failed": sorted(self.failed)[:50],
            "refused": sorted(refused)[:50],
        }
        return report

    async def daily(self, slot: Any = None) -> FrozenReport:
        """The daily job: read, then retry the meters that failed ``retry_s`` later."""
        report = await self.run("first_sweep", Priority.SCHEDULED)
        log.info("daily frozen: %d meter-days stored, %d meters failed",
                 report.days_stored, len(self.failed))  # fmt: skip
        if self.failed:
            await self.clock.sleep(self.retry_s)
            retry = await self.run("after_backfill", Priority.BACKFILL, sorted(self.failed))
            log.info("daily frozen retry: %d meter-days stored, %d meters still failing",
                     retry.days_stored, len(self.failed))  # fmt: skip
        return report

    async def catch_up(self) -> FrozenReport:
        """At start: the freezes missed while the gateway was down (idle-bus priority)."""
        report = await self.run("after_backfill", Priority.BACKFILL)
        if report.days_stored:
            log.info("frozen catch-up: %d meter-days stored", report.days_stored)
        return report
