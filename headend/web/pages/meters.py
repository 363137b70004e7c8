"""The meter page (consumption chart, events, balance and ledger, reminders, commands), its live
reading fragment, the on-demand read button, and the guard-rail confirmation before a command."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import Response

from headend.auth.roles import Role, User
from headend.commands import service, views
from headend.db import reading, writing
from headend.web.errors import BadForm
from headend.web.pages.common import action, hx, ops, page, see_other
from headend.web.render import render
from headend.web.views import commands as command_views
from headend.web.views import fleet, prepay
from protocols.uplink import CommandAction

router = APIRouter()
Optional = Annotated[str | None, Form()]


def _chart(points: list[dict[str, object]]) -> str:
    times = [int(p["time"].timestamp()) for p in points if isinstance(p["time"], datetime)]
    values = [float(str(p["value"])) for p in points if isinstance(p["time"], datetime)]
    return json.dumps({"t": times, "v": values})


@router.get("/meters/{meter_id}")
def meter_page(request: Request, meter_id: str) -> Response:
    """Everything about one meter an operator needs in the field."""

    def build(user: User) -> Response:
        now = ops(request).clock.now()
        with reading(ops(request).engine) as conn:
            meter = fleet.meter_detail(conn, user, meter_id)
            live = fleet.latest(conn, meter_id, meter["multiplier"])
            points = fleet.consumption(conn, meter_id, now)
            events = fleet.meter_events(conn, meter_id)
            commands = fleet.meter_commands(conn, user, meter_id)
            account = prepay.account_of_point(conn, meter["point"], now)
        return render(
            request,
            "meter.html",
            user,
            meter=meter,
            live=live,
            chart=_chart(points),
            points=len(points),
            events=events,
            commands=commands,
            account=account,
            actions=command_views.METER_ACTIONS,
        )

    return page(request, build)


@router.get("/meters/{meter_id}/live")
def meter_live(request: Request, meter_id: str) -> Response:
    """The latest readings and relay state (polled every few seconds by the meter page)."""

    def build(user: User) -> Response:
        with reading(ops(request).engine) as conn:
            meter = fleet.meter_detail(conn, user, meter_id)
            live = fleet.latest(conn, meter_id, meter["multiplier"])
        return render(request, "_meter_live.html", user, meter=meter, live=live)

    return page(request, build)


@router.post("/meters/{meter_id}/read")
def read_now(request: Request, meter_id: str, csrf_token: Optional = None) -> Response:
    """Ask the meter's gateway for an on-demand read (no guard rails apply to reads)."""

    def build(user: User) -> Response:
        o = ops(request)
        req = service.CommandRequest(
            action=CommandAction.READ, meters=[meter_id], note="on-demand read (web console)"
        )
        with writing(o.engine) as conn:
            fleet.meter_detail(conn, user, meter_id)
            outcome = command_views.create(conn, o, user, req)
        if isinstance(outcome, service.Refusal):
            return render(
                request, "_error_fragment.html", user, status_code=409, message=outcome.message
            )
        if not hx(request):
            return see_other(f"/commands/{outcome}")
        with reading(o.engine) as conn:
            view = views.get(conn, user, outcome)
        return render(
            request, "_command_status.html", user, c=view, progress=command_views.progress(view)
        )

    return action(request, csrf_token, build)


def _request(
    action_name: str, meter: str | None, area: str | None, note: str | None
) -> service.CommandRequest:
    try:
        chosen = CommandAction(action_name)
    except ValueError:
        raise BadForm(f"action: {action_name!r} is not a command action") from None
    if chosen not in command_views.METER_ACTIONS:
        raise BadForm(f"action: {action_name} is not offered here; use the API")
    if not meter and not area:
        raise BadForm("name a meter or an area")
    return service.CommandRequest(
        action=chosen,
        meters=[meter] if meter else [],
        areas=[area] if area else [],
        note=(note or "").strip()[:1000] or None,
    )


@router.get("/commands/new")
def confirm(
    request: Request,
    action: str,
    meter: str | None = None,
    area: str | None = None,
    note: str | None = None,
) -> Response:
    """The confirmation: the targets, every guard rail's state, and the decision, before sending."""

    def build(user: User) -> Response:
        req = _request(action, meter, area, note)
        with reading(ops(request).engine) as conn:
            preview = command_views.preview(conn, ops(request), user, req)
        template = "_confirm.html" if hx(request) else "confirm.html"
        return render(
            request,
            template,
            user,
            preview=preview,
            meter=meter or "",
            area=area or "",
            note=req.note or "",
            back=f"/meters/{meter}" if meter else f"/areas/{area}",
        )

    return page(request, build)


@router.post("/commands")
def create(
    request: Request,
    action_name: Annotated[str, Form(alias="action")] = "",
    meter: Optional = None,
    area: Optional = None,
    note: Optional = None,
    csrf_token: Optional = None,
) -> Response:
    """Create the confirmed command and show it (the service checks everything again)."""

    def build(user: User) -> Response:
        user.require(Role.OPERATOR)
        req = _request(action_name, meter or None, area or None, note)
        with writing(ops(request).engine) as conn:
            outcome = command_views.create(conn, ops(request), user, req)
        if isinstance(outcome, service.Refusal):
            return render(
                request,
                "error.html",
                user,
                status_code=403 if outcome.kind == "forbidden" else 409,
                code=outcome.rule,
                message=outcome.message,
            )
        return see_other(f"/commands/{outcome}")

    return action(request, csrf_token, build)
