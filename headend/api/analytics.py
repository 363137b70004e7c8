"""``/analytics``: line loss, trends, targets, suspects, inspections, collection, recompute.

Every read needs the viewer role and is filtered to the user's areas; marking a suspect inspected
and ordering a recompute need operator; setting a target supervisor.  Each list is CSV with
``?format=csv``.  The router's lifespan starts the daily job (``[analytics] job = true``) on the
app's clock, only when the app runs its background workers (``serve``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import date, timedelta
from decimal import Decimal
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, Query, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator
from sqlalchemy import select

from headend.analytics import AnalyticsInputError, repo, store
from headend.analytics import job as daily_job
from headend.analytics.lineloss import month_bounds
from headend.analytics.model import boundary
from headend.analytics.passrate import pass_rates
from headend.analytics.quantities import collection_facts, quantity_collection
from headend.analytics.service import recompute
from headend.analytics.settings import AnalyticsSettings, analytics_settings
from headend.analytics.trend import trend
from headend.api import membership as membership_api
from headend.api import suspects as suspects_api
from headend.api.bounds import Day
from headend.api.csvrows import csv_response
from headend.api.deps import (
    ReadConn,
    Viewer,
    WriteConn,
    get_engine,
    now,
    require_area,
    require_role,
    user_areas,
)
from headend.db.analytics_tables import analytics_targets
from headend.db.dialect import upsert
from headend.db.tables import areas

Operator = Annotated[Any, Depends(require_role("operator"))]
Supervisor = Annotated[Any, Depends(require_role("supervisor"))]
Format = Annotated[Literal["json", "csv"], Query(alias="format")]
MAX_RANGE = 400


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """After the app's own start-up (migrations, workers): the daily job on ``app.state.clock``
    when ``[analytics] job`` is on and the app runs its background workers (``serve``)."""
    owned = getattr(app.state, "analytics_job", None) is None
    job = daily_job.start(app, settings_of_app(app))
    try:
        yield
    finally:
        if job is not None and owned:
            await job.stop()
            app.state.analytics_job = None


router = APIRouter(prefix="/analytics", tags=["analytics"], lifespan=lifespan)
router.include_router(membership_api.router)
router.include_router(suspects_api.router)


def settings_of_app(app: Any) -> AnalyticsSettings:
    cached = getattr(app.state, "analytics_settings", None)
    if cached is None:
        s = app.state.settings
        cached = analytics_settings(s.extra, s.source)
        app.state.analytics_settings = cached
    return cached


def get_config(request: Request) -> AnalyticsSettings:
    return settings_of_app(request.app)


Config = Annotated[AnalyticsSettings, Depends(get_config)]


def _range(first: date | None, last: date | None, config: AnalyticsSettings) -> tuple[date, date]:
    today = now().astimezone(config.tz).date()
    last = last or today - timedelta(days=1)
    first = first or last - timedelta(days=30)
    if last < first:
        raise AnalyticsInputError("'to' must not be before 'from'")
    if (last - first).days > MAX_RANGE:
        raise AnalyticsInputError(f"ask for at most {MAX_RANGE} days")
    return first, last


def _scoped(user: Any, area: str | None) -> list[str] | None:
    scope = user_areas(user)
    if area is not None:
        require_area(user, area)
        return [area]
    return None if scope is None else sorted(scope)


def _out(rows: list[dict[str, Any]], fmt: str, name: str) -> Any:
    return csv_response(rows, name) if fmt == "csv" else rows


# --- line loss ---------------------------------------------------------------------------------


@router.get("/lineloss")
def line_loss(
    conn: ReadConn,
    user: Viewer,
    config: Config,
    area: str | None = None,
    period: Literal["day", "month"] = "day",
    first: Annotated[Day | None, Query(alias="from")] = None,
    last: Annotated[Day | None, Query(alias="to")] = None,
    fmt: Format = "json",
    detail: bool = False,
) -> Any:
    """Stored line-loss results (supply, sales, loss, rate, coverage, method, flags)."""
    first, last = _range(first, last, config)
    rows = store.loss_rows(conn, _scoped(user, area), period, first, last)
    names = _names(conn, {r["area"] for r in rows})
    for r in rows:
        r["name"] = names.get(r["area"], "")  # 台区名称: what the office calls the area
        if not detail or fmt == "csv":
            r.pop("detail")
    return _out(rows, fmt, f"lineloss-{period}")


def _area_spans(conn: Any, scope: list[str] | None) -> list[tuple[str, Any, Any]]:
    """(id, valid_from, valid_to) of every area version the user may see."""
    q = select(areas.c.id, areas.c.valid_from, areas.c.valid_to)
    if scope is not None:
        q = q.where(areas.c.id.in_(scope))
    return [(r.id, r.valid_from, r.valid_to) for r in conn.execute(q)]


def _names(conn: Any, ids: set[str]) -> dict[str, str]:
    """Each area's name (its latest archive version's)."""
    rows = conn.execute(
        select(areas.c.id, areas.c.name)
        .where(areas.c.id.in_(sorted(ids)))
        .order_by(areas.c.valid_from)
    )
    return {r.id: r.name for r in rows}


@router.get("/areas/{area}/trend")
def loss_trend(
    area: str,
    conn: ReadConn,
    user: Viewer,
    config: Config,
    first: Annotated[Day | None, Query(alias="from")] = None,
    last: Annotated[Day | None, Query(alias="to")] = None,
    window: int = Query(7, ge=1, le=90),
) -> dict[str, Any]:
    """Daily loss rates of an area, their moving average and slope."""
    require_area(user, area)
    first, last = _range(first, last, config)
    rows = store.loss_rows(conn, [area], "day", first, last)
    series = [
        (date.fromisoformat(r["start"]), Decimal(r["rate"]) if r["rate"] else None) for r in rows
    ]
    t = trend(series, window)
    return {
        "area": area,
        "window": window,
        "slope_per_day": t.slope_per_day,
        "days": [
            {"day": d, "rate": r, "moving_average": m}
            for d, r, m in zip(t.days, t.rates, t.moving_average, strict=True)
        ],
    }


class TargetIn(BaseModel):
    """An area's acceptable loss band as fractions: ``target`` its top (0.06 = 6 %), ``low`` its
    bottom (default: the configured ``default_band_low``)."""

    model_config = ConfigDict(extra="forbid")
    target: Decimal = Field(ge=0, le=1)
    low: Decimal | None = Field(default=None, ge=0, le=1)

    @model_validator(mode="after")
    def _ordered(self) -> TargetIn:
        if self.low is not None and self.low > self.target:
            raise ValueError("the band's low must not be above its target")
        return self


@router.get("/areas/{area}/target")
def get_target(area: str, conn: ReadConn, user: Viewer, config: Config) -> dict[str, Any]:
    """The area's loss band (``low``…``target``) and whether it is the configured default."""
    require_area(user, area)
    row = conn.execute(select(analytics_targets).where(analytics_targets.c.area == area)).first()
    if row is None:
        return {"area": area, "target": config.default_target, "low": config.default_band_low,
                "default": True}  # fmt: skip
    out = {**dict(row._mapping), "default": False}
    out["low"] = out["low"] if out["low"] is not None else str(config.default_band_low)
    return out


