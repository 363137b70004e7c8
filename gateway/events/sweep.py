"""What an events sweep reads and remembers: counters, identifiers, poll results, state."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import Any, Protocol

from protocols.model import DEFAULT_METER_ZONE, EventType, MeterTime

STATE_VERSION = 1
RECORDS_KEPT = 10  # a DL/T 645-2007 meter keeps its last ten records of each kind
SEEN_KEPT = 32  # start times remembered per kind (more than the meter keeps)
DEFAULT_DRIFT_LIMIT_S = 60.0
SITE_VISIT_DRIFT_S = 300.0  # larger drift cannot be fixed by broadcast (see gateway.clock.sync)

SW1_ACTIVE_REVERSED = 1 << 4
SW3_RELAY_OPEN = 1 << 4
SW7_POWER_DOWN = 1 << 5
SW7_METER_COVER_OPEN = 1 << 9
SW7_TERMINAL_COVER_OPEN = 1 << 10

# First contact: records that started after (first sweep − this) are news, older ones history.
FIRST_CONTACT_WINDOW = timedelta(days=7)  # the gateway default [schedule] backfill_days


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
    # first-contact look-back per counter: [ordinal at first contact, next ordinal, epoch s]
    scan: dict[str, list[int]] = field(default_factory=dict)

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
            "scan": {k: list(v) for k, v in self.scan.items()},
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
            scan={k: [int(x) for x in v] for k, v in data.get("scan", {}).items()},
        )


def record_key(t: MeterTime | None) -> str | None:
    """A record's identity: its start time as the meter shows it (ISO, meter-local)."""
    return t.local.isoformat() if t is not None else None


def records_to_read(
    state: MeterEventState, counts: Mapping[Counter, int], status_words: Mapping[int, int]
) -> dict[Counter, list[int]]:
    """Record numbers the second step of a sweep must read (empty when nothing changed).

    At first contact only the newest record is read; if it is news (see the detector), the
    next sweep reads the rest the meter still keeps, so a meter whose records are all old history
    costs one read per counter.
    """
    del status_words  # kept in the signature: callers pass what the sweep read
    plan: dict[Counter, list[int]] = {}
    for counter, count in counts.items():
        wanted: set[int] = set()
        before = state.counts.get(counter.value)
        if before is None:
            if count > 0:
                wanted.add(1)  # first contact: the newest record decides
        elif count > before:
            wanted.update(range(1, min(count - before, RECORDS_KEPT) + 1))
        if before is not None and count >= before:
            for rec in state.open.get(counter.value, []):
                n = count - rec.ordinal + 1
                if 1 <= n <= RECORDS_KEPT:
                    wanted.add(n)
            scan = state.scan.get(counter.value)
            if scan is not None:
                top, nxt, _ = scan
                last = nxt if nxt == top else max(1, top - RECORDS_KEPT + 1)
                for ordinal in range(nxt, last - 1, -1):
                    n = count - ordinal + 1
                    if 1 <= n <= RECORDS_KEPT:
                        wanted.add(n)
        if wanted:
            plan[counter] = sorted(wanted)
    return plan


def record_identifiers(plan: Mapping[Counter, list[int]]) -> list[int]:
    """The DL/T 645 identifiers of a ``records_to_read`` plan, in reading order."""
    return [counter.record_di(n) for counter, numbers in plan.items() for n in numbers]


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
