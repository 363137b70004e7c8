"""Contract batches as a fake gateway would send them (tests and benchmarks)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from protocols.model import EventType, ReadingKind
from protocols.uplink import Batch, EventRecord, GapRecord, ReadingRecord, Topics, encode

T0 = datetime(2026, 11, 24, 0, 0, tzinfo=UTC)
QUANTITIES = (
    "energy.active.import.total",
    "energy.active.import.t1",
    "energy.active.import.t2",
    "energy.active.import.t3",
    "energy.active.import.t4",
)


def meter_ids(n: int, prefix: str = "2026") -> list[str]:
    return [f"{prefix}{i:08d}" for i in range(1, n + 1)]


def reading(meter: str, step: int, quantities: tuple[str, ...] = QUANTITIES) -> ReadingRecord:
    """An interval reading of ``meter`` at T0 + 15 min × step, growing by 0.25 kWh a step."""
    at = T0 + timedelta(minutes=15 * step)
    base = int(meter[-4:]) * 10
    values: dict[str, str | int] = {
        q: f"{base + step * 0.25 + i:.2f}" for i, q in enumerate(quantities)
    }
    return ReadingRecord(
        meter=meter, kind=ReadingKind.INTERVAL, gateway_time=at, meter_time=at, values=values
    )


def batch(
    gateway: str,
    epoch: str,
    seq: int,
    records: list[ReadingRecord | EventRecord | GapRecord],
    resend: bool = False,
) -> Batch:
    return Batch(
        gateway=gateway, epoch=epoch, seq=seq, sent=T0, records=tuple(records), resend=resend
    )


def reading_batches(
    gateway: str,
    epoch: str,
    meters: list[str],
    steps: int,
    per_batch: int,
    quantities: tuple[str, ...] = QUANTITIES,
) -> list[Batch]:
    """Every meter read every step, cut into batches of ``per_batch`` records."""
    records = [reading(m, s, quantities) for s in range(steps) for m in meters]
    return [
        batch(gateway, epoch, i, list(records[i : i + per_batch]))
        for i in range(0, len(records), per_batch)
    ]


def cover_event(meter: str, n: int) -> EventRecord:
    return EventRecord(
        meter=meter,
        type=EventType.METER_COVER_OPEN,
        start=T0 + timedelta(hours=n),
        end=T0 + timedelta(hours=n, minutes=5),
        detected=T0 + timedelta(hours=n, minutes=10),
        details={"record_no": n},
    )


def publishable(b: Batch) -> tuple[str, bytes]:
    return Topics(b.gateway).data, encode(b)
