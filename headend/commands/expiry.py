"""Expiry of commands that can no longer happen (a pass of the ``Dispatcher``).

Not approved or not sent by ``valid_until``: the command, its open dispatches and its unsent
targets end ``expired``.  Sent but no result from the gateway by ``valid_until`` plus the result
grace: likewise, for the targets and dispatches still waiting.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine, select, update

from headend.commands.ingest import roll_up_command
from headend.commands.states import State
from headend.db import writing
from headend.db.ops_tables import command_dispatches, command_targets, commands


def expire(engine: Engine, now: datetime, grace: timedelta) -> int:
    """Expire what can no longer happen; returns how many commands changed."""
    c, d, t = commands.c, command_dispatches.c, command_targets.c
    changed = 0
    with writing(engine) as conn:
        unsent = conn.execute(
            select(c.id, c.state).where(
                c.state.in_([State.AWAITING_APPROVAL.value, State.APPROVED.value]),
                c.valid_until <= now,
            )
        ).all()
        silent = (
            conn.execute(
                select(c.id).where(
                    c.state.in_([State.SENT.value, State.RECEIVED.value]),
                    c.valid_until <= now - grace,
                )
            )
            .scalars()
            .all()
        )
        for command_id, state in unsent:
            why = (
                "not approved before valid_until"
                if state == State.AWAITING_APPROVAL
                else "not sent before valid_until"
            )
            open_dispatches = [
                State.AWAITING_APPROVAL.value,
                State.APPROVED.value,
                State.SENDING.value,
            ]
            conn.execute(
                update(command_dispatches)
                .where(d.command_id == command_id, d.state.in_(open_dispatches))
                .values(state=State.EXPIRED.value, finished_at=now, reason=why)
            )
            conn.execute(
                update(command_targets)
                .where(t.command_id == command_id, t.state == State.CREATED.value)
                .values(state=State.EXPIRED.value, at=now, reason=why)
            )
            roll_up_command(conn, command_id, now)
            changed += 1
        for command_id in silent:
            why = "no result from the gateway by valid_until"
            conn.execute(
                update(command_targets)
                .where(
                    t.command_id == command_id,
                    t.state.in_([State.CREATED.value, State.SENT.value, State.RECEIVED.value]),
                )
                .values(state=State.EXPIRED.value, at=now, reason=why)
            )
            conn.execute(
                update(command_dispatches)
                .where(
                    d.command_id == command_id,
                    d.state.in_([State.SENT.value, State.RECEIVED.value, State.SENDING.value]),
                )
                .values(state=State.EXPIRED.value, finished_at=now, reason=why)
            )
            roll_up_command(conn, command_id, now)
            changed += 1
    return changed
