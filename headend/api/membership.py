"""``/analytics/membership``: which meters' voltages say they belong to another area (户变关系).

``GET`` scores every meter of the chosen areas (default: all the user may see) against every
area's voltage changes over ``from``…``to`` (default: the last 7 days) and lists the flagged ones
with their evidence (``all=true``: every meter); ``POST …/confirm`` moves a meter to the area an
operator confirmed, as a new archive version effective ``at`` (audited with the evidence).
Reading needs viewer, confirming supervisor (it changes the archive).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from headend.analytics import AnalyticsInputError, membership, repo, series
from headend.analytics.model import boundary
from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings, analytics_settings
from headend.api.bounds import Day, Instant
from headend.api.deps import (
    ReadConn,
    Viewer,
    aware,
    get_engine,
    now,
    require_area,
    require_role,
    user_areas,
)
from headend.archive import service as archive
from headend.archive.models import MeterPatch
from headend.db import writing
from headend.db.errors import Conflict

Supervisor = Annotated[Any, Depends(require_role("supervisor"))]
MAX_DAYS = 31
RECOMPUTE_DAYS = 62  # a confirm recomputes at most this many days back (older: POST /recompute)
router = APIRouter(prefix="/membership", tags=["analytics"])


def _areas(conn: Any, user: Any, asked: list[str] | None, t0: datetime, t1: datetime) -> list[str]:
    known = repo.area_ids(conn, t0, t1)
    scope = user_areas(user)
    if asked:
        for a in asked:
            require_area(user, a)
        unknown = sorted(set(asked) - set(known))
        if unknown:
            raise AnalyticsInputError(f"unknown areas {unknown}")
        return sorted(set(asked))
    return [a for a in known if scope is None or a in scope]


def mapped_meters(conn: Any, chosen: list[str], t1: datetime) -> dict[str, str]:
    """Meter → area of the chosen areas' meters in force at ``t1``."""
    return {d.meter: a for a in chosen for d in repo.due_meters(conn, a, t1)}


def scores(
    conn: Any, config: Any, chosen: list[str], t0: datetime, t1: datetime
) -> list[membership.Membership]:
    """Every meter of ``chosen`` (as mapped at ``t1``) scored against every chosen area."""
    step = timedelta(minutes=config.interval_minutes)
    mapped = mapped_meters(conn, chosen, t1)
    volts = series.voltages(conn, sorted(mapped), t0, t1 + step, step)
    return membership.check(volts, mapped, step)


def _config(request: Request) -> AnalyticsSettings:
    cached: AnalyticsSettings | None = getattr(request.app.state, "analytics_settings", None)
    if cached is None:  # the same cache ``headend.api.analytics`` fills
        s = request.app.state.settings
        cached = request.app.state.analytics_settings = analytics_settings(s.extra, s.source)
    return cached


@router.get("")
def check_membership(
    conn: ReadConn,
    user: Viewer,
    config: Annotated[AnalyticsSettings, Depends(_config)],
    areas: Annotated[list[str] | None, Query()] = None,
    first: Annotated[Day | None, Query(alias="from")] = None,
    last: Annotated[Day | None, Query(alias="to")] = None,
    all_meters: Annotated[bool, Query(alias="all")] = False,
) -> dict[str, Any]:
    """Meters whose voltage changes follow another area better than their own, with evidence."""
    t0, t1 = window(first, last, config.tz)
    chosen = _areas(conn, user, areas, t0, t1)
    if len(chosen) < 2:
        raise AnalyticsInputError("a membership check compares at least 2 areas")
    found = scores(conn, config, chosen, t0, t1)
    rows = [m.as_dict() for m in found if all_meters or m.flagged]
    # meters the check could not score at all (no voltages, no adjacent intervals — hourly values
    # with interval_minutes = 15 —, a flat voltage): named, so silence is not read as "all fine"
    unscored = sorted(m.meter for m in found if not m.correlations)
    unscored += sorted(set(mapped_meters(conn, chosen, t1)) - {m.meter for m in found})
    return {
        "areas": chosen,
        "from": t0,
        "to": t1,
        "meters": len(found),
        "flagged": sum(m.flagged for m in found),
        "unscored": sorted(unscored),
        "interval_minutes": config.interval_minutes,
        "margin": membership.MARGIN,
        "results": rows,
    }


