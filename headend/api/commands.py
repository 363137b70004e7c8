"""``/api/v1/commands``: create (including on-demand reads), list, get, approve, cancel; and the
guard-rail switches (pause all disconnects, extreme-weather days)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from headend.auth.deps import current_user, ops_of, require_role
from headend.auth.http import http_errors, refused
from headend.auth.roles import Role, User
from headend.commands import service, views
from headend.commands.states import State
from headend.db import reading, writing
from headend.guards import store as guard_store
from protocols.uplink import CommandAction

router = APIRouter(prefix="/commands", tags=["commands"])
Viewer = Annotated[User, Depends(current_user)]
Operator = Annotated[User, Depends(require_role(Role.OPERATOR))]
Supervisor = Annotated[User, Depends(require_role(Role.SUPERVISOR))]
MeterId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9:_.-]+$")]
AreaId = Annotated[str, Field(min_length=1, max_length=64)]


class CommandIn(BaseModel):
    """A command request: the action, for listed meters and/or every meter of listed areas."""

    model_config = ConfigDict(extra="forbid")

    action: CommandAction
    meters: list[MeterId] = Field(default_factory=list, max_length=100_000)
    areas: list[AreaId] = Field(default_factory=list, max_length=1000)
    params: dict[str, Any] = Field(default_factory=dict)
    valid_for: int | None = Field(default=None, ge=30, description="seconds")
    note: str | None = Field(default=None, max_length=1000)


class CancelIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000)


class PauseIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    paused: bool
    reason: str | None = Field(default=None, max_length=1000)


class WeatherIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=1000)


# --- guard rails (declared before /{command_id} so the paths do not collide) -------------------


@router.get("/guard-rails")
def guard_rails(request: Request, user: Viewer) -> dict[str, Any]:
    """The guard-rail settings, the pause switch, declared days and the last hour's counts."""
    ops = ops_of(request)
    now = ops.clock.now()
    today = now.astimezone(ops.guards.zone).date()
    with reading(ops.engine) as conn:
        state = guard_store.load_state(conn, today)
        counts = guard_store.recent_counts(conn, now)
        days = guard_store.extreme_weather_list(conn, today)
    by_area = {a: n for a, n in counts.by_area.items() if user.sees(a or None)}
    return {
        "settings": ops.guards.model_dump(mode="json"),
        "paused": state.paused,
        "pause_reason": state.pause_reason,
        "extreme_weather_days": days,
        "disconnects_last_hour": {
            "fleet": counts.fleet if user.areas is None else None,
            "by_area": by_area,
        },
    }


@router.put("/guard-rails/pause")
def set_pause(request: Request, body: PauseIn, user: Supervisor) -> dict[str, Any]:
    """Switch the fleet-wide "pause all disconnects" on or off (fleet-wide supervisors)."""
    ops = ops_of(request)
    with http_errors():
        user.require_fleet()
    with writing(ops.engine) as conn:
        guard_store.set_pause(conn, body.paused, body.reason, actor=user.name, now=ops.clock.now())
    return {"paused": body.paused, "reason": body.reason}


@router.put("/guard-rails/extreme-weather/{day}")
def declare_weather(
    request: Request, day: date, body: WeatherIn, user: Supervisor
) -> dict[str, Any]:
    """Declare a local date an extreme-weather day: no disconnects on it."""
    ops = ops_of(request)
    with http_errors():
        user.require_fleet()
    with writing(ops.engine) as conn:
        guard_store.declare_extreme_weather(
            conn, day, body.reason, actor=user.name, now=ops.clock.now()
        )
    return {"day": day, "reason": body.reason}


@router.delete("/guard-rails/extreme-weather/{day}", status_code=204)
def withdraw_weather(request: Request, day: date, user: Supervisor) -> None:
    """Withdraw an extreme-weather declaration."""
    ops = ops_of(request)
    with http_errors():
        user.require_fleet()
        with writing(ops.engine) as conn:
            if not guard_store.withdraw_extreme_weather(
                conn, day, actor=user.name, now=ops.clock.now()
            ):
                from headend.db.errors import NotFound

                raise NotFound(f"{day} is not a declared extreme-weather day")


# --- commands ----------------------------------------------------------------------------------


@router.post("", status_code=201)
def create_command(request: Request, body: CommandIn, user: Operator) -> dict[str, Any]:
    """Create a command; it waits for a supervisor's approval if a guard rail says so."""
    ops = ops_of(request)
    req = service.CommandRequest(
        action=body.action,
        meters=body.meters,
        areas=body.areas,
        params=body.params,
        valid_for=body.valid_for,
        note=body.note,
    )
    with http_errors(), writing(ops.engine) as conn:
        outcome = service.create(
            conn, user, req, now=ops.clock.now(), guards=ops.guards, settings=ops.commands
        )
    if isinstance(outcome, service.Refusal):
        raise refused(outcome.rule, outcome.message, outcome.kind)
    with reading(ops.engine) as conn:
        return views.get(conn, user, outcome)


@router.get("")
def list_commands(
    request: Request,
    user: Viewer,
    state: State | None = None,
    action: CommandAction | None = None,
    before: datetime | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Commands in the caller's area scope, newest first (page with ``before``)."""
    ops = ops_of(request)
    with http_errors(), reading(ops.engine) as conn:
        return views.list_commands(
            conn, user, state=state, action=action, before=before, limit=limit
        )


@router.get("/{command_id}")
def get_command(request: Request, command_id: str, user: Viewer) -> dict[str, Any]:
    """One command: state, timestamps, per-gateway dispatches, per-meter outcomes, readings."""
    with http_errors(), reading(ops_of(request).engine) as conn:
        return views.get(conn, user, command_id)


def _decide(
    request: Request, user: User, command_id: str, approve: bool, reason: str | None
) -> dict[str, Any]:
    ops = ops_of(request)
    with http_errors(), reading(ops.engine) as conn:
        views.get(conn, user, command_id)  # 404 outside the caller's scope
    with http_errors(), writing(ops.engine) as conn:
        now = ops.clock.now()
        if approve:
            outcome = service.approve(conn, user, command_id, now=now, guards=ops.guards)
        else:
            outcome = service.cancel(conn, user, command_id, now=now, reason=reason)
    if outcome is not None:
        raise refused(outcome.rule, outcome.message, outcome.kind)
    with reading(ops.engine) as conn:
        return views.get(conn, user, command_id)


@router.post("/{command_id}/approve")
def approve_command(request: Request, command_id: str, user: Supervisor) -> dict[str, Any]:
    """Approve a command awaiting approval (a supervisor other than its creator)."""
    return _decide(request, user, command_id, True, None)


@router.post("/{command_id}/cancel")
def cancel_command(
    request: Request, command_id: str, user: Operator, body: CancelIn | None = None
) -> dict[str, Any]:
    """Cancel a command that has not been sent yet."""
    return _decide(request, user, command_id, False, body.reason if body else None)
