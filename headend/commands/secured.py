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
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Connection, Engine, select, update

from headend import audit
from headend.commands import clockset, reply_mac, steps
from headend.commands.settings import FlowSettings
from headend.commands.states import State
from headend.db import writing
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


@dataclass(frozen=True)
class NextStep:
    """A step to store."""

    kind: str
    attempt: int
    session: str
    params: dict[str, Any]
    session_until: datetime | None = None


@dataclass(frozen=True)
class Decision:
    """What to do for one target: store a step, or end the target (state, reason, detail)."""

    step: NextStep | None = None
    state: State | None = None
    reason: str | None = None
    detail: dict[str, Any] | None = None
    at: datetime | None = None  # when the target ended (default: now)
    alert: dict[str, Any] | None = None  # audited as command.esam_reply_mac (a refused proof)


def authenticate(
    service: EncryptionService | None, target: steps.Target, attempt: int = 1
) -> Decision:
    """The authenticate step of ``target`` (calls the service: outside any transaction)."""
    if service is None:
        return Decision(state=State.FAILED, reason="no encryption service is configured ([esam])")
    try:
        challenge = service.authenticate(target.address)
    except EncryptionError as exc:
        return Decision(state=State.FAILED, reason=f"encryption service: {exc}")
    session = secrets.token_hex(4)
    params = _challenge_params(challenge, session)
    return Decision(step=NextStep("authenticate", attempt, session, params))


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
        decision = _decide(row, service, target, meter_time, settings, now, session, policy)
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
    report = _report(((auth.detail or {}).get("detail") or {}).get("esam"))
    if not isinstance(step, AuthenticateStep) or report is None:
        return None
    return reply_mac.session_info(address, step, report)


def _decide(
    row: Any,
    service: EncryptionService | None,
    target: steps.Target,
    meter_time: MeterTime,
    settings: FlowSettings,
    now: datetime,
    session: SessionInfo | None = None,
    clock_policy: clockset.ClockSetPolicy | None = None,
) -> Decision:
    reported = row.detail or {}
    ok = reported.get("state") == CommandState.EXECUTED.value
    armed = reported.get("state") == CommandState.ARMED.value
    detail = dict(reported.get("detail") or {})
    report = _report(detail.pop("esam", None))
    if not (ok and row.kind != "authenticate") and now >= row.command_until:
        # never start or restart a step past the command's validity (a late result)
        return Decision(state=State.EXPIRED, reason="the command expired during the secured flow")
    if ok and row.kind == "authenticate":
        policy = clock_policy or clockset.ClockSetPolicy()
        return _second_step(service, target, row, report, meter_time, settings, now, policy)
    if ok or armed:  # the meter accepted the sealed frames: its ESAM must prove it
        step = parse_step(row.params)
        assert isinstance(step, ControlStep | WriteStep)
        n1 = int(N1[target.action]) if isinstance(step, ControlStep) else None
        why = reply_mac.check(service, session, step, report, n1)
        if why is not None:
            alert = {"reason": why, **reply_mac.detail_of(report)}
            return Decision(
                state=State.FAILED, reason=why, detail=detail or None, at=row.finished_at,
                alert=alert,
            )  # fmt: skip
    if ok and row.kind == "write":
        return _clock_checked(
            report, row.finished_at, meter_time(row.finished_at), settings, detail
        )
    if ok:
        return Decision(state=State.EXECUTED, detail=detail or None, at=row.finished_at)
    if armed:  # close allowed: waits for the button
        reason = row.reason or "awaiting the customer's button"
        return Decision(state=State.ARMED, reason=reason, detail=detail or None, at=row.finished_at)
    return _failed(service, target, row, report, settings)


