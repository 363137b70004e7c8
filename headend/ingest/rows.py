"""Contract records → table rows (plain dicts for executemany; no per-reading objects)."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from protocols.model import EventType, ReadingKind
from protocols.uplink import EventRecord, GapRecord, ReadingRecord, record_to_event


def reading_rows(gateway: str, record: ReadingRecord) -> list[dict[str, Any]]:
    """One row per quantity; the value stays the exact wire text (validated by the codec)."""
    frozen = record.kind is ReadingKind.DAILY_FROZEN and record.freeze_time is not None
    time = record.freeze_time if frozen else record.gateway_time
    mt = record.meter_time
    common = {
        "meter": record.meter,
        "time": time,
        "kind": record.kind.value,
        "gateway": gateway,
        "gateway_time": record.gateway_time,
        "meter_time": mt,
        "meter_time_raw": mt.isoformat() if mt is not None else None,
        "freeze_time": record.freeze_time,
        "flags": ",".join(sorted(record.flags)),
        "command": record.command,
    }
    return [{**common, "quantity": name, "value": str(raw)} for name, raw in record.values.items()]


def event_row(gateway: str, record: EventRecord, received: datetime) -> dict[str, Any]:
    """The events row of an event record (its key makes re-reports idempotent)."""
    event = record_to_event(record)
    key = event.key if event.meter else f"{gateway}|{event.key}"
    return {
        "key": key[:300],
        "gateway": gateway,
        "meter": record.meter,
        "type": record.type.value,
        "time": record.start or record.detected or received,
        "start": record.start,
        "end": record.end,
        "detected": record.detected,
        "details": json.dumps(record.details, sort_keys=True, default=str),
        "received": received,
    }


def gap_rows(
    gateway: str, epoch: str, seq: int, record: GapRecord, received: datetime
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The ``gaps`` row and the ``gap_announced`` event of an announced gap."""
    gap = {
        "gateway": gateway,
        "epoch": epoch,
        "seq": seq,
        "first": record.first,
        "last": record.last,
        "reason": record.reason,
        "readings": record.readings,
        "events": record.events,
        "received": received,
    }
    details = {
        "epoch": epoch,
        "first": record.first,
        "last": record.last,
        "reason": record.reason,
        "readings": record.readings,
        "events": record.events,
    }
    event = {
        "key": f"{gateway}|gap|{epoch}|{record.first}-{record.last}",
        "gateway": gateway,
        "meter": "",
        "type": EventType.GAP_ANNOUNCED.value,
        "time": received,
        "start": None,
        "end": None,
        "detected": received,
        "details": json.dumps(details, sort_keys=True),
        "received": received,
    }
    return gap, event
