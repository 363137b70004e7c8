"""Event detection from meter counters and records, reported exactly once.

A meter keeps counters (meter-cover opens, terminal-cover opens, power-downs) and its last ten
records of each (record 1 = the most recent, with start and end times).  Status bits only say what
is true *now*: a cover that opened and closed between two polls leaves no bit set, but it moves the
counter and leaves a record.  So detection works from counters and records:

* A counter that grew by ``k`` since the last poll means records 1…k are new (at most ten can be
  read back; more are reported as ``missed`` on the oldest one).
* Every reported record is remembered by its start time (the meter's own), so re-reading records
  never reports one twice, whatever the counter did in between.
* **Open records** (a start but no end yet, e.g. a cover still open): reported at once as
  ``phase = "start"`` (a tamper alarm must not wait for the cover to close), remembered with their
  ordinal, re-read on following sweeps, and reported again with the same ``Event.key`` as
  ``phase = "end"`` when the end appears.  A record complete when first seen is reported once with
  ``phase = "complete"``.  The head-end upserts by ``Event.key`` (meter, type, start).
* The first sweep of a meter sets the baseline and reports nothing from history, except a record
  still open (status word 7 says so), which is read and reported as ``start``.
* A counter that went *down* (events cleared at the meter, or a replacement) resets the baseline.

Other checks, each reported once per excursion (state machines with a flag in the state):

* relay change: status word 3 bit 4 (0 closed, 1 open) differs from the last poll;
* clock drift: |meter − gateway| above ``drift_limit_s`` (level ``sync``) and again above the
  site-visit limit (level ``site_visit``); skipped while the gateway clock is unsynced;
* energy backwards: an import/export total lower than last time, unless a meter replacement is
  known (``identity`` changed, or ``replaced=True``); the new value becomes the baseline;
* reverse energy: export total grew, or status word 1 bit 4 (active power reversed).

State per meter is a JSON-serialisable dict (``MeterEventState.to_json``/``from_json``) kept with
the store's ``set_state``/``get_state``.  Which identifiers a sweep reads: ``SWEEP_IDENTIFIERS``
first, then ``records_to_read(...)`` — records only when a counter changed or a record is open.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time
from decimal import Decimal, InvalidOperation
from enum import StrEnum
from typing import Any, Protocol

from protocols.model import DEFAULT_METER_ZONE, Event, EventType, MeterTime
from protocols.quantities import ENERGY_EXPORT_TOTAL, ENERGY_TOTAL

STATE_VERSION = 1
RECORDS_KEPT = 10  # a DL/T 645-2007 meter keeps its last ten records of each kind
SEEN_KEPT = 32  # start times remembered per kind (more than the meter keeps)
DEFAULT_DRIFT_LIMIT_S = 60.0
SITE_VISIT_DRIFT_S = 300.0  # larger drift cannot be fixed by broadcast (see gateway.timesync)

SW1_ACTIVE_REVERSED = 1 << 4
SW3_RELAY_OPEN = 1 << 4
SW7_POWER_DOWN = 1 << 5
SW7_METER_COVER_OPEN = 1 << 9
SW7_TERMINAL_COVER_OPEN = 1 << 10


class Counter(StrEnum):
    """The event counters a DL/T 645-2007 meter keeps."""

    METER_COVER = "meter_cover"
    TERMINAL_COVER = "terminal_cover"
    POWER_DOWN = "power_down"

    @property
    def event_type(self) -> EventType:
        return _EVENT_TYPE[self]

    @property
    def count_di(self) -> int:
        return _COUNT_DI[self]

    def record_di(self, n: int) -> int:
        """Identifier of the n-th last record (1 = most recent … 10)."""
        if not 1 <= n <= RECORDS_KEPT:
            raise ValueError(f"record number {n} is not 1..{RECORDS_KEPT}")
        return _COUNT_DI[self] + n


_EVENT_TYPE = {
    Counter.METER_COVER: EventType.METER_COVER_OPEN,
    Counter.TERMINAL_COVER: EventType.TERMINAL_COVER_OPEN,
    Counter.POWER_DOWN: EventType.POWER_DOWN,
}
_COUNT_DI = {
    Counter.METER_COVER: 0x03300D00,
    Counter.TERMINAL_COVER: 0x03300E00,
    Counter.POWER_DOWN: 0x03110000,
}
_OPEN_BIT = {
    Counter.METER_COVER: SW7_METER_COVER_OPEN,
    Counter.TERMINAL_COVER: SW7_TERMINAL_COVER_OPEN,
    Counter.POWER_DOWN: SW7_POWER_DOWN,
}
DI_STATUS_WORD1 = 0x04000501
DI_STATUS_WORD3 = 0x04000503
DI_STATUS_WORD7 = 0x04000507
DI_DATE = 0x04000101
DI_TIME = 0x04000102
DI_IMPORT_TOTAL = 0x00010000
DI_EXPORT_TOTAL = 0x00020000

SWEEP_IDENTIFIERS: tuple[int, ...] = (
    *(c.count_di for c in Counter),
    DI_STATUS_WORD1,
    DI_STATUS_WORD3,
    DI_STATUS_WORD7,
    DI_DATE,
    DI_TIME,
)
"""What every events sweep reads first (energy totals come from the energy schedule)."""


class RecordLike(Protocol):
    """An event record as the codec decodes it (``protocols.dlt645`` ``EventRecord``)."""

    @property
    def start(self) -> MeterTime | None: ...

    @property
    def end(self) -> MeterTime | None: ...


@dataclass(frozen=True)
class PollResult:
    """What one sweep read from one meter (every field optional: missing means not read)."""

    gateway_time: datetime  # aware
    meter_time: MeterTime | None = None
    counts: Mapping[Counter, int] = field(default_factory=dict)
    records: Mapping[Counter, Mapping[int, RecordLike]] = field(default_factory=dict)
    status_words: Mapping[int, int] = field(default_factory=dict)  # number 1..7 → raw word
    energy: Mapping[str, Decimal] = field(default_factory=dict)  # quantity → register value
    identity: str | None = None  # the archive's identity of the physical meter (address …)
    replaced: bool = False  # the archive says this metering point got a new meter
    gateway_clock_synced: bool = True

    def __post_init__(self) -> None:
        if self.gateway_time.tzinfo is None:
            raise ValueError("PollResult.gateway_time must be timezone-aware")


@dataclass
class OpenRecord:
    """A record reported as started, waiting for its end."""

    start: str  # meter-local ISO time (the key)
    ordinal: int  # the counter value it was recorded under (record n = count − ordinal + 1)


@dataclass
class MeterEventState:
    """What the detector remembers of one meter between sweeps (JSON-serialisable)."""

    counts: dict[str, int] = field(default_factory=dict)
    seen: dict[str, list[str]] = field(default_factory=dict)
    open: dict[str, list[OpenRecord]] = field(default_factory=dict)
    relay: str | None = None
    energy: dict[str, str] = field(default_factory=dict)
    identity: str | None = None
    drift_level: str = "ok"  # ok | sync | site_visit
    reversed: bool = False

    def to_json(self) -> dict[str, Any]:
        """A plain dict for ``store.set_state``."""
        return {
            "v": STATE_VERSION,
            "counts": dict(self.counts),
            "seen": {k: list(v) for k, v in self.seen.items()},
            "open": {k: [[o.start, o.ordinal] for o in v] for k, v in self.open.items()},
            "relay": self.relay,
            "energy": dict(self.energy),
            "identity": self.identity,
            "drift_level": self.drift_level,
            "reversed": self.reversed,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> MeterEventState:
        """Rebuild from ``to_json`` output; ``None`` or an unknown version gives a fresh state."""
        if not data or data.get("v") != STATE_VERSION:
            return cls()
        return cls(
            counts={k: int(v) for k, v in data.get("counts", {}).items()},
            seen={k: [str(s) for s in v] for k, v in data.get("seen", {}).items()},
            open={
                k: [OpenRecord(str(s), int(o)) for s, o in v]
                for k, v in data.get("open", {}).items()
            },
            relay=data.get("relay"),
            energy={k: str(v) for k, v in data.get("energy", {}).items()},
            identity=data.get("identity"),
            drift_level=str(data.get("drift_level", "ok")),
            reversed=bool(data.get("reversed", False)),
        )


def _stamp(t: MeterTime | None) -> str | None:
    return t.local.isoformat() if t is not None else None


def records_to_read(
    state: MeterEventState, counts: Mapping[Counter, int], status_words: Mapping[int, int]
) -> dict[Counter, list[int]]:
    """Record numbers the second step of a sweep must read (empty when nothing changed)."""
    plan: dict[Counter, list[int]] = {}
    sw7 = status_words.get(7, 0)
    for counter, count in counts.items():
        wanted: set[int] = set()
        before = state.counts.get(counter.value)
        if before is None:
            if sw7 & _OPEN_BIT[counter] and count > 0:
                wanted.add(1)  # first sight with a record open: report it as started
        elif count > before:
            wanted.update(range(1, min(count - before, RECORDS_KEPT) + 1))
        if before is not None and count >= before:
            for rec in state.open.get(counter.value, []):
                n = count - rec.ordinal + 1
                if 1 <= n <= RECORDS_KEPT:
                    wanted.add(n)
        if wanted:
            plan[counter] = sorted(wanted)
    return plan


def record_identifiers(plan: Mapping[Counter, list[int]]) -> list[int]:
    """The DL/T 645 identifiers of a ``records_to_read`` plan, in reading order."""
    return [counter.record_di(n) for counter, numbers in plan.items() for n in numbers]


class EventDetector:
    """Turns a sweep's results and the remembered state into new events (see module docstring)."""

    def __init__(
        self,
        drift_limit_s: float = DEFAULT_DRIFT_LIMIT_S,
        site_visit_drift_s: float = SITE_VISIT_DRIFT_S,
        energy_quantities: tuple[str, ...] = (ENERGY_TOTAL, ENERGY_EXPORT_TOTAL),
    ) -> None:
        if not 0 < drift_limit_s <= site_visit_drift_s:
            raise ValueError("need 0 < drift_limit_s <= site_visit_drift_s")
        self.drift_limit_s = drift_limit_s
        self.site_visit_drift_s = site_visit_drift_s
        self.energy_quantities = energy_quantities

    def detect(
        self, meter: str, state: MeterEventState, poll: PollResult
    ) -> tuple[list[Event], MeterEventState]:
        """New events of ``meter`` and the state to persist (``state`` is not modified)."""
        new = MeterEventState.from_json(state.to_json())
        events: list[Event] = []
        replaced = poll.replaced or (
            poll.identity is not None and new.identity is not None and poll.identity != new.identity
        )
        if poll.identity is not None:
            new.identity = poll.identity
        if replaced:  # a new physical meter: its counters and registers start afresh
            new.counts.clear()
            new.seen.clear()
            new.open.clear()
            new.energy.clear()
        for counter in Counter:
            events += self._counter(meter, counter, new, poll)
        events += self._relay(meter, new, poll)
        events += self._drift(meter, new, poll)
        events += self._energy(meter, new, poll)
        return events, new

    # -- counters and records -------------------------------------------------------------
    def _counter(
        self, meter: str, counter: Counter, st: MeterEventState, poll: PollResult
    ) -> list[Event]:
        count = poll.counts.get(counter)
        if count is None:
            return []
        key = counter.value
        before = st.counts.get(key)
        st.counts[key] = count
        records = poll.records.get(counter, {})
        seen = st.seen.setdefault(key, [])
        pending = st.open.setdefault(key, [])
        out: list[Event] = []
        if before is not None and count < before:  # cleared at the meter: a new baseline
            pending.clear()
            return []
        new_numbers = range(1, min(count - before, RECORDS_KEPT) + 1) if before is not None else ()
        missed = count - before - RECORDS_KEPT if before is not None else 0
        if before is not None and any(n not in records for n in new_numbers):
            st.counts[key] = before  # records not read (bus trouble): read them next sweep
        for n in new_numbers:
            rec = records.get(n)
            start = _stamp(rec.start) if rec is not None else None
            if rec is None or start is None or start in seen:
                continue
            details: dict[str, Any] = {"count": count - n + 1}
            if missed > 0 and n == RECORDS_KEPT:
                details["missed"] = missed
            out.append(self._record_event(meter, counter, rec, poll, details))
            seen.append(start)
            if rec.end is None:
                pending.append(OpenRecord(start, count - n + 1))
        if before is None:  # first sight: only a record still open is news
            rec = records.get(1)
            start = _stamp(rec.start) if rec is not None else None
            if rec is not None and start is not None and rec.end is None and start not in seen:
                out.append(self._record_event(meter, counter, rec, poll, {"count": count}))
                seen.append(start)
                pending.append(OpenRecord(start, count))
        for open_rec in list(pending):
            n = count - open_rec.ordinal + 1
            rec = records.get(n)
            if n > RECORDS_KEPT:  # scrolled out of the meter's memory before it closed
                pending.remove(open_rec)
                continue
            if rec is None or _stamp(rec.start) != open_rec.start or rec.end is None:
                continue
            details = {"count": open_rec.ordinal, "phase": "end"}
            out.append(self._record_event(meter, counter, rec, poll, details))
            pending.remove(open_rec)
        del seen[:-SEEN_KEPT]
        return out

    @staticmethod
    def _record_event(
        meter: str, counter: Counter, rec: RecordLike, poll: PollResult, details: dict[str, Any]
    ) -> Event:
        start = rec.start
        end = rec.end
        phase = "complete" if end is not None else "start"
        return Event(
            meter=meter,
            type=counter.event_type,
            start=start.aware if start else None,
            end=end.aware if end else None,
            detected=poll.gateway_time,
            details={"phase": phase, **details},  # an explicit phase ("end") wins
        )

    # -- relay, clock, energy ---------------------------------------------------------------
    def _relay(self, meter: str, st: MeterEventState, poll: PollResult) -> list[Event]:
        sw3 = poll.status_words.get(3)
        if sw3 is None:
            return []
        relay = "open" if sw3 & SW3_RELAY_OPEN else "closed"
        before, st.relay = st.relay, relay
        if before is None or before == relay:
            return []
        return [
            Event(
                meter=meter,
                type=EventType.RELAY_CHANGE,
                start=self._observed(poll),
                detected=poll.gateway_time,
                details={"from": before, "to": relay, "observed": True},
            )
        ]

    @staticmethod
    def _observed(poll: PollResult) -> datetime:
        """When a change was observed: the meter's clock if read, else the gateway's."""
        return poll.meter_time.aware if poll.meter_time is not None else poll.gateway_time

    def _drift(self, meter: str, st: MeterEventState, poll: PollResult) -> list[Event]:
        if poll.meter_time is None or not poll.gateway_clock_synced:
            return []
        drift = (poll.meter_time.utc - poll.gateway_time).total_seconds()
        size = abs(drift)
        level = (
            "site_visit"
            if size >= self.site_visit_drift_s
            else "sync"
            if size > self.drift_limit_s
            else "ok"
        )
        order = ("ok", "sync", "site_visit")
        before, st.drift_level = st.drift_level, level
        if order.index(level) <= order.index(before):
            return []
        limit = self.site_visit_drift_s if level == "site_visit" else self.drift_limit_s
        return [
            Event(
                meter=meter,
                type=EventType.CLOCK_DRIFT,
                start=poll.meter_time.aware,
                detected=poll.gateway_time,
                details={"drift_s": round(drift, 1), "limit_s": limit, "level": level},
            )
        ]

    def _energy(self, meter: str, st: MeterEventState, poll: PollResult) -> list[Event]:
        out: list[Event] = []
        export_grew = False
        for quantity in self.energy_quantities:
            value = poll.energy.get(quantity)
            if value is None:
                continue
            before = _decimal(st.energy.get(quantity))
            st.energy[quantity] = str(value)
            if before is None:
                continue
            if value < before:
                out.append(
                    Event(
                        meter=meter,
                        type=EventType.READING_ANOMALY,
                        start=self._observed(poll),
                        detected=poll.gateway_time,
                        details={
                            "anomaly": "energy_backwards",
                            "quantity": quantity,
                            "previous": str(before),
                            "value": str(value),
                        },
                    )
                )
            elif quantity == ENERGY_EXPORT_TOTAL and value > before:
                export_grew = True
        sw1 = poll.status_words.get(1)
        bit = sw1 is not None and bool(sw1 & SW1_ACTIVE_REVERSED)
        if sw1 is None and ENERGY_EXPORT_TOTAL not in poll.energy:
            return out  # nothing read that could say either way
        now_reversed = export_grew or bit
        before_reversed, st.reversed = st.reversed, now_reversed
        if now_reversed and not before_reversed:
            out.append(
                Event(
                    meter=meter,
                    type=EventType.READING_ANOMALY,
                    start=self._observed(poll),
                    detected=poll.gateway_time,
                    details={
                        "anomaly": "reverse_energy",
                        "export_grew": export_grew,
                        "status_bit": bit,
                    },
                )
            )
        return out


