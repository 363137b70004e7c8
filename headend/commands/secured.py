"""The secured flow for ESAM meters: authenticate, seal, control — each step a signed command.

For a target meter flagged ``esam`` in the archive, a remote-control action (relay, alarm,
keep-power) or a clock set does not travel as the plaintext command; its steps are rows of
``esam_steps`` (contract: ``protocols.uplink.secured``, docs/mqtt.md):

1. ``start``: the encryption service makes a challenge; an *authenticate* step is stored
   ``approved`` and the target becomes ``sent``.
2. ``steps.due_commands`` (the dispatcher) claims due steps, which it signs and publishes, each
   with its own id, nonce and a short ``valid_until`` (``step_seconds``).
3. ``steps.record_result`` (the ingest) stores a step's result; ``advance`` (the dispatcher,
   which holds the encryption service) acts on it.  An accepted authentication opens the meter's
   session at the gateway's report time ``at``.  If ``at + session − margin`` has not passed,
   the service seals the control (or the clock writes) and a second step is stored with
   ``session_until`` (``at + session``), after which the gateway sends nothing; otherwise the
   flow restarts.
4. The second step's result ends the target: ``executed`` (relay read back by the gateway) or
   ``failed``.  A late step, no reply, or an "unauthorised" refusal (the meter's session may have
   ended) restarts from authentication while attempts remain (``max_attempts``); a failed
   authentication never restarts — the meter counts failures and locks for the day.  An
   unreachable or refusing encryption service fails the target with its reason; nothing switched.

Every step is in the audit log (``command.esam_step`` / ``command.esam_result``) and in the
command's view (``steps``).  No key ever reaches the database: only what travels on the wire.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, select, update

from headend import audit
from headend.commands import steps
from headend.commands.settings import FlowSettings
from headend.commands.states import State
from headend.db.ops_tables import commands, esam_steps
from headend.esam import Challenge, EncryptionError, EncryptionService, SessionInfo
from protocols.dlt645 import LEVEL_SEALED, ControlAction, encode_value
from protocols.uplink import CommandAction, CommandState
from protocols.uplink.secured import (
    AuthenticateStep,
    ControlStep,
    SealedWrite,
    StepReport,
    WriteStep,
    parse_step,
    step_params,
)

# Remote-control actions and their 1CH N1 code.
N1: dict[CommandAction, ControlAction] = {
    CommandAction.RELAY_TRIP: ControlAction.TRIP,
    CommandAction.RELAY_CLOSE_ALLOWED: ControlAction.CLOSE_ALLOWED,
    CommandAction.RELAY_CLOSE_DIRECT: ControlAction.CLOSE_DIRECT,
    CommandAction.ALARM: ControlAction.ALARM,
    CommandAction.ALARM_RELEASE: ControlAction.ALARM_RELEASE,
    CommandAction.KEEP_POWER_ON: ControlAction.KEEP_POWER,
    CommandAction.KEEP_POWER_OFF: ControlAction.KEEP_POWER_RELEASE,
}
SECURED_ACTIONS = frozenset({*N1, CommandAction.TIME_SYNC})
DATE_DI, TIME_DI = 0x04000101, 0x04000102
RESTARTABLE = {"late", "no_reply"}
UNAUTHORISED = "password_error_or_unauthorised"
MeterTime = Callable[[datetime], datetime]  # aware now → the meter's naive local time


def _challenge_params(challenge: Challenge, session: str) -> dict[str, Any]:
    return step_params(
        AuthenticateStep(
            session=session,
            factor=challenge.factor.hex().upper(),
            random1=challenge.random1.hex().upper(),
            ciphertext1=challenge.ciphertext1.hex().upper(),
        )
    )


def start(
    conn: Connection,
    service: EncryptionService | None,
    target: steps.Target,
    now: datetime,
    attempt: int = 1,
) -> str | None:
    """Store the authenticate step of ``target`` (None: the target failed, reason stored)."""
    if service is None:
        _finish(conn, target, State.FAILED, now, "no encryption service is configured ([esam])")
        return None
    try:
        challenge = service.authenticate(target.address)
    except EncryptionError as exc:
        _finish(conn, target, State.FAILED, now, f"encryption service: {exc}")
        return None
    session = secrets.token_hex(4)
    return steps.insert_step(
        conn, target, "authenticate", attempt, session, _challenge_params(challenge, session), now
    )


def _finish(
    conn: Connection,
    target: steps.Target,
    state: State,
    at: datetime,
    reason: str | None,
    detail: dict[str, Any] | None = None,
) -> None:
    from headend.commands.ingest import finish_target

    finish_target(conn, target.dispatch_id, target.meter, state, at, reason, detail)


def advance(
    conn: Connection,
    service: EncryptionService | None,
    address_of: Callable[[str], str | None],
    meter_time: MeterTime,
    settings: FlowSettings,
    now: datetime,
) -> int:
    """Act on reported step results: next step, restart, or the target's end; returns how many."""
    rows = conn.execute(
        select(esam_steps, commands.c.action, commands.c.valid_until.label("command_until"))
        .select_from(esam_steps.join(commands, commands.c.id == esam_steps.c.command_id))
        .where(esam_steps.c.state == steps.REPORTED)
        .order_by(esam_steps.c.created_at)
        .limit(100)
    ).all()
    for row in rows:
        reported = row.detail or {}
        ok = reported.get("state") == CommandState.EXECUTED.value
        final = State.EXECUTED if ok else State.FAILED
        conn.execute(update(esam_steps).where(esam_steps.c.id == row.id).values(state=final.value))
        detail = dict(reported.get("detail") or {})
        raw = detail.pop("esam", None)
        report = _report(raw)
        address = address_of(row.meter) or ""
        action = CommandAction(row.action)
        target = steps.Target(
            row.command_id, row.dispatch_id, row.gateway, row.meter, address, action
        )
        audit.append(
            conn,
            "system",
            "command.esam_result",
            row.command_id,
            {"step": row.id, "meter": row.meter, "state": final.value, "reason": row.reason},
            at=now,
        )
        if not (ok and row.kind != "authenticate") and now >= row.command_until:
            # never start or restart a step past the command's validity (a late result)
            _finish(conn, target, State.EXPIRED, now, "the command expired during the secured flow")
        elif ok and row.kind == "authenticate":
            _second_step(
                conn, service, target, row, report, row.finished_at, meter_time, settings, now
            )
        elif ok and row.kind == "write":
            expected = meter_time(row.finished_at)
            _clock_checked(conn, target, report, row.finished_at, expected, settings, detail)
        elif ok:
            _finish(conn, target, State.EXECUTED, row.finished_at, None, detail or None)
        else:
            _failed(conn, service, target, row, report, row.reason, settings, now)
    return len(rows)


