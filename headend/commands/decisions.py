"""What the secured flow does next for one target: a step to store, a restart, or its end.

The decisions of ``headend.commands.secured`` (which stores them): the authenticate step, the
sealed control or clock writes after an accepted authentication, the checks of a second step's
result (reply MAC, the clock read back), restarts while attempts remain.  The encryption service
is called here; the database never is.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from headend.commands import clockset, reply_mac, steps
from headend.commands.settings import FlowSettings
from headend.commands.states import State
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


def decide(
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
    report = step_report(detail.pop("esam", None))
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


def step_report(raw: object) -> StepReport | None:
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
