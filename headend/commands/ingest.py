"""Gateway results (``up/result``) applied to commands: per-meter outcomes, then roll-ups.

Called by the ingest inside its transaction.  Results are idempotent (QoS 1 may repeat them) and
may arrive out of order: a final outcome is never replaced by ``received``, and a gateway's final
word replaces the head-end's own "expired" (which only meant "no answer in time").

A result is refused (logged, ``False``) unless it is bound to a command the head-end published to
that gateway: the dispatch must be the publishing gateway's, must have been handed to the broker
(``sending`` or later, or a recorded ``sent_at``), and a per-meter result must name one of the
dispatch's meters.  So a forged ``executed`` cannot close a command still awaiting approval,
held or never sent, nor one of another gateway.  (A forger who can read ``down/cmd`` can still
answer a published command; gateway-signed results, docs/security.md, close that.)
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from headend import audit
from headend.commands import steps
from headend.commands.states import FROM_GATEWAY, State, overall, waiting
from headend.db.ops_tables import command_dispatches, command_targets, commands
from protocols.uplink import CommandResult

log = logging.getLogger(__name__)
OPEN = [State.CREATED.value, State.SENT.value, State.RECEIVED.value]
# Dispatch states in which the command has not reached the broker (unless ``sent_at`` says so).
UNPUBLISHED = frozenset(
    {State.CREATED, State.AWAITING_APPROVAL, State.APPROVED, State.CANCELLED, State.EXPIRED}
)


def refusal(conn: Connection, gateway: str, result: CommandResult) -> tuple[str, Any]:
    """Why ``result`` from ``gateway`` is refused ("" if not) and the dispatch row it names."""
    dispatch = conn.execute(
        select(command_dispatches).where(command_dispatches.c.id == result.id)
    ).one_or_none()
    if dispatch is None:
        return "names no command", None
    if dispatch.gateway != gateway:
        return f"is for a command of gateway {dispatch.gateway!r}", dispatch
    if dispatch.sent_at is None and State(dispatch.state) in UNPUBLISHED:
        return f"is for a command never sent (it is {dispatch.state})", dispatch
    if result.meter is not None:
        target = conn.execute(
            select(command_targets.c.meter).where(
                command_targets.c.dispatch_id == dispatch.id,
                command_targets.c.meter == result.meter,
            )
        ).first()
        if target is None:
            return f"names meter {result.meter!r}, not a target of the command", dispatch
    return "", dispatch


def on_result(conn: Connection, gateway: str, result: CommandResult) -> bool:
    """Apply one result; False if it is refused (see the module docstring; logged, ignored)."""
    why, dispatch = refusal(conn, gateway, result)
    if dispatch is None and steps.record_result(conn, gateway, result):
        return True  # a step of the secured flow (ESAM meters), bound in ``steps``
    if not why and dispatch.state == State.CANCELLED:
        why = "is for a cancelled command"
    if why:
        log.warning("result %r from gateway %r refused: it %s", result.id, gateway, why)
        return False
    state = FROM_GATEWAY[result.state]
    at = result.at
    targets = command_targets.c
    where = [targets.dispatch_id == dispatch.id]
    if result.meter is not None:
        where.append(targets.meter == result.meter)
    if state is State.RECEIVED:
        conn.execute(
            update(command_targets)
            .where(*where, targets.state.in_([State.CREATED.value, State.SENT.value]))
            .values(state=State.RECEIVED.value, at=at)
        )
    else:
        detail: dict[str, Any] = dict(result.detail)
        if result.state.value != state.value:
            detail.setdefault("gateway_state", result.state.value)
        replaceable = [*OPEN, State.EXPIRED.value]
        if result.meter is not None:  # only a meter's own word ends its armed wait
            replaceable.append(State.ARMED.value)
        conn.execute(
            update(command_targets)
            .where(*where, targets.state.in_(replaceable))
            .values(state=state.value, at=at, reason=result.reason, detail=detail or None)
        )
    _roll_up(conn, dispatch.id, dispatch.command_id, at)
    return True


def finish_target(
    conn: Connection,
    dispatch_id: str,
    meter: str,
    state: State,
    at: datetime,
    reason: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    """End one meter's target (the secured flow's outcome) and roll the command up; an armed
    close-allowed target ends here too (the meter's own word, as in ``on_result``)."""
    targets = command_targets.c
    conn.execute(
        update(command_targets)
        .where(
            targets.dispatch_id == dispatch_id,
            targets.meter == meter,
            targets.state.in_([*OPEN, State.EXPIRED.value, State.ARMED.value]),
        )
        .values(state=state.value, at=at, reason=reason, detail=detail)
    )
    command_id = conn.execute(
        select(command_dispatches.c.command_id).where(command_dispatches.c.id == dispatch_id)
    ).scalar_one()
    _roll_up(conn, dispatch_id, command_id, at)


def _roll_up(conn: Connection, dispatch_id: str, command_id: str, at: datetime) -> None:
    """Bring a dispatch's and its command's state in line with their targets."""
    d = command_dispatches.c
    states = [
        State(s)
        for s in conn.execute(
            select(command_targets.c.state).where(command_targets.c.dispatch_id == dispatch_id)
        ).scalars()
    ]
    final = overall(states)
    if final is not None:
        conn.execute(
            update(command_dispatches)
            .where(d.id == dispatch_id)
            .values(state=final.value, finished_at=at)
        )
    elif waiting(states):
        conn.execute(
            update(command_dispatches).where(d.id == dispatch_id).values(state=State.ARMED.value)
        )
    elif State.RECEIVED in states:
        conn.execute(
            update(command_dispatches)
            .where(d.id == dispatch_id, d.state.in_([State.SENT.value, State.SENDING.value]))
            .values(state=State.RECEIVED.value, received_at=at)
        )
    roll_up_command(conn, command_id, at)


def roll_up_command(conn: Connection, command_id: str, at: datetime) -> None:
    """Set a command's state from its targets; audit it once when it becomes final."""
    c = commands.c
    row = conn.execute(select(commands).where(c.id == command_id)).one()
    states = [
        State(s)
        for s in conn.execute(
            select(command_targets.c.state).where(command_targets.c.command_id == command_id)
        ).scalars()
    ]
    final = overall(states)
    if final is not None:
        if row.state == final.value:
            return
        executed = sum(s is State.EXECUTED for s in states)
        reason = None if final is State.EXECUTED else f"{executed} of {len(states)} executed"
        conn.execute(
            update(commands)
            .where(c.id == command_id)
            .values(state=final.value, finished_at=at, reason=reason)
        )
        audit.append(
            conn,
            "system",
            f"command.{final.value}",
            command_id,
            {
                "action": row.action,
                "executed": executed,
                "meters": len(states),
                "previous": row.state,
            },
            at=at,
        )
    elif waiting(states):
        if row.state != State.ARMED.value:
            conn.execute(update(commands).where(c.id == command_id).values(state=State.ARMED.value))
            audit.append(conn, "system", "command.armed", command_id, {"action": row.action}, at=at)
    elif State.RECEIVED in states and row.state in (State.SENT.value, State.APPROVED.value):
        conn.execute(
            update(commands)
            .where(c.id == command_id)
            .values(state=State.RECEIVED.value, received_at=at)
        )