COUNT_QUANTITY = {c: f"events.{c.value}.count" for c in Counter}
RECORD_KEY = {c: f"events.{c.value}.record" for c in Counter}


def poll_from_values(
    gateway_time: datetime,
    values: Mapping[str, Any],
    records: Mapping[Counter, Mapping[int, RecordLike]] | None = None,
    *,
    zone: str = DEFAULT_METER_ZONE,
    identity: str | None = None,
    replaced: bool = False,
    gateway_clock_synced: bool = True,
) -> PollResult:
    """A ``PollResult`` from decoded values keyed by canonical quantity (the driver's output).

    ``values`` may hold ``events.*.count`` counters, ``status.wordN`` (``StatusWord`` or int),
    ``meter.date`` + ``meter.time`` and energy registers; anything else is ignored.
    """
    counts = {c: int(values[q]) for c, q in COUNT_QUANTITY.items() if values.get(q) is not None}
    status: dict[int, int] = {}
    for n in range(1, 8):
        word = values.get(f"status.word{n}")
        raw = getattr(word, "raw", word)
        if isinstance(raw, int):
            status[n] = raw
    day, tod = values.get("meter.date"), values.get("meter.time")
    meter_time = (
        MeterTime(datetime.combine(day, tod), zone)
        if isinstance(day, date) and isinstance(tod, time)
        else None
    )
    energy = {
        q: Decimal(str(v))
        for q, v in values.items()
        if q.startswith("energy.active.") and isinstance(v, Decimal | int)
    }
    return PollResult(
        gateway_time,
        meter_time,
        counts,
        dict(records or {}),
        status,
        energy,
        identity,
        replaced,
        gateway_clock_synced,
    )


def _decimal(text: str | None) -> Decimal | None:
    if text is None:
        return None
    try:
        return Decimal(text)
    except InvalidOperation:
        return None
