"""``/events``: meter and gateway events filtered by type, meter, area and time, paged."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query

from headend.api.deps import (
    Limit,
    ReadConn,
    Viewer,
    check_range,
    decode_cursor,
    encode_cursor,
    require_area,
    user_areas,
)
from headend.db import events as events_db
from headend.db.errors import InvalidRequest
from protocols.model import EventType

router = APIRouter(tags=["events"])


@router.get("/events")
def list_events(
    conn: ReadConn,
    user: Viewer,
    type: EventType | None = None,
    meter: str | None = None,
    area: str | None = None,
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    cursor: str | None = None,
    limit: Limit = 1000,
) -> dict[str, Any]:
    """Events in time order; area-scoped users see only meters of their areas."""
    check_range(start, end)
    areas: frozenset[str] | None = user_areas(user)
    if area is not None:
        require_area(user, area)
        areas = frozenset({area})
    after = None
    if cursor is not None:
        t, i = decode_cursor(cursor, 2)
        try:
            after = (datetime.fromisoformat(t), int(i))
        except ValueError:
            raise InvalidRequest("cursor: not a cursor this API returned") from None
    items, nxt = events_db.page(
        conn,
        type_=type.value if type else None,
        meter=meter,
        areas=areas,
        start=start,
        end=end,
        after=after,
        limit=limit,
    )
    return {"items": items, "next": encode_cursor(nxt[0].isoformat(), str(nxt[1])) if nxt else None}
