"""``/areas``: transformer areas, their meters and the latest readings of an area."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy import select

from headend.api.deps import (
    Admin,
    ReadConn,
    Viewer,
    WriteConn,
    aware,
    now,
    require_area,
    user_areas,
)
from headend.archive import effective, service
from headend.archive.models import AreaIn, AreaPatch
from headend.db import readings as readings_db
from headend.db.errors import InvalidRequest
from headend.db.tables import areas, meters
from protocols.quantities import is_known

router = APIRouter(prefix="/areas", tags=["archive"])


def _out(conn: ReadConn, row: Any, at: datetime | None = None) -> dict[str, Any]:
    total = conn.execute(
        select(meters.c.id).where(
            meters.c.area == row.id, meters.c.role == "area_total", effective.in_force(meters, at)
        )
    ).scalar()
    return {**effective.plain(row), "total_meter": total}


@router.get("")
def list_areas(conn: ReadConn, user: Viewer, at: datetime | None = None) -> list[dict[str, Any]]:
    """Areas in force at ``at`` (default: now), with their area total meter."""
    aware(at, "at")
    query = select(areas).where(effective.in_force(areas, at)).order_by(areas.c.id)
    scope = user_areas(user)
    if scope is not None:
        query = query.where(areas.c.id.in_(sorted(scope)))
    return [_out(conn, r, at) for r in conn.execute(query)]


@router.get("/{area_id}")
def get_area(area_id: str, conn: ReadConn, user: Viewer) -> dict[str, Any]:
    require_area(user, area_id)
    return _out(conn, effective.get(conn, areas, area_id))


@router.get("/{area_id}/history")
def area_history(area_id: str, conn: ReadConn, user: Viewer) -> list[dict[str, Any]]:
    require_area(user, area_id)
    return [effective.plain(r) for r in effective.history(conn, areas, area_id)]


def _iso_times(item: dict[str, Any]) -> dict[str, Any]:
    for key in readings_db.TIME_FIELDS:
        if (t := item[key]) is not None:
            item[key] = t.isoformat()
    return item


@router.get("/{area_id}/latest")
def latest_readings(
    area_id: str,
    conn: ReadConn,
    user: Viewer,
    quantity: str = "energy.active.import.total",
    at: datetime | None = None,
) -> JSONResponse:
    """The latest reading of ``quantity`` of every meter of the area (as of ``at``)."""
    require_area(user, area_id)
    if not is_known(quantity):
        raise InvalidRequest(f"quantity {quantity!r} is not a known quantity")
    aware(at, "at")
    effective.get(conn, areas, area_id, at)
    items, missing = readings_db.latest_of_area(conn, area_id, quantity, at, now=now())
    body = {
        "area": area_id,
        "quantity": quantity,
        "meters": len(items) + len(missing),
        "read": len(items),
        "items": [_iso_times(item) for item in items],
        "missing": missing,
    }
    return JSONResponse(body)  # already plain JSON: skip the generic encoder (500 items)


@router.post("", status_code=201)
def create_area(
    body: AreaIn, conn: WriteConn, user: Admin, valid_from: datetime | None = None
) -> dict[str, Any]:
    at = aware(valid_from, "valid_from") or now()
    service.create_area(conn, body, user.name, at)
    return _out(conn, effective.get(conn, areas, body.id, at), at)


@router.patch("/{area_id}")
def update_area(
    area_id: str,
    body: AreaPatch,
    conn: WriteConn,
    user: Admin,
    effective_at: datetime | None = Query(None, alias="at"),
) -> dict[str, Any]:
    at = aware(effective_at, "at") or now()
    service.update_area(conn, area_id, body, user.name, at)
    return _out(conn, effective.get(conn, areas, area_id, at), at)


@router.delete("/{area_id}", status_code=204)
def retire_area(
    area_id: str,
    conn: WriteConn,
    user: Admin,
    effective_at: datetime | None = Query(None, alias="at"),
) -> None:
    service.retire_area(conn, area_id, user.name, aware(effective_at, "at") or now())
