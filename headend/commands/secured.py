"""The secured flow for ESAM meters: authenticate, seal, control — each step a signed command.

For a target meter flagged ``esam`` in the archive, a remote-control action (relay, alarm,
keep-power) or a clock set does not travel as the plaintext command; its steps are rows of
``esam_steps`` (contract: ``protocols.uplink.secured``, docs/mqtt.md):

1. ``authenticate`` (the dispatcher, with no transaction open): the encryption service makes a
   challenge; ``apply`` stores the *authenticate* step ``approved`` (the target is ``sent``).
2. ``steps.due_commands`` (the dispatcher) claims due steps, which it signs and publishes, each
   with its own id, nonce and a short ``valid_until`` (``step_seconds``).
3. ``steps.record_result`` (the ingest) stores a step's result; ``advance`` (the dispatcher,
   which holds the encryption service) acts on it.  An accepted authentication opens the meter's
   session at the gateway's report time ``at``.  If ``at + session − margin`` has not passed,
   the service seals the control (or the clock writes) and a second step is stored with
   ``session_until`` (``at + session``), after which the gateway sends nothing; otherwise the
   flow restarts.
4. The second step's result ends the target: ``executed`` (relay read back by the gateway, and
   the ESAM's data read-back MAC verified by the encryption service: ``reply_mac``) or
   ``failed``.  A late step, no reply, or an "unauthorised" refusal (the meter's session may have
   ended) restarts from authentication while attempts remain (``max_attempts``); a failed
   authentication never restarts — the meter counts failures and locks for the day.  An
   unreachable or refusing encryption service fails the target with its reason; nothing switched.

Every step is in the audit log (``command.esam_step`` / ``command.esam_result``) and in the
command's view (``steps``).  No key ever reaches the database: only what travels on the wire.
What comes next for a target is decided in ``headend.commands.decisions``; this module stores it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, select, update

from headend import audit
from headend.commands import clockset, decisions, reply_mac, steps
from headend.commands.decisions import (
    N1,
    SECURED_ACTIONS,
    Decision,
    MeterTime,
    NextStep,
    authenticate,
)
from headend.commands.settings import FlowSettings
from headend.commands.states import State
from headend.db import writing
from headend.db.ops_tables import commands, esam_steps
from headend.esam import EncryptionService, SessionInfo
from protocols.uplink import CommandAction, CommandState
from protocols.uplink.secured import AuthenticateStep, parse_step

__all__ = [  # the decisions are re-exported: the dispatcher names them from here
    "N1",
    "SECURED_ACTIONS",
    "Decision",
    "NextStep",
    "advance",
    "apply",
    "authenticate",
]


def apply(conn: Connection, target: steps.Target, decision: Decision, now: datetime) -> None:
    """Store what ``decision`` says (inside the caller's transaction)."""
    if decision.step is not None:
        s = decision.step
        steps.insert_step(
            conn, target, s.kind, s.attempt, s.session, s.params, now, s.session_until
        )
    elif decision.state is not None:
        from headend.commands.ingest import finish_target

        at = decision.at or now
        finish_target(
            conn, target.dispatch_id, target.meter, decision.state, at, decision.reason,
            decision.detail,
        )  # fmt: skip


def advance(
    engine: Engine,
    service: EncryptionService | None,
    address_of: Callable[[Connection, str], str | None],
    meter_time: MeterTime,
    settings: FlowSettings,
    now: datetime,
    clock_policy: clockset.ClockSetPolicy | None = None,
) -> int:
    """Act on reported step results: next step, restart, or the target's end; returns how many.

    Reads in one transaction, calls the encryption service with none open (a slow machine never
    holds the database), writes in a second; a row another head-end instance handled meanwhile
    is skipped.
    """
    with writing(engine) as conn:
        rows = conn.execute(
            select(esam_steps, commands.c.action, commands.c.valid_until.label("command_until"))
            .select_from(esam_steps.join(commands, commands.c.id == esam_steps.c.command_id))
            .where(esam_steps.c.state == steps.REPORTED)
            .order_by(esam_steps.c.created_at)
            .limit(100)
        ).all()
        addresses = {row.meter: address_of(conn, row.meter) or "" for row in rows}
        auths = {row.id: _authentication(conn, row) for row in rows if row.kind != "authenticate"}
    policy = clock_policy or clockset.ClockSetPolicy()
    decided = []
    for row in rows:
        action = CommandAction(row.action)
        target = steps.Target(
            row.command_id, row.dispatch_id, row.gateway, row.meter, addresses[row.meter], action
        )
        session = _session(target.address, auths.get(row.id))
        decision = decisions.decide(
            row, service, target, meter_time, settings, now, session, policy
        )
        decided.append((row, target, decision))
    done = 0
    with writing(engine) as conn:
        for row, target, decision in decided:
            reported = str((row.detail or {}).get("state"))
            final = {
                CommandState.EXECUTED.value: State.EXECUTED,
                CommandState.ARMED.value: State.ARMED,  # ended later by the gateway's word
            }.get(reported, State.FAILED)
            why = row.reason
            if decision.alert is not None:  # the gateway's word without the ESAM's proof
                final, why = State.FAILED, decision.reason
            won = conn.execute(
                update(esam_steps)
                .where(esam_steps.c.id == row.id, esam_steps.c.state == steps.REPORTED)
                .values(state=final.value, reason=why)
            )
            if not won.rowcount:
                continue
            audit.append(
                conn,
                "system",
                "command.esam_result",
                row.command_id,
                {"step": row.id, "meter": row.meter, "state": final.value, "reason": why},
                at=now,
            )
            if decision.alert is not None:
                alert = {"step": row.id, "meter": row.meter, **decision.alert}
                subject = row.command_id
                audit.append(conn, "system", "command.esam_reply_mac", subject, alert, at=now)
            apply(conn, target, decision, now)
            done += 1
    return done


def _authentication(conn: Connection, row: Any) -> Any:
    """The authenticate step that opened ``row``'s session (None if it is gone)."""
    s = esam_steps.c
    return conn.execute(
        select(s.params, s.detail).where(
            s.dispatch_id == row.dispatch_id,
            s.meter == row.meter,
            s.session == row.session,
            s.kind == "authenticate",
        )
    ).first()


def _session(address: str, auth: Any) -> SessionInfo | None:
    """The session an authenticate row opened, from its challenge and the meter's answer."""
    if auth is None:
        return None
    step = parse_step(auth.params)
    report = decisions.step_report(((auth.detail or {}).get("detail") or {}).get("esam"))
    if not isinstance(step, AuthenticateStep) or report is None:
        return None
    return reply_mac.session_info(address, step, report)
