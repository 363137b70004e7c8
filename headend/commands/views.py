"""Reading commands back, as the API shows them, within a user's area scope."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, and_, exists, not_, or_, select
from sqlalchemy.sql.elements import ColumnElement

from headend.auth.roles import User
from headend.commands import steps
from headend.db.errors import NotFound
from headend.db.ops_tables import command_dispatches, command_targets, commands
from headend.db.tables import readings

READINGS_SHOWN = 1000


def _in_scope(user: User) -> ColumnElement[bool] | None:
    """Commands all of whose targets are inside the user's areas."""
    if user.areas is None:
        return None
    t = command_targets
    outside = select(t.c.meter).where(
        t.c.command_id == commands.c.id,
        or_(t.c.area.is_(None), t.c.area.notin_(sorted(user.areas))),
    )
    return not_(exists(outside))


def _summary(row: Any) -> dict[str, Any]:
    keys = (
        "id",
        "action",
        "params",
        "state",
        "note",
        "areas",
        "meter_count",
        "created_by",
        "created_at",
        "valid_until",
        "approval_rule",
        "approved_by",
        "approved_at",
        "cancelled_by",
        "cancelled_at",
        "sent_at",
        "received_at",
        "finished_at",
        "reason",
    )
    return {k: getattr(row, k) for k in keys}


def get(conn: Connection, user: User, command_id: str) -> dict[str, Any]:
    """One command with its dispatches, per-meter outcomes and the readings it brought back.

    A command outside the user's scope is reported as not found (its existence is not leaked).
    """
    query = select(commands).where(commands.c.id == command_id)
    scope = _in_scope(user)
    if scope is not None:
        query = query.where(scope)
    row = conn.execute(query).one_or_none()
    if row is None:
        raise NotFound(f"no command {command_id!r}")
    view = _summary(row)
    dispatches = conn.execute(
        select(command_dispatches)
        .where(command_dispatches.c.command_id == command_id)
        .order_by(command_dispatches.c.id)
    ).all()
    view["dispatches"] = [
        {
            k: getattr(d, k)
            for k in ("id", "gateway", "state", "sent_at", "received_at", "finished_at", "reason")
        }
        for d in dispatches
    ]
    view["targets"] = [
        {k: getattr(t, k) for k in ("meter", "gateway", "area", "state", "at", "reason", "detail")}
        for t in conn.execute(
            select(command_targets)
            .where(command_targets.c.command_id == command_id)
            .order_by(command_targets.c.meter)
        )
    ]
    view["steps"] = steps.steps_of(conn, command_id)  # ESAM meters: the secured flow's steps
    ids = [d.id for d in dispatches]
    view["readings"] = [
        {k: getattr(r, k) for k in ("meter", "quantity", "time", "kind", "value", "freeze_time")}
        for r in conn.execute(
            select(readings)
            .where(readings.c.command.in_(ids))
            .order_by(readings.c.meter, readings.c.time, readings.c.quantity)
            .limit(READINGS_SHOWN)
        )
    ]
    return view


def list_commands(
    conn: Connection,
    user: User,
    *,
    state: str | None = None,
    action: str | None = None,
    before: datetime | None = None,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Commands in the user's scope, newest first."""
    query = select(commands).order_by(commands.c.created_at.desc(), commands.c.id).limit(limit)
    conditions = []
    scope = _in_scope(user)
    if scope is not None:
        conditions.append(scope)
    if state is not None:
        conditions.append(commands.c.state == state)
    if action is not None:
        conditions.append(commands.c.action == action)
    if before is not None:
        conditions.append(commands.c.created_at < before)
    if conditions:
        query = query.where(and_(*conditions))
    return [_summary(r) for r in conn.execute(query)]
