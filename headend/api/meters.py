"""``/meters``: the archive's meters (effective-dated), replacement, CSV import and export."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import PlainTextResponse
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
from headend.archive import csvio, effective, service
from headend.archive.models import MeterIn, MeterPatch, ReplacementIn
from headend.db.errors import InvalidRequest
from headend.db.tables import meter_replacements, meters

router = APIRouter(prefix="/meters", tags=["archive"])


def meter_out(row: Any) -> dict[str, Any]:
    return effective.plain(row)


@router.get("")
def list_meters(
    conn: ReadConn,
    user: Viewer,
    area: str | None = None,
    at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Meters in force at ``at`` (default: now), optionally of one area."""
    aware(at, "at")
    query = select(meters).where(effective.in_force(meters, at)).order_by(meters.c.id)
    if area is not None:
        require_area(user, area)
        query = query.where(meters.c.area == area)
    scope = user_areas(user)
    if scope is not None:
        query = query.where(meters.c.area.in_(sorted(scope)))
    return [meter_out(r) for r in conn.execute(query)]


@router.get("/export.csv", response_class=PlainTextResponse)
def export_csv(
    conn: ReadConn, user: Admin, area: str | None = None, at: datetime | None = None
) -> PlainTextResponse:
    """The archive's meters as CSV (the import's format)."""
    text = csvio.export_meters(conn, aware(at, "at"), area)
    return PlainTextResponse(text, media_type="text/csv")


@router.post("/import")
async def import_csv(
    request: Request, user: Admin, valid_from: datetime | None = None
) -> dict[str, Any]:
    """Create and version meters from a CSV body (all-or-nothing)."""
    from headend.db.engine import writing

    raw = await request.body()  # bounded by headend.api.limits (max_import_bytes)
    limit = request.app.state.settings.api.max_import_bytes
    if len(raw) > limit:
        raise InvalidRequest(f"CSV larger than {limit} bytes: split the file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise InvalidRequest("CSV must be UTF-8") from None
    at = aware(valid_from, "valid_from") or now()
    with writing(request.app.state.engine) as conn:
        report = csvio.import_meters(conn, text, user.name, at)
    return {"created": report.created, "updated": report.updated, "unchanged": report.unchanged}


def _visible(conn: ReadConn, user: Any, meter_id: str, at: datetime | None = None) -> Any:
    row = effective.get(conn, meters, meter_id, at)
    require_area(user, row.area)
    return row


@router.get("/{meter_id}")
def get_meter(
    meter_id: str, conn: ReadConn, user: Viewer, at: datetime | None = None
) -> dict[str, Any]:
    return meter_out(_visible(conn, user, meter_id, aware(at, "at")))


@router.get("/{meter_id}/history")
def meter_history(meter_id: str, conn: ReadConn, user: Viewer) -> dict[str, Any]:
    """Every version of the meter and the replacements at its metering point."""
    versions = effective.history(conn, meters, meter_id)
    require_area(user, versions[-1].area)
    points = sorted({v.point for v in versions})
    repl = conn.execute(
        select(meter_replacements)
        .where(meter_replacements.c.point.in_(points))
        .order_by(meter_replacements.c.at)
    ).all()
    return {
        "versions": [meter_out(v) for v in versions],
        "replacements": [
            {
                **{k: v for k, v in r._mapping.items() if k not in ("old_final", "new_start")},
                "old_final": json.loads(r.old_final),
                "new_start": json.loads(r.new_start),
            }
            for r in repl
        ],
    }


@router.post("", status_code=201)
def create_meter(
    body: MeterIn, conn: WriteConn, user: Admin, valid_from: datetime | None = None
) -> dict[str, Any]:
    at = aware(valid_from, "valid_from") or now()
    service.create_meter(conn, body, user.name, at)
    return meter_out(effective.get(conn, meters, body.id, at))


@router.patch("/{meter_id}")
def update_meter(
    meter_id: str,
    body: MeterPatch,
    conn: WriteConn,
    user: Admin,
    effective_at: datetime | None = Query(None, alias="at"),
) -> dict[str, Any]:
    """Start a new version of the meter from ``at`` (default: now)."""
    at = aware(effective_at, "at") or now()
    service.update_meter(conn, meter_id, body, user.name, at)
    return meter_out(effective.get(conn, meters, meter_id, at))


@router.delete("/{meter_id}", status_code=204)
def retire_meter(
    meter_id: str,
    conn: WriteConn,
    user: Admin,
    effective_at: datetime | None = Query(None, alias="at"),
) -> None:
    service.retire_meter(conn, meter_id, user.name, aware(effective_at, "at") or now())


@router.post("/{meter_id}/replace", status_code=201)
def replace_meter(
    meter_id: str, body: ReplacementIn, conn: WriteConn, user: Admin
) -> dict[str, Any]:
    """Replace the meter: record its final and the new meter's start readings."""
    replacement = service.replace_meter(conn, meter_id, body, user.name, now())
    return {
        "replacement": replacement,
        "new": meter_out(effective.get(conn, meters, body.new.id, body.at)),
    }
