"""Replies → the shared reading model (``protocols.model``) for the gateway.

Only canonical quantities become readings.  Current values are readings of the given kind;
daily frozen values are ``DAILY_FROZEN`` readings stamped with the freeze time; previous
settlement periods and event records are not readings (records become ``Event`` s).
Status word 3 also yields ``relay.state`` (bit 4: 0 closed, 1 open [V]) and
``keep_power.state`` (bit 12, grid extension).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from protocols import quantities
from protocols.dlt645.control import Version
from protocols.dlt645.data_ids import find_data_id
from protocols.dlt645.layouts import EventRecord, StatusWord
from protocols.dlt645.messages import ReadReply
from protocols.model import DEFAULT_METER_ZONE, Event, EventType, MeterTime, Reading, ReadingKind

_RECORD_EVENTS = {
    0x03110000: EventType.POWER_DOWN,
    0x03300D00: EventType.METER_COVER_OPEN,
    0x03300E00: EventType.TERMINAL_COVER_OPEN,
}


def _aware(stamp: MeterTime | datetime | None, zone: str) -> datetime | None:
    if stamp is None:
        return None
    if isinstance(stamp, MeterTime):
        return stamp.aware
    return stamp if stamp.tzinfo else MeterTime(stamp, zone).aware


def _plain(key: str, value: Any) -> list[tuple[str, Decimal | int | str]]:
    if isinstance(value, StatusWord):
        out: list[tuple[str, Decimal | int | str]] = [(key, value.raw)]
        if value.number == 3:
            out.append(("relay.state", "open" if value.raw & 0x10 else "closed"))
            out.append(("keep_power.state", "on" if value.raw & 0x1000 else "off"))
        return out
    if isinstance(value, MeterTime):
        return [(key, value.local.isoformat())]
    if isinstance(value, Decimal | int | str) and not isinstance(value, bool):
        return [(key, value)]
    return []


def reply_to_readings(
    reply: ReadReply,
    gateway_time: datetime,
    zone: str = DEFAULT_METER_ZONE,
    kind: ReadingKind = ReadingKind.INTERVAL,
    meter_time: MeterTime | datetime | None = None,
    freeze_time: MeterTime | datetime | None = None,
) -> list[Reading]:
    """Readings of the canonical quantities in ``reply`` (see the module docstring)."""
    row = find_data_id(reply.di, reply.version or Version.V2007)
    if row is None or row.period in ("settlement", "record"):
        return []
    if row.period == "daily_frozen":
        if freeze_time is None:
            return []  # a frozen value without its freeze time cannot be placed in time
        kind = ReadingKind.DAILY_FROZEN
    out = []
    for key, value in reply.values.items():
        for quantity, plain in _plain(key, value):
            if quantities.is_known(quantity):
                out.append(
                    Reading(
                        meter=reply.address,
                        quantity=quantity,
                        value=plain,
                        gateway_time=gateway_time,
                        kind=kind,
                        meter_time=_aware(meter_time, zone),
                        freeze_time=_aware(freeze_time, zone),
                    )
                )
    return out


def reply_to_events(reply: ReadReply, detected: datetime | None = None) -> list[Event]:
    """Events of the event records in ``reply`` (cover open, power down)."""
    row = find_data_id(reply.di, reply.version or Version.V2007)
    if row is None or row.period != "record":
        return []
    event_type = _RECORD_EVENTS.get(row.di & ~0xFF)
    if event_type is None:
        return []
    out = []
    for record in reply.values.values():
        if isinstance(record, EventRecord):
            details: dict[str, Any] = {"record_no": row.index, "di": row.hex}
            details.update({k: str(v) for k, v in record.values.items()})
            out.append(
                Event(
                    meter=reply.address,
                    type=event_type,
                    start=record.start.aware if record.start else None,
                    end=record.end.aware if record.end else None,
                    detected=detected,
                    details=details,
                )
            )
    return out
