"""Event queries: filter by type, meter, area and time; keyset pages in (time, id) order."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, or_, select

from headend.db.tables import events, meters


def event_dict(row: Any) -> dict[str, Any]:
    return {
        "id": row.id,
        "type": row.type,
        "meter": row.meter,
        "gateway": row.gateway,
        "time": row.time,
        "start": row.start,
        "end": row.end,
        "detected": row.detected,
        "details": json.loads(row.details),
        "received": row.received,
    }


def page(
    conn: Connection,
    *,
    type_: str | None,
    meter: str | None,
    areas: Iterable[str] | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, int] | None,
    limit: int,
) -> tuple[list[dict[str, Any]], tuple[datetime, int] | None]:
    """Events matching the filters; ``areas`` restricts to meters ever in those areas."""
    query = select(events)
    if type_ is not None:
        query = query.where(events.c.type == type_)
    if meter is not None:
        query = query.where(events.c.meter == meter)
    if areas is not None:
        in_areas = select(meters.c.id).where(meters.c.area.in_(sorted(areas)))
        query = query.where(events.c.meter.in_(in_areas))
    if start is not None:
        query = query.where(events.c.time >= start)
    if end is not None:
        query = query.where(events.c.time < end)
    if after is not None:
        t, i = after
        query = query.where(or_(events.c.time > t, and_(events.c.time == t, events.c.id > i)))
    rows = conn.execute(query.order_by(events.c.time, events.c.id).limit(limit + 1)).all()
    items = [event_dict(r) for r in rows[:limit]]
    nxt = (rows[limit - 1].time, rows[limit - 1].id) if len(rows) > limit else None
    return items, nxt
