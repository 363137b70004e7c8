"""The record services of a DL/T 698.45 simulated meter (GET Record): the daily freeze 5004 and
the 3011/301B/301C event records, with the selectors a meter supports.

Selector1 on the freeze time (2021), Selector2 ranges (oldest first, as a range is read),
Selector9/10 last records; another selector gets DAR 7.  Rows are most recent first.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import NULL, Data
from protocols.dlt698.descriptors import (
    OAD,
    DataType,
    DateTimeS,
    Selector1,
    Selector2,
    Selector9,
    Selector10,
)
from protocols.dlt698.objects import DAILY_COLUMNS, EVENT_COLUMNS
from protocols.dlt698.values import encode_value
from simulators.meter import FROZEN_DAYS, Cover, Meter

T = DataType
DAR_ABSENT = 6
COVERS = {0x301B: Cover.METER, 0x301C: Cover.TERMINAL}
Record = tuple[float, float | None]  # start, end of one event


def records(meter: Meter, request: A.GetRequestRecord, ts: float) -> A.ResultRecord:
    """The rows ``request`` selects of a daily freeze or an event record."""
    oad = request.oad
    if oad == OAD(0x5004, 2):
        columns = request.columns or DAILY_COLUMNS
        rows = _frozen_rows(meter, ts)
    elif oad.oi in (0x3011, *COVERS) and oad.attribute == 2:
        columns = request.columns or (*EVENT_COLUMNS, OAD(0x0010, 2, 0, 1))
        rows = _event_rows(meter, oad.oi, ts)
    else:
        return A.ResultRecord(oad, request.columns, None, DAR_ABSENT)
    chosen = _select(rows, request.rsd)
    if chosen is None:
        return A.ResultRecord(oad, columns, None, 7)  # selector this meter does not do
    table = tuple(tuple(row.get(c, NULL) for c in columns) for row in chosen)
    return A.ResultRecord(oad, columns, table)


def _frozen_rows(meter: Meter, ts: float) -> list[dict[Any, Data]]:
    rows = []
    for n in range(1, FROZEN_DAYS + 1):
        frozen = meter.frozen(n, ts)
        if frozen is None:
            break
        values: dict[str, Any] = {}
        for prefix, vec in (
            ("energy.active.import", frozen.import_kwh),
            ("energy.active.export", frozen.export_kwh),
        ):
            values[f"{prefix}.total"] = sum(vec)
            for i in range(4):
                values[f"{prefix}.t{i + 1}"] = vec[i]
        rows.append(
            {
                OAD(0x2021, 2): Data(T.DATE_TIME_S, DateTimeS.of(frozen.local_time)),
                OAD(0x0010, 2): encode_value(OAD(0x0010, 2), values),
                OAD(0x0020, 2): encode_value(OAD(0x0020, 2), values),
            }
        )
    return rows  # most recent first


def event_records(meter: Meter, oi: int, ts: float) -> list[Record]:
    """The power-down (3011) or cover-opening (301B/301C) records of ``meter``."""
    cover = COVERS.get(oi)
    if cover is None:
        return meter.power_downs(ts)
    return [(r.start, r.end) for r in meter.cover_records(cover, ts)]


def _event_rows(meter: Meter, oi: int, ts: float) -> list[dict[Any, Data]]:
    events = event_records(meter, oi, ts)
    rows = []
    for i, (start, end) in enumerate(events):
        imp, _ = meter.registered(start)
        before = {"energy.active.import.total": sum(imp)}
        before |= {f"energy.active.import.t{n + 1}": imp[n] for n in range(4)}
        rows.append(
            {
                OAD(0x2022, 2): Data(T.DOUBLE_LONG_UNSIGNED, len(events) - 1 - i),
                OAD(0x201E, 2): _stamp(meter, start),
                OAD(0x2020, 2): _stamp(meter, end),
                OAD(0x0010, 2, 0, 1): encode_value(OAD(0x0010, 2), before),
            }
        )
    return rows


def _stamp(meter: Meter, instant: float | None) -> Data:
    if instant is None:
        return NULL
    local = meter.meter_time(instant).replace(microsecond=0)
    return Data(T.DATE_TIME_S, DateTimeS.of(local))


def _when(data: Data) -> datetime | None:
    return data.value.to_datetime() if data.type is T.DATE_TIME_S else None


def _select(rows: list[dict[Any, Data]], rsd: Any) -> list[dict[Any, Data]] | None:
    """The rows (most recent first) an RSD selects; None for a selector not supported."""
    if rsd is None:
        return rows
    if isinstance(rsd, Selector9):
        return rows[rsd.last - 1 : rsd.last] if rsd.last >= 1 else []
    if isinstance(rsd, Selector10):
        return rows[: rsd.last]
    if isinstance(rsd, Selector1):
        return [r for r in rows if r.get(rsd.oad) == rsd.value]
    if isinstance(rsd, Selector2):
        start, end = _when(rsd.start), _when(rsd.end)
        if start is None or end is None:
            return None
        out = []
        for row in rows:
            cell = row.get(rsd.oad)
            stamp = _when(cell) if cell is not None else None
            if stamp is not None and start <= stamp < end:
                out.append(row)
        return out[::-1]  # oldest first, as a range is read
    return None
