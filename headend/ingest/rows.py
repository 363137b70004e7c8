"""Contract records → table rows: ``readings`` as tuples straight from a sweep's columns.

``sweep_rows`` walks a sweep's column arrays and emits one ``READING_COLUMNS`` tuple per
(record, quantity): no per-record or per-reading objects.  Times go through the sink's ``stamp``
once per record (SQLite stores text); the value stays the exact wire text (checked by the codec).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from headend.db.bulk import Row
from protocols.model import EventType, ReadingKind
from protocols.quantities import QUANTITIES, Kind
from protocols.uplink import EventRecord, GapRecord, ReadingRecord, record_to_event
from protocols.uplink.columns import SweepColumns

Stamp = Callable[[datetime], Any]


def sweep_rows(
    gateway: str, sweep: SweepColumns, keep: Iterable[int], stamp: Stamp, out: list[Row]
) -> int:
    """Append the rows of the sweep's records ``keep`` (indices) to ``out``; how many."""
    kind, command = sweep.kind.value, sweep.command
    flags = ",".join(sorted(sweep.flags))
    columns = [
        (name, [str(v) for v in column] if QUANTITIES[name].kind is Kind.COUNTER else column)
        for name, column in zip(sweep.quantities, sweep.values, strict=True)
    ]
    meters, gateway_times, meter_times = sweep.meters, sweep.gateway_times, sweep.meter_times
    raws: dict[datetime, tuple[Any, str]] = {}  # one zone per sweep: equal instants, equal text
    before = len(out)
    append = out.append
    for i in keep:
        meter, t, mt = meters[i], stamp(gateway_times[i]), meter_times[i]
        if mt is None:
            meter_time = raw = None
        else:
            if (known := raws.get(mt)) is None:
                known = raws[mt] = (stamp(mt), mt.isoformat())
            meter_time, raw = known
        for name, column in columns:
            append(
                (meter, name, t, kind, column[i], gateway, t, meter_time, raw, None, flags, command)
            )
    return len(out) - before


AT_OWN_TIME = (ReadingKind.DAILY_FROZEN, ReadingKind.LOAD_PROFILE, ReadingKind.SETTLEMENT)
LOAD_PROFILE_FLAG = "load_profile"


def record_rows(gateway: str, record: ReadingRecord, stamp: Stamp, out: list[Row]) -> int:
    """Append the rows of one typed reading record to ``out``; how many.

    Daily frozen, load profile and settlement values are stored at their own time (``ft``);
    load records become ``interval`` readings flagged ``load_profile`` (the meter's own
    15-minute registers, used wherever interval readings are)."""
    gt, mt, ft = record.gateway_time, record.meter_time, record.freeze_time
    t = stamp(gt)
    time = stamp(ft) if record.kind in AT_OWN_TIME and ft is not None else t
    kind, flags = record.kind.value, set(record.flags)
    if record.kind is ReadingKind.LOAD_PROFILE:
        kind = ReadingKind.INTERVAL.value
        flags.add(LOAD_PROFILE_FLAG)
    common = (
        kind,
        gateway,
        t,
        stamp(mt) if mt is not None else None,
        mt.isoformat() if mt is not None else None,
        stamp(ft) if ft is not None else None,
        ",".join(sorted(flags)),
        record.command,
    )
    for name, raw in record.values.items():
        out.append((record.meter, name, time, common[0], str(raw), *common[1:]))
    return len(record.values)


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
