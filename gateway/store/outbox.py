"""Appending to the outbox inside the caller's transaction: seqs, budget, gap announcements.

``append`` assigns consecutive seqs after ``head.last_seq``, keeps the disk budget (pruning
acknowledged rows, else dropping the oldest unacknowledged ones and announcing the gap in the
stream) and updates ``head``, all on the connection of the caller's open transaction, so the
records, their seqs and the caller's other writes (meter state) commit together or not at all.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from gateway.store import budget as budget_mod
from gateway.store import local
from gateway.store.schema import ROW_OVERHEAD
from protocols.model import Event, EventType, ReadingKind
from protocols.uplink import EventRecord, GapRecord, ReadingRecord, events_to_records

AnyRecord = ReadingRecord | EventRecord | GapRecord
Columns = tuple[str, str, str, int, int, "int | None", "int | None"]


@dataclass(frozen=True, slots=True)
class Encoded:
    """A record as its row will be: columns and contract JSON body (small while it waits)."""

    columns: Columns
    body: bytes
    frozen: datetime | None = None  # the freeze time of a daily frozen reading record
    meter: str = ""


def encode(record: AnyRecord | Encoded, now: datetime) -> Encoded:
    """The row form of ``record`` (a group keeps these, not the models: a fraction of the RAM)."""
    if isinstance(record, Encoded):
        return record
    body = record.model_dump_json(by_alias=True, exclude_none=True).encode()
    frozen = None  # the daily freeze index: load records and settlements are not in it
    if isinstance(record, ReadingRecord) and record.kind is ReadingKind.DAILY_FROZEN:
        frozen = record.freeze_time
    meter = record.meter if isinstance(record, ReadingRecord | EventRecord) else ""
    return Encoded(_columns(record, now), body, frozen, meter)


@dataclass(frozen=True, slots=True)
class Appended:
    """What ``append`` did: the last seq now, and what the budget pass freed."""

    last: int
    freed: budget_mod.Freed


def append(
    conn: sqlite3.Connection,
    records: Sequence[AnyRecord | Encoded],
    now: datetime,
    budget_bytes: int,
    drop_fraction: float,
) -> Appended:
    """Insert ``records`` with consecutive seqs and keep the budget (no commit here)."""
    last, total, unacked = conn.execute(
        "SELECT last_seq, bytes, unacked_bytes FROM head"
    ).fetchone()
    if not records:
        return Appended(int(last), budget_mod.Freed())
    first_new = last + 1
    last, added = _insert(conn, records, last, now)
    total, unacked = total + added, unacked + added
    freed = _fit_budget(conn, total, first_new, budget_bytes, drop_fraction)
    total -= freed.pruned_bytes + freed.dropped_bytes
    unacked -= freed.dropped_bytes
    if freed.ranges:
        last, added = _insert(conn, _announce(freed, budget_bytes, now), last, now)
        total, unacked = total + added, unacked + added
    conn.execute(
        "UPDATE head SET last_seq = ?, bytes = ?, unacked_bytes = ?,"
        " dropped_records = dropped_records + ?, pruned_records = pruned_records + ?",
        (last, total, unacked, freed.dropped, freed.pruned),
    )
    if any(
        r.frozen
        if isinstance(r, Encoded)
        else isinstance(r, ReadingRecord) and r.kind is ReadingKind.DAILY_FROZEN and r.freeze_time
        for r in records
    ):
        local.forget_old_frozen(conn, now)
    return Appended(int(last), freed)


def _insert(
    conn: sqlite3.Connection, records: Sequence[AnyRecord | Encoded], last: int, now: datetime
) -> tuple[int, int]:
    rows, added = [], 0
    for record in records:
        last += 1
        row = encode(record, now)
        size = len(row.body) + ROW_OVERHEAD
        added += size
        rows.append((last, *row.columns, size, row.body))
        if row.frozen is not None:
            local.note_frozen(conn, row.meter, row.frozen, last)
    conn.executemany(
        "INSERT INTO outbox (seq, type, meter, kind, at, readings, gap_first, gap_last,"
        " size, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        rows,
    )
    return last, added


def _fit_budget(
    conn: sqlite3.Connection, total: int, first_new: int, budget_bytes: int, drop_fraction: float
) -> budget_mod.Freed:
    if total <= budget_bytes:
        return budget_mod.Freed()
    pruned, pruned_bytes = budget_mod.prune_acked(
        conn, total - int(budget_bytes * budget_mod.PRUNE_TO)
    )
    total -= pruned_bytes
    if total <= budget_bytes:
        return budget_mod.Freed(pruned=pruned, pruned_bytes=pruned_bytes)
    excess = total - budget_bytes + budget_mod.drop_excess(budget_bytes, drop_fraction)
    dropped = budget_mod.drop_unacked(conn, excess, first_new)
    dropped.pruned, dropped.pruned_bytes = pruned, pruned_bytes
    return dropped


def _columns(record: AnyRecord, now: datetime) -> Columns:
    if isinstance(record, ReadingRecord):
        at = record.gateway_time
        return (
            "rd",
            record.meter,
            record.kind.value,
            local.stamp(at),
            len(record.values),
            None,
            None,
        )
    if isinstance(record, EventRecord):
        detected = local.stamp(record.detected or record.start or now)
        return "ev", record.meter, record.type.value, detected, 0, None, None
    return "gap", "", "gap", local.stamp(now), record.readings, record.first, record.last


def _announce(freed: budget_mod.Freed, budget_bytes: int, now: datetime) -> list[AnyRecord]:
    reason = f"disk budget {budget_bytes} B exceeded while the head-end was not acknowledging"
    gaps: list[AnyRecord] = [
        GapRecord(first=r.first, last=r.last, reason=reason, readings=r.readings, events=r.events)
        for r in freed.ranges
    ]
    event = Event(
        meter="",
        type=EventType.GAP_ANNOUNCED,
        start=now,
        detected=now,
        details={
            "ranges": [[r.first, r.last] for r in freed.ranges],
            "records": freed.dropped,
            "readings": sum(r.readings for r in freed.ranges),
            "events": sum(r.events for r in freed.ranges),
            "budget_bytes": budget_bytes,
        },
    )
    return [*gaps, *events_to_records([event])]