def _clock_checked(
    report: StepReport | None,
    at: datetime,
    expected: datetime,
    settings: FlowSettings,
    detail: dict[str, Any],
) -> Decision:
    """A clock set is executed only if the clock read back is within the tolerance."""
    read = report.meter_time if report is not None else None
    if read is None:
        return Decision(
            state=State.FAILED, reason="the clock was not read back after the set", at=at
        )
    off = (read.replace(tzinfo=None) - expected).total_seconds()
    detail = {**detail, "meter_time": read.isoformat(), "offset_s": round(off, 1)}
    if abs(off) > settings.clock_tolerance:
        why = f"the clock read back is {off:+.0f} s off (tolerance {settings.clock_tolerance:g} s)"
        return Decision(state=State.FAILED, reason=why, detail=detail, at=at)
    return Decision(state=State.EXECUTED, detail=detail, at=at)


def _report(raw: object) -> StepReport | None:
    """The gateway's step report, or None when absent or malformed (a forged result)."""
    try:
        return StepReport.model_validate(raw) if isinstance(raw, dict) else None
    except ValidationError:
        return None


def _second_step(
    service: EncryptionService | None,
    target: steps.Target,
    row: Any,
    report: StepReport | None,
    meter_time: MeterTime,
    settings: FlowSettings,
    now: datetime,
    clock_policy: clockset.ClockSetPolicy,
) -> Decision:
    if report is None or report.random2 is None or report.esam_serial is None:
        return Decision(state=State.FAILED, reason="authentication result without random number 2")
    session_until = row.finished_at + timedelta(seconds=settings.session_seconds)
    if now >= session_until - timedelta(seconds=settings.margin_seconds):
        return _restart(service, target, row.attempt, settings, "session too old to seal")
    step = parse_step(row.params)
    assert isinstance(step, AuthenticateStep)
    info = reply_mac.session_info(target.address, step, report)
    assert info is not None
    local = meter_time(now)
    if target.action is CommandAction.TIME_SYNC:  # the policy again, before anything is sealed
        why = clockset.judge(target.meter, local, None, None, clock_policy)
        if why is not None:
            return Decision(
                state=State.FAILED, reason=f"time-sync policy: {why.rule}: {why.message}"
            )
    try:
        if service is None:
            raise EncryptionError("no encryption service is configured ([esam])")
        params = _sealed_params(service, info, target, row.session, session_until, local, settings)
    except EncryptionError as exc:
        return Decision(state=State.FAILED, reason=f"encryption service: {exc}")
    kind = "write" if target.action is CommandAction.TIME_SYNC else "control"
    return Decision(step=NextStep(kind, row.attempt, row.session, params, session_until))


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
        readback = reply_mac.identifier(len(time_value))  # the last write's plaintext
        return step_params(
            WriteStep(
                session=session, session_until=session_until, writes=writes, readback=readback
            )
        )
    until = local.replace(microsecond=0) + timedelta(minutes=settings.control_minutes)
    sealed = service.seal_control(info, 0, int(N1[target.action]), until)
    return step_params(
        ControlStep(
            session=session,
            session_until=session_until,
            sealed=sealed.hex().upper(),
            readback=reply_mac.identifier(reply_mac.CONTROL_PLAINTEXT),
        )
    )


def _failed(
    service: EncryptionService | None,
    target: steps.Target,
    row: Any,
    report: StepReport | None,
    settings: FlowSettings,
) -> Decision:
    why = row.reason or "the step failed"
    retry = (
        row.kind != "authenticate"
        and report is not None
        and (report.outcome in RESTARTABLE or UNAUTHORISED in report.reasons)
    )
    if row.kind == "authenticate" and report is not None and report.outcome == "no_reply":
        retry = True  # nothing reached the meter's ESAM: no failure was counted
    if retry:
        return _restart(service, target, row.attempt, settings, why)
    detail = {"esam": report.model_dump(mode="json")} if report is not None else None
    return Decision(state=State.FAILED, reason=f"{row.kind} step: {why}", detail=detail)


def _restart(
    service: EncryptionService | None,
    target: steps.Target,
    attempt: int,
    settings: FlowSettings,
    why: str,
) -> Decision:
    if attempt >= settings.max_attempts:
        reason = f"{why}; gave up after {attempt} authentications"
        return Decision(state=State.FAILED, reason=reason)
    return authenticate(service, target, attempt + 1)
