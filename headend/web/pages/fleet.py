"""The fleet overview and the area page (meters, line-loss chart, ranked suspects)."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from headend.archive import push
from headend.auth.roles import User
from headend.db import reading
from headend.ingest.alerts import forged_uplink, unsigned_uplink
from headend.web.pages.common import ops, page
from headend.web.render import render
from headend.web.views import analytics, fleet
from headend.web.views.commands import AREA_ACTIONS

router = APIRouter()
LOSS_DAYS = 30


def _analytics_today(request: Request) -> Any:
    """Today's date in the analytics zone (days of line loss are its dates)."""
    clock_now = ops(request).clock.now()
    try:
        from headend.api.analytics import settings_of_app

        zone = settings_of_app(request.app).tz
    except ImportError:
        zone = ops(request).guards.zone
    return clock_now.astimezone(zone).date()


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
def area_page(request: Request, area_id: str) -> Response:
    """An area: meters with last reading and relay state, line loss over time, suspects."""

    def build(user: User) -> Response:
        today = _analytics_today(request)
        first = today - timedelta(days=LOSS_DAYS)
        with reading(ops(request).engine) as conn:
            detail = fleet.area_detail(conn, user, area_id, ops(request).clock.now())
            series = analytics.loss_series(conn, area_id, first, today)
            suspects = analytics.suspects(conn, area_id)
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
