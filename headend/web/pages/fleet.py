"""The fleet overview and the area page (meters, line-loss chart, ranked suspects, collection
per quantity)."""

from __future__ import annotations

import json
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headend.api.bounds import FIRST_DAY, LAST_DAY
from headend.archive import push
from headend.auth.roles import User
from headend.db import InvalidRequest, reading
from headend.ingest.alerts import forged_uplink, unsigned_uplink
from headend.web.pages.common import ops, page
from headend.web.render import render
from headend.web.views import analytics, fleet
from headend.web.views.commands import AREA_ACTIONS

router = APIRouter()
LOSS_DAYS = 30


def _analytics_zone(request: Request) -> ZoneInfo:
    """The analytics zone (days of line loss and collection are its dates)."""
    try:
        from headend.api.analytics import settings_of_app

        zone: ZoneInfo = settings_of_app(request.app).tz
    except ImportError:
        zone = ops(request).guards.zone
    return zone


def _analytics_today(request: Request) -> Any:
    """Today's date in the analytics zone."""
    return ops(request).clock.now().astimezone(_analytics_zone(request)).date()


def _day(value: str | None, default: date) -> date:
    """``?day=`` as a date within the API's bounds (400 page otherwise)."""
    if not value:
        return default
    try:
        chosen = date.fromisoformat(value)
    except ValueError:
        raise InvalidRequest(f"day must be a date (YYYY-MM-DD), not {value[:40]!r}") from None
    if not FIRST_DAY <= chosen <= LAST_DAY:
        raise InvalidRequest(f"day must be within {FIRST_DAY} … {LAST_DAY}")
    return chosen


@router.get("/")
def overview(request: Request) -> Response:
    """Areas with gateway online status, the latest collection rate, line loss and alarms;
    gateways whose meter archive is out of sync (``headend.archive.push.alert``) or whose messages
    failed their signature check (``headend.ingest.alerts``) on top."""

    def build(user: User) -> Response:
        now = ops(request).clock.now()
        today = _analytics_today(request)
        with reading(ops(request).engine) as conn:
            rows = fleet.overview(conn, user, now)
            ids = [r["id"] for r in rows]
            losses = analytics.latest_losses(conn, ids, today)
            rates = analytics.latest_collection(conn, ids, today)
            passed = analytics.pass_rate(conn, ids, today - timedelta(days=1))
            served = sorted({r["gateway"] for r in rows if r.get("gateway")})
            archive_alerts = (
                push.alerts(conn, now, served)
                + forged_uplink(conn, now, served)
                + unsigned_uplink(conn, now, served)
            )
        archive_alerts.sort(key=lambda a: (a.severity != "critical", a.gateway))
        online = sum(1 for r in rows if r["online"])
        gateways = sum(1 for r in rows if r["online"] is not None)
        return render(
            request,
            "overview.html",
            user,
            rows=rows,
            losses=losses,
            rates=rates,
            online=online,
            gateways=gateways,
            alarms=sum(r["alarms"] for r in rows),
            archive_alerts=archive_alerts,
            today=today,
            passed=passed,
        )

    return page(request, build)


@router.get("/areas/{area_id}")
def area_page(request: Request, area_id: str, day: str | None = None) -> Response:
    """An area: meters with last reading and relay state, line loss over time, suspects, and
    collection per quantity on ``day`` (default yesterday) with the pairs not collected."""

    def build(user: User) -> Response:
        today = _analytics_today(request)
        first = today - timedelta(days=LOSS_DAYS)
        chosen = _day(day, today - timedelta(days=1))
        with reading(ops(request).engine) as conn:
            detail = fleet.area_detail(conn, user, area_id, ops(request).clock.now())
            series = analytics.loss_series(conn, area_id, first, today)
            suspects = analytics.suspects(conn, area_id)
            quantities = analytics.quantity_collection(
                conn, area_id, chosen, _analytics_zone(request)
            )
        chart = None
        if series is not None:
            chart = json.dumps(
                {
                    "days": [str(r["start"]) for r in series],
                    "rate": [_fraction(r.get("rate")) for r in series],
                    "target": [_fraction(r.get("target")) for r in series],
                }
            )
        return render(
            request,
            "area.html",
            user,
            **detail,
            series=series,
            chart=chart,
            suspects=suspects,
            quantities=quantities,
            coll_day=chosen,
            coll_prev=chosen - timedelta(days=1),
            coll_next=chosen + timedelta(days=1) if chosen < today else None,
            actions=AREA_ACTIONS,
            first=first,
            last=today,
        )

    return page(request, build)


def _fraction(value: Any) -> float | None:
    """A stored fraction as a percentage for the chart (None stays a gap)."""
    if value is None or value == "":
        return None
    return round(float(value) * 100, 4)
