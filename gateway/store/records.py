"""What the store hands out: outbox rows, the outcome of an Ack, its counters (frozen values)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import TypeAdapter

from protocols.uplink import EventRecord, GapRecord, ReadingRecord
from protocols.uplink.messages import Record

_RECORD: TypeAdapter[Record] = TypeAdapter(Record)


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """One outbox row: its seq, record type (``rd``/``ev``/``gap``) and contract JSON body."""

    seq: int
    type: str
    body: bytes
    acked: bool = False

    def record(self) -> ReadingRecord | EventRecord | GapRecord:
        """The body parsed back into its contract record."""
        return _RECORD.validate_json(self.body)


@dataclass(frozen=True, slots=True)
class AckOutcome:
    """What an ``Ack`` did: rows newly marked, and whether it was for another epoch."""

    newly_acked: int
    stale_epoch: bool = False
    beyond_last: bool = False  # it covered seqs this store never assigned (clamped)


@dataclass(frozen=True, slots=True)
class StoreStats:
    """Counters for health reports and benchmarks."""

    epoch: str
    last_seq: int
    acked_upto: int
    first_unacked: int | None
    oldest_unacked_at: datetime | None
    records: int
    unacked: int
    bytes: int
    unacked_bytes: int
    budget_bytes: int
    dropped_records: int
    pruned_records: int
    file_bytes: int
