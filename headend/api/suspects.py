"""``/api/v1/analytics``: the ranked theft/tamper suspects of an area and on-site inspections of
a suspect meter (included by ``headend.api.analytics``)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import insert, select

from headend.analytics import AnalyticsInputError, repo, store
from headend.analytics.suspects import OUTCOMES
from headend.api.bounds import Day, Instant
from headend.api.csvrows import csv_response
from headend.api.deps import ReadConn, Viewer, WriteConn, aware, now, require_area, require_role
from headend.db.analytics_tables import analytics_inspections

Operator = Annotated[Any, Depends(require_role("operator"))]
Format = Annotated[Literal["json", "csv"], Query(alias="format")]

router = APIRouter()


@router.get("/areas/{area}/suspects")
def suspects(
    area: str, conn: ReadConn, user: Viewer, day: Day | None = None, fmt: Format = "json"
) -> Any:
    """The area's ranked suspects with evidence and each meter's latest inspection."""
    require_area(user, area)
    as_of, rows = store.suspect_rows(conn, area, day)
    checked = repo.latest_inspections(conn, [r["meter"] for r in rows])
    for r in rows:
        i = checked.get(r["meter"])
        r["inspection"] = None if i is None else {"at": i.at, "outcome": i.outcome, "note": i.note}
    if fmt == "csv":
        flat = [
            {
                **{k: r[k] for k in ("area", "day", "rank", "meter", "point", "score")},
                "evidence": "; ".join(e["summary"] for e in r["evidence"]),
                "inspection": (r["inspection"] or {}).get("outcome", ""),
            }
            for r in rows
        ]
        return csv_response(flat, f"suspects-{area}")
    return {"area": area, "day": as_of, "suspects": rows}


class InspectionIn(BaseModel):
    """An on-site inspection of a suspect meter."""

    model_config = ConfigDict(extra="forbid")
    outcome: Literal[OUTCOMES]  # type: ignore[valid-type]
    note: str = Field(default="", max_length=2000)
    at: Instant | None = None


@router.post("/meters/{meter}/inspections", status_code=201)
def inspect(meter: str, body: InspectionIn, conn: WriteConn, user: Operator) -> dict[str, Any]:
    """Record an inspection outcome; it stays with the meter."""
    found = repo.meter_area(conn, meter)
    if found is None:
        raise AnalyticsInputError(f"meter {meter!r} does not exist")
    area, point = found
    require_area(user, area)
    at = aware(body.at, "at") or now()
    values = {
        "meter": meter,
        "point": point,
        "area": area,
        "at": at,
        "outcome": body.outcome,
        "note": body.note,
        "inspected_by": user.name,
        "recorded_at": now(),
    }
    row_id = conn.execute(
        insert(analytics_inspections).values(**values).returning(analytics_inspections.c.id)
    ).scalar_one()
    return {"id": row_id, **values}


@router.get("/meters/{meter}/inspections")
def inspections(meter: str, conn: ReadConn, user: Viewer) -> list[dict[str, Any]]:
    found = repo.meter_area(conn, meter)
    if found is None:
        raise AnalyticsInputError(f"meter {meter!r} does not exist")
    require_area(user, found[0])
    t = analytics_inspections
    rows = conn.execute(select(t).where(t.c.meter == meter).order_by(t.c.at, t.c.id))
    return [dict(r._mapping) for r in rows]