class ConfirmIn(BaseModel):
    """An operator's confirmation: ``meter`` belongs to ``area`` from ``at`` (default: 00:00
    today in the meters' zone).

    ``from``: the area the operator saw the meter in (default: ``evidence.area``, the check's
    row); when the archive has moved the meter since, the confirm is refused (409)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    meter: str = Field(min_length=1, max_length=32)
    area: str = Field(min_length=1, max_length=64)
    expected: str | None = Field(default=None, alias="from", min_length=1, max_length=64)
    at: Instant | None = None
    note: str = Field(default="", max_length=2000)
    evidence: dict[str, Any] | None = None

    def seen_in(self) -> str | None:
        """The area the confirming operator believes the meter is in."""
        if self.expected is not None:
            return self.expected
        seen = (self.evidence or {}).get("area")
        return seen if isinstance(seen, str) else None


def _move(engine: Any, body: ConfirmIn, user: Any, at: datetime) -> str:
    """The archive change and its audit in one transaction; the area the meter left."""
    with writing(engine) as conn:
        found = repo.meter_area(conn, body.meter)
        if found is None:
            raise AnalyticsInputError(f"meter {body.meter!r} does not exist")
        old, _point = found
        require_area(user, old)
        require_area(user, body.area)
        if old == body.area:
            raise AnalyticsInputError(f"meter {body.meter!r} is already in area {body.area!r}")
        seen = body.seen_in()
        if seen is not None and seen != old:  # a stale suggestion: someone moved it since
            raise Conflict(
                f"meter {body.meter!r} is in area {old!r} now, not {seen!r}: check it again"
            )
        archive.update_meter(conn, body.meter, MeterPatch(area=body.area), user.name, at)
        detail = {"from": old, "to": body.area, "at": at, "note": body.note,
                  "evidence": body.evidence}  # fmt: skip
        archive.audit(conn, user.name, "analytics.membership_confirm", f"meter:{body.meter}",
                      detail)  # fmt: skip
    return old


@router.post("/confirm")
async def confirm(
    body: ConfirmIn,
    request: Request,
    user: Supervisor,
    config: Annotated[AnalyticsSettings, Depends(_config)],
) -> dict[str, Any]:
    """Move the meter to ``area`` in the archive, effective ``at`` (a new version, audited),
    then recompute both areas' days from ``at`` to yesterday (at most ``RECOMPUTE_DAYS``): the
    stored line loss of those days was computed with the old mapping."""
    clock = now()
    # default: the start of today: the meter did not move today, the archive was wrong, and a move
    # at 00:00 splits no day (inside a day each area would need the register at the move)
    at = aware(body.at, "at") or boundary(clock.astimezone(config.tz).date(), config.tz)
    engine = get_engine(request)
    old = await asyncio.to_thread(_move, engine, body, user, at)
    last = clock.astimezone(config.tz).date() - timedelta(days=1)
    first = max(at.astimezone(config.tz).date(), last - timedelta(days=RECOMPUTE_DAYS - 1))
    done = None
    if first <= last:
        await asyncio.to_thread(recompute, engine, config, first, last, clock, [old, body.area])
        done = {"from": first, "to": last, "areas": sorted([old, body.area])}
    return {"meter": body.meter, "from": old, "area": body.area, "at": at, "recomputed": done}


def window(first: Any, last: Any, zone: Any) -> tuple[datetime, datetime]:
    """``[from 00:00, to+1 00:00)`` in the meters' zone (default: the last 7 days)."""
    today = now().astimezone(zone).date()
    last = last or today - timedelta(days=1)
    first = first or last - timedelta(days=6)
    if last < first:
        raise AnalyticsInputError("'to' must not be before 'from'")
    if (last - first).days >= MAX_DAYS:
        raise AnalyticsInputError(f"check at most {MAX_DAYS} days at a time")
    return boundary(first, zone), boundary(last + timedelta(days=1), zone)
