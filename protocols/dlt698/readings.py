"""Responses → the shared reading model (``protocols.model``) for the gateway.

- ``result_to_readings``: a GET result (normal or list item) of a table object → readings of
  the canonical quantities in it (the clock becomes an ISO string, like DL/T 645's).
- ``frozen_to_readings``: the rows of a 5004 daily-freeze record → ``DAILY_FROZEN`` readings
  stamped with each row's freeze time (2021); a row without a valid freeze time is skipped,
  since a frozen value that cannot be placed in time is useless for back-fill.
- ``records_to_events``: rows of the 3011/301B/301C event records → ``Event`` s with the meter's
  start/end times and the record number (so an event is reported exactly once).
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from protocols import quantities
from protocols.dlt698.apdu import ResultNormal, ResultRecord
from protocols.dlt698.descriptors import OAD, ROAD
from protocols.dlt698.objects import (
    EVENT_END,
    EVENT_OBJECTS,
    EVENT_RECORD_NO,
    EVENT_START,
    FREEZE_TIME,
)
from protocols.dlt698.values import decode_value
from protocols.model import (
    DEFAULT_METER_ZONE,
    Event,
    EventType,
    MeterTime,
    Reading,
    ReadingKind,
    Value,
)


def _plain(value: Any) -> Value | None:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal | int | str) and not isinstance(value, bool):
        return value
    return None


def _readings(
    meter: str,
    values: dict[str, Any],
    gateway_time: datetime,
    kind: ReadingKind,
    meter_time: datetime | None,
    freeze_time: datetime | None,
) -> list[Reading]:
    out = []
    for key, value in values.items():
        plain = _plain(value)
        if plain is not None and quantities.is_known(key):
            out.append(Reading(meter, key, plain, gateway_time, kind, meter_time, freeze_time))
    return out


def result_to_readings(
    meter: str,
    result: ResultNormal,
    gateway_time: datetime,
    zone: str = DEFAULT_METER_ZONE,
    kind: ReadingKind = ReadingKind.INTERVAL,
    meter_time: datetime | None = None,
) -> list[Reading]:
    """Readings of one GET result (none for a DAR or an object outside the table)."""
    if result.data is None:
        return []
    values = decode_value(result.oad, result.data)
    aware = MeterTime(meter_time, zone).aware if meter_time else None
    return _readings(meter, values, gateway_time, kind, aware, None)


def _column(result: ResultRecord, oad: OAD) -> int | None:
    for i, column in enumerate(result.columns):
        if column == oad:
            return i
    return None


def _row_values(result: ResultRecord, row: tuple[Any, ...]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for column, data in zip(result.columns, row, strict=True):
        if isinstance(column, ROAD):
            continue
        found = decode_value(column, data)
        if column.feature:  # event records: 1 before the event, 2 after, 3/4 around its end
            found = {f"{k}@{column.feature}": v for k, v in found.items()}
        values.update(found)
    return values


def frozen_to_readings(
    meter: str, result: ResultRecord, gateway_time: datetime, zone: str = DEFAULT_METER_ZONE
) -> list[Reading]:
    """``DAILY_FROZEN`` readings of every row of a daily-freeze record, keyed by freeze time."""
    if not result.rows or _column(result, FREEZE_TIME) is None:
        return []
    out: list[Reading] = []
    for row in result.rows:
        values = _row_values(result, row)
        frozen = values.pop("freeze.time", None)
        if not isinstance(frozen, datetime):
            continue
        aware = MeterTime(frozen, zone).aware
        out += _readings(meter, values, gateway_time, ReadingKind.DAILY_FROZEN, None, aware)
    return out


def records_to_events(
    meter: str,
    result: ResultRecord,
    detected: datetime | None = None,
    zone: str = DEFAULT_METER_ZONE,
) -> list[Event]:
    """Events of the rows of an event record (3011 power down, 301B/301C covers)."""
    name = EVENT_OBJECTS.get(result.oad.oi)
    if name is None or not result.rows:
        return []
    at = {oad: _column(result, oad) for oad in (EVENT_RECORD_NO, EVENT_START, EVENT_END)}
    out = []
    for row in result.rows:

        def stamp(oad: OAD, row: tuple[Any, ...] = row) -> datetime | None:
            i = at[oad]
            if i is None or row[i].value is None or not hasattr(row[i].value, "to_datetime"):
                return None
            local = row[i].value.to_datetime()
            return MeterTime(local, zone).aware if local else None

        number_at = at[EVENT_RECORD_NO]
        number = row[number_at].value if number_at is not None else ""
        details: dict[str, Any] = {"record_no": number, "oi": f"{result.oad.oi:04X}"}
        for key, value in _row_values(result, row).items():
            if key.startswith("energy."):
                details[key] = str(value)
        out.append(
            Event(meter, EventType(name), stamp(EVENT_START), stamp(EVENT_END), detected, details)
        )
    return out