def _clock_checked(
    conn: Connection,
    target: steps.Target,
    report: StepReport | None,
    at: datetime,
    expected: datetime,
    settings: FlowSettings,
    detail: dict[str, Any],
) -> None:
    """End a clock set: executed only if the clock read back is within the tolerance."""
    read = report.meter_time if report is not None else None
    if read is None:
        _finish(conn, target, State.FAILED, at, "the clock was not read back after the set")
        return
    off = (read.replace(tzinfo=None) - expected).total_seconds()
    detail = {**detail, "meter_time": read.isoformat(), "offset_s": round(off, 1)}
    if abs(off) > settings.clock_tolerance:
        why = f"the clock read back is {off:+.0f} s off (tolerance {settings.clock_tolerance:g} s)"
        _finish(conn, target, State.FAILED, at, why, detail)
        return
    _finish(conn, target, State.EXECUTED, at, None, detail)


def _report(raw: object) -> StepReport | None:
    """The gateway's step report, or None when absent or malformed (a forged result)."""
    try:
        return StepReport.model_validate(raw) if isinstance(raw, dict) else None
    except ValidationError:
        return None


def _second_step(
    conn: Connection,
    service: EncryptionService | None,
    target: steps.Target,
    row: Any,
    report: StepReport | None,
    opened: datetime,
    meter_time: MeterTime,
    settings: FlowSettings,
    now: datetime,
) -> None:
    if report is None or report.random2 is None or report.esam_serial is None:
        _finish(conn, target, State.FAILED, now, "authentication result without random number 2")
        return
    session_until = opened + timedelta(seconds=settings.session_seconds)
    if now >= session_until - timedelta(seconds=settings.margin_seconds):
        _restart(conn, service, target, row.attempt, settings, now, "session too old to seal")
        return
    step = parse_step(row.params)
    assert isinstance(step, AuthenticateStep)
    challenge = Challenge(
        target.address,
        bytes.fromhex(step.factor),
        bytes.fromhex(step.random1),
        bytes.fromhex(step.ciphertext1),
    )
    info = SessionInfo(challenge, bytes.fromhex(report.random2), bytes.fromhex(report.esam_serial))
    local = meter_time(now)
    try:
        if service is None:
            raise EncryptionError("no encryption service is configured ([esam])")
        params = _sealed_params(service, info, target, row.session, session_until, local, settings)
    except EncryptionError as exc:
        _finish(conn, target, State.FAILED, now, f"encryption service: {exc}")
        return
    kind = "write" if target.action is CommandAction.TIME_SYNC else "control"
    steps.insert_step(conn, target, kind, row.attempt, row.session, params, now, session_until)


