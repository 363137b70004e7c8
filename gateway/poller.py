"""Reading meters: drivers turn read items into exchanges and values; the poller runs sweeps.

A *driver* (``poller_dlt645``, ``poller_modbus``) knows one protocol: which items a group of
quantities needs (energy, events, instantaneous), how to build the exchange for an item and how
to decode its outcome into canonical quantities.  The poller knows neither protocol: it runs
items through the meter's bus worker, keeps the meter's back-off state, and hands ``Reading``s
and ``Event``s to the sink (the local store).

A sweep starts on every bus at once; on each bus the area total meter goes first, so the area's
readings are as close in time as the buses allow (line loss needs aligned readings).  Meters in
back-off are skipped; a meter that times out is dropped for the rest of its visit, so a dead
meter costs one timeout (with retries) per sweep at most.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from gateway.bus.worker import BusWorker, Exchange, Priority, TransactionError
from gateway.config import MeterConfig
from gateway.events import (
    Counter,
    EventDetector,
    MeterEventState,
    PollResult,
    record_identifiers,
    records_to_read,
)
from gateway.link import LinkError
from gateway.poller_state import MeterState
from protocols.model import Event, Reading, ReadingKind, Value
from protocols.quantities import is_known
from taiqu.clock import Clock

log = logging.getLogger(__name__)


class Group(StrEnum):
    """What a sweep reads."""

    ENERGY = "energy"  # active energy total + tariffs
    EVENTS = "events"  # relay / status words and event counters (with new records)
    INSTANT = "instant"  # voltage, current, power, power factor, frequency


class MeterRefused(Exception):
    """The meter answered, but not with data (abnormal reply / Modbus exception)."""


class MeterUnavailable(Exception):
    """The meter did not answer (after retries) or is in back-off."""


class Driver(Protocol):
    """One meter's protocol: items, exchanges, decoding."""

    meter: MeterConfig
    supports_frozen: bool

    def plan(self, group: Group) -> Sequence[Any]:
        """The read items of a group."""
        ...

    def items_for(self, quantities: Iterable[str]) -> Sequence[Any]:
        """The read items that cover ``quantities`` (on-demand reads)."""
        ...

    def exchange(self, item: Any) -> Exchange:
        """A fresh exchange for ``item``."""
        ...

    def decode(self, item: Any, outcome: Any) -> dict[str, Any]:
        """Values of a reply keyed by quantity (``MeterRefused`` for an abnormal reply)."""
        ...

    def poll_result(
        self, values: dict[str, Any], gateway_time: datetime, clock_synced: bool
    ) -> PollResult | None:
        """What event detection needs from a visit's values (None: the protocol has no events)."""
        ...

    def records(
        self, plan: dict[Counter, list[int]], by_item: dict[Any, dict[str, Any]]
    ) -> dict[Counter, dict[int, Any]]:
        """Event records read for ``plan``, by counter and record number."""
        ...

    def frozen_items(self, n: int) -> tuple[Any, Sequence[Any]]:
        """(freeze time item, frozen value items) of the n-th last daily freeze."""
        ...


class Sink(Protocol):
    """Where readings and events go (the local store)."""

    def append_readings(self, readings: Sequence[Reading], command: str | None = None) -> Any: ...

    def append_events(self, events: Sequence[Event]) -> Any: ...


DriverFactory = Callable[[MeterConfig, str], Driver]
FlagsFn = Callable[[], frozenset[str]]


def no_flags() -> frozenset[str]:
    """The default flags hook (``clock_unsynced`` arrives with clock synchronisation)."""
    return frozenset()


def to_value(raw: Any) -> Value | None:
    """A decoded register value as a model value (None for what is not a plain value)."""
    if isinstance(raw, bool):
        return None
    if isinstance(raw, Decimal | int | str):
        return raw
    if isinstance(raw, float):
        return Decimal(repr(raw))
    return None


@dataclass
class MeterRead:
    """What one visit to a meter produced."""

    meter: str
    values: dict[str, Any] = field(default_factory=dict)
    by_item: dict[Any, dict[str, Any]] = field(default_factory=dict)
    refused: list[str] = field(default_factory=list)
    error: str = ""
    bus: str = ""
    drift_s: float | None = None  # meter clock − gateway clock (events sweeps)

    @property
    def ok(self) -> bool:
        return not self.error


@dataclass
class SweepReport:
    """The outcome of one sweep."""

    group: str
    started: datetime
    read: int = 0
    failed: int = 0
    skipped: int = 0
    seconds: float = 0.0
    visits: list[MeterRead] = field(default_factory=list)  # every meter visited, in order

    @property
    def due(self) -> int:
        """Meters that should have been read (visited or in back-off)."""
        return self.read + self.failed + self.skipped