@router.put("/areas/{area}/target")
def set_target(
    area: str, body: TargetIn, conn: WriteConn, user: Supervisor, config: Config
) -> dict[str, Any]:
    """Set the area's loss band (applies to results computed from now on)."""
    require_area(user, area)
    if body.low is None and config.default_band_low > body.target:  # an inverted band fails all
        raise AnalyticsInputError(
            f"target {body.target} is below the default band low {config.default_band_low}: "
            "give 'low' too"
        )
    values = {
        "area": area,
        "target": str(body.target),
        "low": None if body.low is None else str(body.low),
        "updated_by": user.name,
        "updated_at": now(),
    }
    conn.execute(
        upsert(conn, analytics_targets, ["area"], ["target", "low", "updated_by", "updated_at"]),
        values,
    )
    return {**values, "default": False}


@router.get("/passrate")
def pass_rate(
    conn: ReadConn,
    user: Viewer,
    config: Config,
    period: Literal["day", "month"] = "day",
    first: Annotated[Day | None, Query(alias="from")] = None,
    last: Annotated[Day | None, Query(alias="to")] = None,
    fmt: Format = "json",
) -> Any:
    """台区线损合格率: per day or month, the share of the user's areas whose loss is in band."""
    first, last = _range(first, last, config)
    if period == "month":
        first = first.replace(day=1)
    scope = _scoped(user, None)
    rows = store.loss_rows(conn, scope, period, first, last)
    existed = _area_spans(conn, scope)

    def expected(kind: str, start: str) -> list[str]:
        day = date.fromisoformat(start)
        end = month_bounds(day)[1] if kind == "month" else day + timedelta(days=1)
        t0, t1 = boundary(day, config.tz), boundary(end, config.tz)
        return [a for a, f, t in existed if f < t1 and (t is None or t > t0)]

    found = pass_rates(rows, expected)
    names = _names(conn, {a for p in found for a in (*p.failing, *p.unassessed)})
    out = []
    for p in found:
        row = p.as_dict()
        for key in ("failing", "unassessed"):  # the names next to the ids, in the same order
            row[f"{key}_names"] = [names.get(a, "") for a in row[key]]
        out.append(row)
    return _out(out, fmt, f"passrate-{period}")