def _sealed_params(
    service: EncryptionService,
    info: SessionInfo,
    target: steps.Target,
    session: str,
    session_until: datetime,
    local: datetime,
    settings: FlowSettings,
) -> dict[str, Any]:
    if target.action is CommandAction.TIME_SYNC:  # set the meter to the head-end's time
        local = local.replace(microsecond=0)
        date_value = encode_value(DATE_DI, local.date())
        time_value = encode_value(TIME_DI, local.time())
        writes = tuple(  # both second-class parameters: ciphertext + MAC (docs/dlt645.md)
            SealedWrite(
                di=f"{di:08X}",
                level="98",
                payload=service.seal_write(info, seq, di, value, LEVEL_SEALED).hex().upper(),
            )
            for seq, (di, value) in enumerate(((DATE_DI, date_value), (TIME_DI, time_value)))
        )
        return step_params(WriteStep(session=session, session_until=session_until, writes=writes))
    until = local.replace(microsecond=0) + timedelta(minutes=settings.control_minutes)
    sealed = service.seal_control(info, 0, int(N1[target.action]), until)
    return step_params(
        ControlStep(session=session, session_until=session_until, sealed=sealed.hex().upper())
    )


def _failed(
    conn: Connection,
    service: EncryptionService | None,
    target: steps.Target,
    row: Any,
    report: StepReport | None,
    reason: str | None,
    settings: FlowSettings,
    now: datetime,
) -> None:
    why = reason or "the step failed"
    retry = (
        row.kind != "authenticate"
        and report is not None
        and (report.outcome in RESTARTABLE or UNAUTHORISED in report.reasons)
    )
    if row.kind == "authenticate" and report is not None and report.outcome == "no_reply":
        retry = True  # nothing reached the meter's ESAM: no failure was counted
    if retry:
        _restart(conn, service, target, row.attempt, settings, now, why)
        return
    detail = {"esam": report.model_dump(mode="json")} if report is not None else None
    _finish(conn, target, State.FAILED, now, f"{row.kind} step: {why}", detail)


def _restart(
    conn: Connection,
    service: EncryptionService | None,
    target: steps.Target,
    attempt: int,
    settings: FlowSettings,
    now: datetime,
    why: str,
) -> None:
    if attempt >= settings.max_attempts:
        _finish(conn, target, State.FAILED, now, f"{why}; gave up after {attempt} authentications")
        return
    start(conn, service, target, now, attempt + 1)
