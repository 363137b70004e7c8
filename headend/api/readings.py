"""``/meters/{id}/readings``: a meter's readings, paged, as JSON or CSV, multipliers applied."""

from __future__ import annotations

import csv
import io
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Response
from fastapi.responses import JSONResponse
from sqlalchemy import select

from headend import csvcells
from headend.api.deps import (
    Limit,
    ReadConn,
    Viewer,
    check_range,
    decode_cursor,
    encode_cursor,
    require_area,
)
from headend.db import readings as readings_db
from headend.db.errors import InvalidRequest, NotFound
from headend.db.tables import meters, readings
from protocols.model import ReadingKind
from protocols.quantities import is_known

router = APIRouter(tags=["readings"])
CSV_COLUMNS = (
    "time",
    "quantity",
    "kind",
    "value",
    "register",
    "multiplier",
    "gateway_time",
    "meter_time",
    "meter_time_raw",
    "freeze_time",
    "flags",
    "gateway",
)


def _meter_area(conn: ReadConn, meter_id: str) -> str:
    """The meter's latest area; "" for a meter known only from readings (unregistered)."""
    area = conn.execute(
        select(meters.c.area).where(meters.c.id == meter_id).order_by(meters.c.valid_from.desc())
    ).scalar()
    if area is None:
        known = conn.execute(select(readings.c.meter).where(readings.c.meter == meter_id)).first()
        if known is None:
            raise NotFound(f"meter {meter_id!r} does not exist")
        return ""
    return str(area)


@router.get("/meters/{meter_id}/readings")
def meter_readings(
    meter_id: str,
    conn: ReadConn,
    user: Viewer,
    quantity: str | None = None,
    kind: ReadingKind | None = None,
    start: datetime | None = Query(None, alias="from"),
    end: datetime | None = Query(None, alias="to"),
    cursor: str | None = None,
    limit: Limit = 1000,
    format: str = Query("json", pattern="^(json|csv)$"),
) -> Response:
    """Readings of one meter in time order; ``next`` is the cursor of the following page."""
    check_range(start, end)
    if quantity is not None and not is_known(quantity):
        raise InvalidRequest(f"quantity {quantity!r} is not a known quantity")
    area = _meter_area(conn, meter_id)
    if area:
        require_area(user, area)
    elif getattr(user, "areas", None) is not None:
        raise NotFound(f"meter {meter_id!r} does not exist")  # unregistered: fleet users only
    after = None
    if cursor is not None:
        t, q, k = decode_cursor(cursor, 3)
        try:
            after = (datetime.fromisoformat(t), q, k)
        except ValueError:
            raise InvalidRequest("cursor: not a cursor this API returned") from None
    items, nxt = readings_db.page(
        conn,
        meter_id,
        quantity=quantity,
        kind=kind.value if kind else None,
        start=start,
        end=end,
        after=after,
        limit=limit,
    )
    next_cursor = encode_cursor(nxt[0].isoformat(), nxt[1], nxt[2]) if nxt else None
    if format == "csv":
        return _csv(items, next_cursor)
    return JSONResponse({"meter": meter_id, "items": _jsonable(items), "next": next_cursor})


def _jsonable(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in item.items()}
        for item in items
    ]


def _csv(items: list[dict[str, Any]], next_cursor: str | None) -> Response:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for item in _jsonable(items):
        row = dict(item, flags=",".join(item["flags"]))
        writer.writerow(csvcells.row("" if row[c] is None else row[c] for c in CSV_COLUMNS))
    headers = {"X-Next-Cursor": next_cursor} if next_cursor else {}
    return Response(out.getvalue(), media_type="text/csv", headers=headers)
