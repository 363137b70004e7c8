"""What a meter keeps of its past besides daily freezes: load records and settlement periods.

**Load profile** (负荷曲线, DL/T 645-2007 DI3 = 06; ``[schedule] load_profile_minutes``, off by
default).  A meter stores a record of each category every ``load_profile_interval_min``
minutes; per meter and category the gateway keeps the time of the last record it stored (state
``history:<meter>``) and asks for the records after it, a frame's worth at a time, newest last::

    cursor ──► read up to ``per_read`` records from cursor + interval (given-time read)
           ──► store the records newer than the cursor (kind ``load_profile``, ``ft`` = the
               record's own time), cursor = the newest ──► again while records are due

A first read, or one after an outage, goes back ``load_profile_backfill_hours`` at most.  A meter
that answers without records (refuses the read) is asked again after ``REPROBE``; a protocol
with no load profile (DL/T 645-1997, Modbus) costs no bus time and is reported ``unsupported``.

**Settlement values** (月结算; ``[schedule] settlement_periods``, off by default).  Once a day
(``settlement_at``) the gateway reads the energy registers of the last ``settlement_periods``
settlement periods it has not stored yet (kind ``settlement``, ``ft`` = the settlement instant:
``settlement_day`` at ``settlement_hour`` of each month, meter-local; the factory default of
DL/T 645-2007 parameter 04000B01 is day 1, 00 h).  Within ``SETTLE_GUARD`` after a settlement
instant nothing is read (a meter whose clock lags has not settled yet: its "last period" would
be stamped a month wrong).
A block the meter refuses falls back to its members (older meters).

Both stamp readings with the meter's own times, so reading one twice stores it once at the
head-end (keyed by meter, quantity, time, kind).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gateway.bus.worker import Priority
from gateway.polling.meter import MeterPoller, MeterRead
from gateway.polling.sweep import Poller
from protocols.dlt645.load_profile import CATEGORIES
from protocols.model import Event, MeterTime, ReadingKind

log = logging.getLogger(__name__)
REPROBE = timedelta(hours=24)  # a meter that refused its load profile is asked again after this
SETTLE_GUARD = timedelta(minutes=30)
MAX_FRAME_VALUES = 196  # value bytes of a one-frame reply (200 less the identifier)
MAX_READS = 24  # load profile reads per meter and category in one run (catch-up is bounded)


def per_read(category: int) -> int:
    """Records of ``category`` one read asks for: what fits one reply frame."""
    _, fields = CATEGORIES[category]
    record = 5 + sum(layout.length for _, layout in fields)
    return max(1, MAX_FRAME_VALUES // record)


def state_key(meter: str) -> str:
    return f"history:{meter}"


@dataclass
class HistoryReport:
    """What one load profile or settlement run did (``due`` = meters asked or skipped)."""

    group: str
    at: datetime
    stored: dict[str, int] = field(default_factory=dict)  # meter → records stored
    collected: list[str] = field(default_factory=list)  # answered with what was due (or had it)
    failed: list[str] = field(default_factory=list)  # did not answer
    refused: list[str] = field(default_factory=list)  # answered, without it
    unsupported: list[str] = field(default_factory=list)  # keeps none the gateway reads

    @property
    def due(self) -> int:
        """Meters that keep this history (what collection success is counted over)."""
        return len(self.collected) + len(self.failed) + len(self.refused)

    def summary(self) -> dict[str, Any]:
        return {
            "at": self.at.isoformat(),
            "records": sum(self.stored.values()),
            "collected": len(self.collected),
            "failed": sorted(self.failed)[:50],
            "refused": sorted(self.refused)[:50],
            "unsupported": sorted(self.unsupported)[:50],
        }


@dataclass(frozen=True)
class HistorySettings:
    """The ``[schedule]`` keys of these reads (see the module docstring)."""

    interval_min: int = 15
    categories: tuple[int, ...] = (4,)
    backfill_hours: int = 24
    settlement_day: int = 1
    settlement_hour: int = 0


def settlement_instant(now: datetime, n: int, day: int, hour: int) -> datetime:
    """The n-th last settlement instant (naive meter-local) at or before ``now`` (naive)."""
    year, month = now.year, now.month
    this = datetime(year, month, day, hour)
    if this > now:
        n += 1
    month -= n - 1
    while month < 1:
        year, month = year - 1, month + 12
    return datetime(year, month, day, hour)


class HistoryReader:
    """Reads load records and settlement values of every meter through the poller."""

    def __init__(self, poller: Poller, zone: str, settings: HistorySettings) -> None:
        self.poller = poller
        self.zone = zone
        self.tz = ZoneInfo(zone)
        self.settings = settings

    def _local(self) -> datetime:
        return self.poller.clock.now().astimezone(self.tz).replace(tzinfo=None)

    def _state(self, meter: str) -> dict[str, Any]:
        store = self.poller.state
        value = store.get_state(state_key(meter)) if store is not None else None
        return dict(value) if isinstance(value, dict) else {}

    def _keep(self, meter: str, state: dict[str, Any]) -> None:
        if self.poller.state is not None:
            self.poller.state.set_state(state_key(meter), state)

    async def _read(self, mp: MeterPoller, items: Any, priority: Priority) -> MeterRead:
        events: list[Event] = []
        got = await mp.read_items(list(items), priority, events)
        if events:
            self.poller.sink.append_events(events)
        self.poller.keep_capabilities(mp)
        return got

    async def _each_bus(self, group: str, visit: Any) -> HistoryReport:
        report = HistoryReport(group, self.poller.clock.now())

        async def bus(meters: list[MeterPoller]) -> None:
            for mp in meters:
                if not mp.state.due(self.poller.clock.now()):
                    report.failed.append(mp.meter.id)  # in back-off: not collected
                    continue
                await visit(mp, report)

        await asyncio.gather(*(bus(mps) for mps in self.poller.by_bus().values()))
        return report

    # -- load profile ----------------------------------------------------------------------------

    async def load_profile(self, priority: Priority = Priority.SCHEDULED) -> HistoryReport:
        """One run over every meter (see the module docstring)."""
        return await self._each_bus(
            "load_profile", lambda mp, report: self._profile_meter(mp, priority, report)
        )

    async def _profile_meter(
        self, mp: MeterPoller, priority: Priority, report: HistoryReport
    ) -> None:
        s = self.settings
        start = self._local().replace(second=0, microsecond=0)
        if all(mp.driver.profile_item(c, start, 1) is None for c in s.categories):
            report.unsupported.append(mp.meter.id)
            return
        state = self._state(mp.meter.id)
        now = self.poller.clock.now()
        until = state.get("profile_refused_until")
        if isinstance(until, str) and datetime.fromisoformat(until) > now:
            report.refused.append(mp.meter.id)
            return
        outcome, lacking = "collected", True
        for category in s.categories:
            got = await self._profile_category(mp, category, state, priority, report)
            if got == "failed":
                outcome = "failed"
                break
            if got == "refused":
                outcome = "refused"
            lacking = lacking and got == "refused" and str(category) not in state["profile"]
        if outcome == "refused" and lacking:  # never gave a record: ask again in a day
            state["profile_refused_until"] = (now + REPROBE).isoformat()
        else:
            state.pop("profile_refused_until", None)
        self._keep(mp.meter.id, state)
        getattr(report, outcome).append(mp.meter.id)

    async def _profile_category(
        self,
        mp: MeterPoller,
        category: int,
        state: dict[str, Any],
        priority: Priority,
        report: HistoryReport,
    ) -> str:
        """Read the due records of one category: ``collected``, ``refused`` or ``failed``."""
        s = self.settings
        step = timedelta(minutes=s.interval_min)
        local = self._local()
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        latest = midnight + ((local - midnight) // step) * step
        oldest = latest - timedelta(hours=s.backfill_hours)
        cursors = state.setdefault("profile", {})
        stored = cursors.get(str(category))
        cursor = max(datetime.fromisoformat(stored), oldest) if stored else oldest
        for _ in range(MAX_READS):
            due = (latest - cursor) // step
            if due <= 0:
                return "collected"
            count = min(due, per_read(category))
            item = mp.driver.profile_item(category, cursor + step, count)
            got = await self._read(mp, [item], priority)
            if not got.ok:
                return "failed"
            rows = [r for r in got.values.get("load_profile.rows", ()) if _newer(r, cursor)]
            if not rows:  # refused (none since the cursor, or none at all), or nothing new
                return "refused" if got.refused or stored is None else "collected"
            for row in rows:
                stamp: MeterTime = row["record.time"]
                values = {k: v for k, v in row.items() if k != "record.time"}
                readings = self.poller.readings(
                    mp.meter.id,
                    values,
                    ReadingKind.LOAD_PROFILE,
                    meter_time=stamp.aware,
                    freeze_time=stamp.aware,
                )
                if readings:
                    self.poller.sink.append_readings(readings)
                    report.stored[mp.meter.id] = report.stored.get(mp.meter.id, 0) + 1
            cursor = max(r["record.time"].local for r in rows)
            stored = cursors[str(category)] = cursor.isoformat()
        return "collected"

    # -- settlement periods ------------------------------------------------------------------

    async def settlements(
        self, periods: int, priority: Priority = Priority.SCHEDULED
    ) -> HistoryReport:
        """The last ``periods`` settlement periods not stored yet, of every meter (none within
        ``SETTLE_GUARD`` after a settlement instant: which period a meter calls the last one
        is uncertain then)."""
        s, local = self.settings, self._local()
        if local - settlement_instant(local, 1, s.settlement_day, s.settlement_hour) < SETTLE_GUARD:
            log.info("settlement values: within %s of the settlement instant; later", SETTLE_GUARD)
            return HistoryReport("settlement", self.poller.clock.now())
        return await self._each_bus(
            "settlement", lambda mp, report: self._settle_meter(mp, periods, priority, report)
        )

    async def _settle_meter(
        self, mp: MeterPoller, periods: int, priority: Priority, report: HistoryReport
    ) -> None:
        if not mp.driver.settlement_items(1):
            report.unsupported.append(mp.meter.id)
            return
        s = self.settings
        local = self._local()
        state = self._state(mp.meter.id)
        done = set(state.get("settled", ()))
        outcome = "collected"
        for n in range(1, periods + 1):
            items = mp.driver.settlement_items(n)
            if not items:
                break  # the meter keeps no older period (1997: two)
            instant = settlement_instant(local, n, s.settlement_day, s.settlement_hour)
            if instant.isoformat() in done:
                continue
            got = await self._read(mp, items, priority)
            if got.ok and not got.values:  # a refused block: its members (older meters)
                singles = [d for item in items for d in mp.driver.fallback(item)]
                if singles:
                    got = await self._read(mp, singles, priority)
            if not got.ok:
                outcome = "failed"
                break
            aware = MeterTime(instant, self.zone).aware
            readings = self.poller.readings(
                mp.meter.id, got.values, ReadingKind.SETTLEMENT, freeze_time=aware
            )
            if not readings:
                outcome = "refused" if n == 1 else outcome  # none, or no older period yet
                break
            self.poller.sink.append_readings(readings)
            report.stored[mp.meter.id] = report.stored.get(mp.meter.id, 0) + 1
            done.add(instant.isoformat())
        state["settled"] = sorted(done)[-24:]
        self._keep(mp.meter.id, state)
        getattr(report, outcome).append(mp.meter.id)


def _newer(row: Any, cursor: datetime) -> bool:
    stamp = row.get("record.time") if isinstance(row, dict) else None
    return isinstance(stamp, MeterTime) and stamp.local > cursor