class MeterPoller:
    """Reads one meter through its bus worker and keeps its availability state."""

    def __init__(self, meter: MeterConfig, driver: Driver, worker: BusWorker, clock: Clock) -> None:
        self.meter = meter
        self.driver = driver
        self.worker = worker
        self.clock = clock
        self.state = MeterState(meter.id)

    def _factory(self, item: Any) -> Callable[[], Exchange]:
        driver = self.driver
        return lambda: driver.exchange(item)

    async def read_items(
        self, items: Sequence[Any], priority: Priority, events: list[Event]
    ) -> MeterRead:
        """Read ``items`` in order; stop at the first silence (the meter is marked failing)."""
        result = MeterRead(self.meter.id, bus=self.meter.bus)
        for item in items:
            try:
                outcome = await self.worker.transact(self._factory(item), priority)
            except TransactionError as exc:
                result.error = str(exc)
                event = self.state.failed(self.clock.now(), result.error)
                if event:
                    events.append(event)
                return result
            except LinkError as exc:  # the bus is down: not the meter's fault
                result.error = str(exc)
                return result
            event = self.state.succeeded(self.clock.now())
            if event:
                events.append(event)
            try:
                decoded = self.driver.decode(item, outcome)
            except MeterRefused as exc:
                result.refused.append(str(exc))
                continue
            result.by_item[item] = decoded
            result.values.update(decoded)
        return result


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

    def set_meters(self, meters: Iterable[MeterConfig]) -> None:
        """Apply an archive: keep the state of meters that stay, add and drop the others."""
        new: dict[str, MeterPoller] = {}
        for m in meters:
            old = self.meters.get(m.id)
            if old is not None and old.meter == m:
                new[m.id] = old
            elif m.bus in self.workers:
                new[m.id] = MeterPoller(
                    m, self.driver_factory(m, self.zone), self.workers[m.bus], self.clock
                )
            else:
                log.error("meter %s names bus %r, which is not configured", m.id, m.bus)
        self.meters = new

    def by_bus(self) -> dict[str, list[MeterPoller]]:
        """Meters per bus, area total meters first."""
        out: dict[str, list[MeterPoller]] = {name: [] for name in self.workers}
        for mp in self.meters.values():
            out[mp.meter.bus].append(mp)
        for meters in out.values():
            meters.sort(key=lambda mp: mp.meter.role != "area_total")
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
        for mp in meters:
            if not mp.state.due(self.clock.now()):
                report.skipped += 1
                continue
            events: list[Event] = []
            result = await mp.read_items(mp.driver.plan(group), priority, events)
            if result.values:
                self.sink.append_readings(
                    self.readings(mp.meter.id, result.values, ReadingKind.INTERVAL)
                )
            if result.ok:
                await self._detect_events(mp, result, events, priority)
            if events:
                self.sink.append_events(events)
            if result.ok:
                report.read += 1
            else:
                report.failed += 1
            report.visits.append(result)

    async def _detect_events(
        self, mp: MeterPoller, result: MeterRead, events: list[Event], priority: Priority
    ) -> None:
        """Counters, records, relay, clock drift and energy checks (``gateway.events``)."""
        poll = mp.driver.poll_result(result.values, self.clock.now(), self.clock_synced())
        if poll is not None and poll.meter_time is not None:
            result.drift_s = (poll.meter_time.utc - poll.gateway_time).total_seconds()
        if poll is None or self.state is None:
            return
        key = f"events:{mp.meter.id}"
        state = MeterEventState.from_json(self.state.get_state(key))
        plan = records_to_read(state, poll.counts, poll.status_words)
        if plan:
            got = await mp.read_items(record_identifiers(plan), priority, events)
            records = mp.driver.records(plan, got.by_item)
            poll = replace(poll, records=records)
        found, state = self.detector.detect(mp.meter.id, state, poll)
        self.state.set_state(key, state.to_json())
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
        if not result.ok:
            raise MeterUnavailable(result.error)
        readings = self.readings(mp.meter.id, result.values, ReadingKind.ON_DEMAND)
        self.sink.append_readings(readings, command=command)
        return readings

    def health(self) -> dict[str, Any]:
        """Per-bus and per-meter counters for the status message."""
        failing = sorted(mp.meter.id for mp in self.meters.values() if mp.state.failing)
        return {
            "meters": len(self.meters),
            "failing": failing[:50],
            "failing_count": len(failing),
            "buses": {name: w.stats.as_dict() for name, w in self.workers.items()},
        }
