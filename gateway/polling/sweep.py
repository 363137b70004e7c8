"""Sweeps: every due meter of every bus read for one group, all buses at once.

The poller knows no protocol: drivers (``gateway.polling.driver``) turn read items into
exchanges and values, ``MeterPoller`` (``gateway.polling.meter``) runs a visit through the
meter's bus worker and keeps its back-off state, and the poller hands ``Reading``s, ``Event``s
and event-counter state to the bus's batch (``gateway.polling.batch``), which the daemon backs
with a group commit: flushed at the end of the bus's sweep, or between meters once the batch is
due (``[store] group_seconds``), so the SD card sees one commit per group, not per meter.

A sweep starts on every bus at once; on each bus the area total meter goes first, so the area's
readings are as close in time as the buses allow (line loss needs aligned readings).  Meters in
back-off are skipped; a meter that times out is dropped for the rest of its visit, so a dead
meter costs one timeout (with retries) per sweep at most.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from gateway.bus.worker import BusWorker, Priority
from gateway.config.models import MeterConfig
from gateway.events import EventDetector, MeterEventState, records_to_read
from gateway.polling.batch import Batch, BatchFactory, DirectBatch
from gateway.polling.capability import Capabilities, state_key
from gateway.polling.driver import (
    DriverFactory,
    FlagsFn,
    Group,
    MeterUnavailable,
    Sink,
    no_flags,
    to_value,
)
from gateway.polling.meter import MeterPoller, MeterRead
from protocols.model import Event, Reading, ReadingKind
from protocols.quantities import is_known
from taiqu.clock import Clock

log = logging.getLogger(__name__)


@dataclass
class SweepReport:
    """The outcome of one sweep."""

    group: str
    started: datetime
    read: int = 0
    failed: int = 0
    skipped: int = 0
    empty: int = 0  # answered, but gave none of the group's quantities (all refused/unsupported)
    seconds: float = 0.0
    visits: list[MeterRead] = field(default_factory=list)  # every meter visited, in order

    @property
    def due(self) -> int:
        """Meters that should have been read (visited or in back-off)."""
        return self.read + self.failed + self.skipped + self.empty


class Poller:
    """All meters of the gateway, grouped by bus; runs sweeps and on-demand reads."""

    def __init__(
        self,
        workers: dict[str, BusWorker],
        clock: Clock,
        sink: Sink,
        driver_factory: DriverFactory,
        *,
        zone: str,
        flags: FlagsFn = no_flags,
        state: Any = None,
        clock_synced: Callable[[], bool] = lambda: True,
        detector: EventDetector | None = None,
        batches: BatchFactory | None = None,
    ) -> None:
        self.workers = workers
        self.clock = clock
        self.sink = sink
        self.driver_factory = driver_factory
        self.zone = zone
        self.flags = flags
        self.state = state  # get_state/set_state for event counters (the store)
        self.meters: dict[str, MeterPoller] = {}
        self.clock_synced = clock_synced  # Gateway II: false until the gateway clock is synced
        self.detector = detector or EventDetector()
        self.batches: dict[str, Batch] = {
            name: batches(name) if batches else DirectBatch(sink, state) for name in workers
        }

    def set_meters(self, meters: Iterable[MeterConfig]) -> None:
        """Apply an archive: keep the state of meters that stay, add and drop the others."""
        new: dict[str, MeterPoller] = {}
        for m in meters:
            old = self.meters.get(m.id)
            if old is not None and old.meter == m:
                new[m.id] = old
            elif m.bus in self.workers:
                stored = self.state.get_state(state_key(m.id)) if self.state is not None else None
                new[m.id] = MeterPoller(
                    m,
                    self.driver_factory(m, self.zone),
                    self.workers[m.bus],
                    self.clock,
                    Capabilities.from_json(m.id, stored),
                )
            else:
                log.error("meter %s names bus %r, which is not configured", m.id, m.bus)
        self.meters = new

    def by_bus(self) -> dict[str, list[MeterPoller]]:
        """Meters per bus: area total meters first, then grouped by line settings."""
        out: dict[str, list[MeterPoller]] = {name: [] for name in self.workers}
        for mp in self.meters.values():
            out[mp.meter.bus].append(mp)
        for meters in out.values():
            # area totals first; then by line settings, so the port switches rarely
            meters.sort(key=lambda mp: (mp.meter.role != "area_total", mp.meter.line or ""))
        return out

    def readings(
        self,
        meter: str,
        values: dict[str, Any],
        kind: ReadingKind,
        *,
        meter_time: datetime | None = None,
        freeze_time: datetime | None = None,
        extra_flags: Iterable[str] = (),
    ) -> list[Reading]:
        """Readings of the canonical quantities among ``values``, stamped with the clock."""
        # Whole seconds: finer is noise next to bus timing, and costs uplink bytes on 4G plans.
        now = self.clock.now().replace(microsecond=0)
        flags = self.flags() | frozenset(extra_flags)
        out = []
        for name, raw in values.items():
            value = to_value(raw)
            if value is None or not is_known(name):
                continue
            out.append(
                Reading(
                    meter=meter,
                    quantity=name,
                    value=value,
                    gateway_time=now,
                    kind=kind,
                    meter_time=meter_time,
                    freeze_time=freeze_time,
                    flags=flags,
                )
            )
        return out

    async def sweep(self, group: Group, priority: Priority = Priority.SCHEDULED) -> SweepReport:
        """Read ``group`` from every due meter, all buses at once."""
        report = SweepReport(group.value, self.clock.now())
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        await asyncio.gather(
            *(self._sweep_bus(meters, group, priority, report) for meters in self.by_bus().values())
        )
        report.seconds = loop.time() - t0
        return report

    async def _sweep_bus(
        self, meters: list[MeterPoller], group: Group, priority: Priority, report: SweepReport
    ) -> None:
        if not meters:
            return
        batch = self.batches[meters[0].meter.bus]
        try:
            for mp in meters:
                if not mp.state.due(self.clock.now()):
                    report.skipped += 1
                    continue
                await self._visit(mp, group, priority, report, batch)
                if batch.due():
                    await batch.flush()
        finally:
            await batch.flush()

    async def _visit(
        self, mp: MeterPoller, group: Group, priority: Priority, report: SweepReport, batch: Batch
    ) -> None:
        events: list[Event] = []
        result = await mp.read_items(mp.driver.plan(group), priority, events)
        if result.values:
            batch.add_readings(self.readings(mp.meter.id, result.values, ReadingKind.INTERVAL))
        if result.ok:
            await self._detect_events(mp, result, events, priority, batch)
        batch.add_events(events)
        if mp.caps.dirty:
            batch.set_state(state_key(mp.meter.id), mp.caps.to_json())
            mp.caps.dirty = False
        if result.ok and (result.values or group is Group.EVENTS):
            report.read += 1  # collected: a visit counts only when it gave something
        elif result.ok:
            report.empty += 1
        else:
            report.failed += 1
        report.visits.append(result)

    async def _detect_events(
        self,
        mp: MeterPoller,
        result: MeterRead,
        events: list[Event],
        priority: Priority,
        batch: Batch,
    ) -> None:
        """Counters, records, relay, clock drift and energy checks (``gateway.events``)."""
        poll = mp.driver.poll_result(result.values, self.clock.now(), self.clock_synced())
        if poll is not None and poll.meter_time is not None:
            result.drift_s = (poll.meter_time.utc - poll.gateway_time).total_seconds()
        if poll is None or self.state is None:
            return
        key = f"events:{mp.meter.id}"
        state = MeterEventState.from_json(batch.get_state(key))
        plan = records_to_read(state, poll.counts, poll.status_words)
        if plan:
            got = await mp.read_items(mp.driver.record_items(plan), priority, events)
            records = mp.driver.records(plan, got.by_item)
            poll = replace(poll, records=records)
        found, new_state = self.detector.detect(mp.meter.id, state, poll)
        encoded = new_state.to_json()
        if encoded != state.to_json() or batch.get_state(key) is None:
            batch.set_state(key, encoded)
        events += found

    async def read_now(
        self,
        meter_id: str,
        quantities: Iterable[str] | None = None,
        *,
        priority: Priority = Priority.ON_DEMAND,
        command: str | None = None,
    ) -> list[Reading]:
        """An on-demand read (jumps the queue); ``MeterUnavailable`` when the meter is silent.

        ``command``: the head-end command that asked for it; its records carry the id.
        """
        mp = self.meters.get(meter_id)
        if mp is None:
            raise KeyError(meter_id)
        items = mp.driver.items_for(quantities) if quantities else mp.driver.plan(Group.ENERGY)
        events: list[Event] = []
        result = await mp.read_items(items, priority, events)
        if events:
            self.sink.append_events(events)
        self.keep_capabilities(mp)
        if not result.ok:
            raise MeterUnavailable(result.error)
        readings = self.readings(mp.meter.id, result.values, ReadingKind.ON_DEMAND)
        self.sink.append_readings(readings, command=command)
        return readings

    def keep_capabilities(self, mp: MeterPoller) -> None:
        """Persist what changed in a meter's capabilities at once (reads outside sweeps)."""
        if mp.caps.dirty and self.state is not None:
            self.state.set_state(state_key(mp.meter.id), mp.caps.to_json())
            mp.caps.dirty = False

    def health(self) -> dict[str, Any]:
        """Per-bus and per-meter counters for the status message.

        ``uncollected``: per meter, the quantities it refuses, ignores or answers undecodably
        (at most 50 meters); ``unreadable``: totals of such replies by reason since start."""
        failing = sorted(mp.meter.id for mp in self.meters.values() if mp.state.failing)
        uncollected = {
            mp.meter.id: lost for mp in self.meters.values() if (lost := mp.caps.unavailable())
        }
        totals: dict[str, int] = {}
        for mp in self.meters.values():
            for reason, n in mp.caps.counts.items():
                totals[reason] = totals.get(reason, 0) + n
        return {
            "meters": len(self.meters),
            "failing": failing[:50],
            "failing_count": len(failing),
            "uncollected": dict(sorted(uncollected.items())[:50]),
            "uncollected_count": len(uncollected),
            "unreadable": totals,
            "buses": {name: w.stats.as_dict() for name, w in self.workers.items()},
        }