# --- collection and quality --------------------------------------------------------------------


def _gateways_of(conn: Any, scope: list[str]) -> list[str]:
    rows = conn.execute(
        select(areas.c.gateway).where(areas.c.id.in_(scope), areas.c.gateway.is_not(None))
    )
    return sorted({r.gateway for r in rows})


@router.get("/collection")
def collection(
    conn: ReadConn,
    user: Viewer,
    config: Config,
    scope: Literal["area", "gateway"] = "area",
    key: str | None = None,
    first: Annotated[Day | None, Query(alias="from")] = None,
    last: Annotated[Day | None, Query(alias="to")] = None,
    fmt: Format = "json",
) -> Any:
    """Daily collection success (采集成功率: collected within the configured cut-off, not
    back-filled), the rate after back-fill and gateway online rates."""
    first, last = _range(first, last, config)
    allowed = user_areas(user)
    keys: list[str] | None = None if key is None else [key]
    if allowed is not None:
        visible = sorted(allowed) if scope == "area" else _gateways_of(conn, sorted(allowed))
        keys = [k for k in (keys or visible) if k in visible]
        if key is not None and not keys:
            require_area(user, None)
    return _out(store.rate_rows(conn, scope, keys, first, last), fmt, f"collection-{scope}")


@router.get("/areas/{area}/collection/quantities")
def collection_quantities(
    area: str,
    conn: ReadConn,
    user: Viewer,
    config: Config,
    day: Day | None = None,
    fmt: Format = "json",
) -> Any:
    """Collection success per quantity and per meter on ``day`` (local; default yesterday): a
    quantity is collected only when a reading of it arrived; the ones the gateway reported the
    meter does not give are ``unavailable`` with the reason (``headend.analytics.quantities``).
    CSV: the per-quantity rows."""
    require_area(user, area)
    day = day or now().astimezone(config.tz).date() - timedelta(days=1)
    t0, t1 = boundary(day, config.tz), boundary(day + timedelta(days=1), config.tz)
    if area not in repo.area_ids(conn, t0, t1):
        raise AnalyticsInputError(f"area {area!r} does not exist on {day}")
    states, rates = quantity_collection(collection_facts(conn, area, t0, t1))
    rows = [{**asdict(r), "success_rate": r.success_rate} for r in rates]
    if fmt == "csv":
        return csv_response(rows, f"collection-quantities-{area}-{day}")
    return {"area": area, "day": day, "quantities": rows, "meters": [asdict(s) for s in states]}


@router.get("/areas/{area}/quality")
def quality(
    area: str, conn: ReadConn, user: Viewer, day: Day | None = None, fmt: Format = "json"
) -> Any:
    """Reading-quality flags (backwards, jump, stopped) and meters that keep failing."""
    require_area(user, area)
    as_of, rows = store.quality_rows(conn, area, day)
    if fmt == "csv":
        return csv_response(rows, f"quality-{area}")
    return {"area": area, "day": as_of, "findings": rows}


# --- recompute ---------------------------------------------------------------------------------


class RecomputeIn(BaseModel):
    """Days to recompute (inclusive) and optionally which areas."""

    model_config = ConfigDict(extra="forbid")
    first: Day = Field(alias="from")
    last: Day = Field(alias="to")
    areas: list[str] | None = None


@router.post("/recompute")
async def order_recompute(
    body: RecomputeIn, request: Request, user: Operator, config: Config
) -> dict[str, Any]:
    """Recompute now (idempotent); a scoped user recomputes only their areas."""
    import asyncio

    allowed = user_areas(user)
    chosen = body.areas
    if allowed is not None:
        for a in chosen or []:
            require_area(user, a)
        chosen = chosen or sorted(allowed)
    engine = get_engine(request)
    summary = await asyncio.to_thread(
        recompute, engine, config, body.first, body.last, now(), chosen
    )
    return {
        "areas": summary.areas,
        "days": summary.days,
        "losses": summary.losses,
        "suspects": summary.suspects,
        "rates": summary.rates,
    }
