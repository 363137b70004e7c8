"""The rows of the secured flow (``esam_steps``): storing, publishing and reporting steps.

A step's lifecycle: ``approved → sent → reported → executed | failed``.  ``reported``: the ingest
stored the gateway's result (``record_result``); the dispatcher, which holds the encryption
service, has not acted on it yet (``headend.commands.secured.advance``).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, insert, or_, select, update

from headend import audit
from headend.commands.settings import FlowSettings
from headend.commands.states import State
from headend.db.ops_tables import commands, esam_steps
from protocols.uplink import Command, CommandAction, CommandResult, CommandState
from protocols.uplink.secured import ControlStep, WriteStep, late_report, parse_step

REPORTED = "reported"  # a step's result is stored, the dispatcher has not acted on it yet


@dataclass(frozen=True)
class Target:
    """One ESAM meter of a dispatch."""

    command_id: str
    dispatch_id: str
    gateway: str
    meter: str
    address: str
    action: CommandAction


def insert_step(
    conn: Connection,
    target: Target,
    kind: str,
    attempt: int,
    session: str,
    params: dict[str, Any],
    now: datetime,
    session_until: datetime | None = None,
) -> str:
    step_id = f"{target.dispatch_id}:{session}{kind[0]}"
    conn.execute(
        insert(esam_steps).values(
            id=step_id,
            dispatch_id=target.dispatch_id,
            command_id=target.command_id,
            meter=target.meter,
            gateway=target.gateway,
            kind=kind,
            attempt=attempt,
            session=session,
            state=State.APPROVED.value,
            params=params,
            created_at=now,
            session_until=session_until,
        )
    )
    audit.append(
        conn,
        "system",
        "command.esam_step",
        target.command_id,
        {"step": step_id, "meter": target.meter, "kind": kind, "attempt": attempt},
        at=now,
    )
    return step_id


def due_commands(
    conn: Connection,
    now: datetime,
    settings: FlowSettings,
    held: frozenset[CommandAction] = frozenset(),
) -> list[tuple[str, Command]]:
    """Approved steps as unsigned commands, claimed ``sent`` (the caller signs and publishes
    them and, when publishing fails, calls ``unsend``).

    Second steps of ``held`` actions (disconnects while paused or outside the window) wait; a
    step whose session would end within ``margin`` is not sent but reported late (the flow
    restarts from authentication); a step of an expired command is not sent at all.
    """
    rows = conn.execute(
        select(esam_steps, commands.c.action, commands.c.valid_until.label("command_until"))
        .select_from(esam_steps.join(commands, commands.c.id == esam_steps.c.command_id))
        .where(esam_steps.c.state == State.APPROVED.value)
        .order_by(esam_steps.c.created_at)
        .limit(100)
    ).all()
    margin = timedelta(seconds=settings.margin_seconds)
    out = []
    for row in rows:
        action = CommandAction(row.action)
        if row.kind != "authenticate" and action in held:
            continue
        if now >= row.command_until:
            report_unsent(conn, row.id, "expired", "the command expired before the step was sent")
            continue
        if row.session_until is not None and now >= row.session_until - margin:
            step = parse_step(row.params)
            assert isinstance(step, ControlStep | WriteStep)
            _, reason, report = late_report(step)
            report_unsent(conn, row.id, "failed", reason, report.model_dump(mode="json"))
            continue
        won = conn.execute(
            update(esam_steps)
            .where(esam_steps.c.id == row.id, esam_steps.c.state == State.APPROVED.value)
            .values(state=State.SENT.value, sent_at=now)
        )
        if not won.rowcount:
            continue
        until = min(now + timedelta(seconds=settings.step_seconds), row.command_until)
        if row.session_until is not None:
            until = min(until, row.session_until)
        command = Command(
            id=row.id,
            gateway=row.gateway,
            meters=(row.meter,),
            action=action,
            params=row.params,
            issued=now,
            valid_until=until,
            nonce=secrets.token_hex(16),
        )
        out.append((row.gateway, command))
    return out


def in_flight(conn: Connection, now: datetime, flow: FlowSettings) -> bool:
    """Whether a step published within its validity awaits its result, or a result awaits
    the dispatcher (a step the gateway never answers stops counting after ``step_seconds``)."""
    s = esam_steps.c
    fresh = and_(
        s.state == State.SENT.value, s.sent_at > now - timedelta(seconds=flow.step_seconds)
    )
    waiting = or_(fresh, s.state == REPORTED)
    return conn.execute(select(s.id).where(waiting).limit(1)).first() is not None


def report_unsent(
    conn: Connection,
    step_id: str,
    state: str,
    reason: str,
    report: dict[str, Any] | None = None,
) -> None:
    """Close a step that was never sent as if it had been reported (``advance`` acts on it)."""
    detail = {"esam": report} if report is not None else {}
    conn.execute(
        update(esam_steps)
        .where(esam_steps.c.id == step_id)
        .values(state=REPORTED, reason=reason, detail={"state": state, "detail": detail})
    )


def unsend(conn: Connection, step_id: str, reason: str) -> None:
    """A step whose publication failed goes back to ``approved`` (published on the next pass)."""
    conn.execute(
        update(esam_steps)
        .where(esam_steps.c.id == step_id, esam_steps.c.state == State.SENT.value)
        .values(state=State.APPROVED.value, reason=reason)
    )


def record_result(conn: Connection, gateway: str, result: CommandResult) -> bool:
    """Store a gateway's final result for a step (the ingest); False if it names no step of
    this gateway.  The dispatcher acts on it (``advance``), where the encryption service is."""
    row = conn.execute(select(esam_steps).where(esam_steps.c.id == result.id)).one_or_none()
    if row is None or row.gateway != gateway:
        return False
    if result.state in (CommandState.RECEIVED, CommandState.EXECUTING):
        return True
    if result.meter is None and result.state in (CommandState.EXECUTED, CommandState.FAILED):
        return True  # the command-level summary after the meter's own result
    if row.state == State.ARMED.value and result.meter == row.meter:
        return _end_armed(conn, row, result)
    conn.execute(
        update(esam_steps)
        .where(
            esam_steps.c.id == row.id,
            esam_steps.c.state.in_([State.SENT.value, State.APPROVED.value]),
        )
        .values(
            state=REPORTED,
            finished_at=result.at,
            reason=result.reason,
            detail={"state": result.state.value, "detail": result.detail},
        )
    )
    return True


def _end_armed(conn: Connection, row: Any, result: CommandResult) -> bool:
    """A close-allowed control step waited for the customer's button; the gateway's word on it
    (closed by the customer, or superseded) ends the target without the encryption service."""
    from headend.commands.ingest import finish_target

    if result.state not in (CommandState.EXECUTED, CommandState.FAILED):
        return True
    final = State.EXECUTED if result.state is CommandState.EXECUTED else State.FAILED
    conn.execute(
        update(esam_steps)
        .where(esam_steps.c.id == row.id, esam_steps.c.state == State.ARMED.value)
        .values(state=final.value, finished_at=result.at, reason=result.reason)
    )
    detail = dict(result.detail) or None
    finish_target(conn, row.dispatch_id, row.meter, final, result.at, result.reason, detail)
    return True


def steps_of(conn: Connection, command_id: str) -> list[dict[str, Any]]:
    """The command's ESAM steps for its view (oldest first)."""
    keys = ("id", "meter", "kind", "attempt", "state", "created_at", "sent_at", "finished_at")
    rows = conn.execute(
        select(esam_steps)
        .where(esam_steps.c.command_id == command_id)
        .order_by(esam_steps.c.created_at, esam_steps.c.id)
    )
    return [{**{k: getattr(r, k) for k in keys}, "reason": r.reason} for r in rows]
