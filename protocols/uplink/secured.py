"""Secured (ESAM) steps of a command: an additive extension of contract v1 (``"esam": 1``).

A remote-control or clock command to a cost-control meter with an ESAM takes several round trips,
because the second needs what the meter answered to the first::

    head-end → gateway  down/cmd   id C:a1  params.esam = authenticate step (ciphertext 1 …)
    gateway  → head-end up/result  id C:a1  executed, detail.esam = report (random 2, ESAM serial)
    head-end → gateway  down/cmd   id C:c1  params.esam = control step (sealed 1CH block)
    gateway  → head-end up/result  id C:c1  executed | failed, detail.esam = report (+ read-back)

Every step is an ordinary signed ``Command`` (own id, nonce and ``valid_until``; ``action`` is
the operator's action, so the gateway knows what to read back) whose ``params["esam"]`` holds one
step; the gateway answers each with ordinary ``CommandResult`` messages whose ``detail["esam"]``
holds a ``StepReport``.  A gateway without this extension refuses the unknown parameter shape;
a head-end without it ignores the unknown command ids.  The schema version is the ``esam`` field.

A control or write step may name an ESAM data read-back (``readback``, 03H 078001FF): the
gateway sends it right after the sealed frames and reports the data and the ESAM's MAC
(``StepReport.readback``); the head-end's encryption service verifies that MAC before it calls
the step executed (the 83H/9CH/94H replies themselves carry no MAC, docs/dlt645.md §Security).

``step_requests`` turns a step into the DL/T 645 requests to send, and ``step_report`` the
meter's replies into the result, so a gateway's executor stays a loop around its bus.
"""

from __future__ import annotations

from datetime import date, datetime, time
from typing import Annotated, Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, ValidationError

from protocols.dlt645 import (
    AbnormalReply,
    Authenticate,
    Authenticated,
    ControlAck,
    ReadBack,
    ReadBackData,
    Reply,
    Request,
    SecuredControl,
    SecuredWrite,
    WriteAck,
)
from protocols.errors import ContractError
from protocols.uplink.messages import CommandState

STEP_VERSION: Literal[1] = 1
Hex8 = Annotated[str, Field(pattern=r"^[0-9A-F]{8}$")]
Hex16 = Annotated[str, Field(pattern=r"^[0-9A-F]{16}$")]
Hex40 = Annotated[str, Field(pattern=r"^[0-9A-F]{40}$")]
SessionId = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Za-z0-9_-]+$")]


class _Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    esam: Literal[1] = STEP_VERSION
    session: SessionId
    operator: Hex8 = "00000000"


class AuthenticateStep(_Step):
    """Step 1: identity authentication (03H 070000FF) with the encryption service's values."""

    step: Literal["authenticate"] = "authenticate"
    factor: Hex16
    random1: Hex16
    ciphertext1: Hex16


class ControlStep(_Step):
    """Step 2 of a remote control: the sealed 1CH block; nothing is sent at/after ``until``."""

    step: Literal["control"] = "control"
    session_until: AwareDatetime
    sealed: Hex40
    readback: Hex16 | None = None  # ESAM data read-back identifier, sent after the control


class SealedWrite(BaseModel):
    """One protected write: identifier, level and payload (value + MAC or ciphertext + MAC)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    di: Hex8
    level: Literal["98", "99"]
    payload: Annotated[str, Field(min_length=10, max_length=200, pattern=r"^([0-9A-F]{2})+$")]


class WriteStep(_Step):
    """Step 2 of a clock set (or another protected parameter): writes in session order."""

    step: Literal["write"] = "write"
    session_until: AwareDatetime
    writes: tuple[SealedWrite, ...] = Field(min_length=1, max_length=4)
    readback: Hex16 | None = None  # ESAM data read-back identifier, sent after the writes


Step = Annotated[AuthenticateStep | ControlStep | WriteStep, Field(discriminator="step")]


class _StepParams(BaseModel):
    model_config = ConfigDict(extra="allow", frozen=True)

    esam: Step


class ReadBackReport(BaseModel):
    """The ESAM data read back after a step's sealed frames, with the ESAM's MAC over it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    identifier: Hex16
    data: Annotated[str, Field(min_length=2, max_length=400, pattern=r"^([0-9A-F]{2})+$")]
    mac: Hex8


class StepReport(BaseModel):
    """``CommandResult.detail["esam"]``: what the meter answered to a step."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    esam: Literal[1] = STEP_VERSION
    step: Literal["authenticate", "control", "write"]
    session: SessionId
    random2: Hex8 | None = None
    esam_serial: Hex16 | None = None
    outcome: Literal["accepted", "refused", "no_reply", "late", "unexpected"] = "accepted"
    reasons: tuple[str, ...] = ()  # the meter's error bits (security error word or error byte)
    done: int = Field(default=0, ge=0)  # writes the meter accepted
    meter_time: datetime | None = None  # after a clock set: the clock read back (naive local)
    readback: ReadBackReport | None = None  # the step's ESAM data read-back (data + MAC)


def parse_step(params: dict[str, Any]) -> AuthenticateStep | ControlStep | WriteStep | None:
    """The step in a command's params, None when it has none; ``ContractError`` if malformed."""
    if "esam" not in params:
        return None
    try:
        return _StepParams.model_validate(params).esam
    except ValidationError as exc:
        raise ContractError(f"invalid esam step: {exc.errors()[0]['msg']}") from None


def step_params(step: AuthenticateStep | ControlStep | WriteStep) -> dict[str, Any]:
    """A command's ``params`` carrying ``step``."""
    return {"esam": step.model_dump(mode="json")}


def _sealed_requests(step: ControlStep | WriteStep, address: str) -> list[Request]:
    h = bytes.fromhex
    if isinstance(step, ControlStep):
        return [SecuredControl(address, h(step.sealed), operator=step.operator)]
    return [
        SecuredWrite(address, int(w.di, 16), h(w.payload), f"{w.level}000000", step.operator)
        for w in step.writes
    ]


def step_requests(step: AuthenticateStep | ControlStep | WriteStep, address: str) -> list[Request]:
    """The DL/T 645 requests of ``step``, in order (stop at the first refusal or silence)."""
    h = bytes.fromhex
    if isinstance(step, AuthenticateStep):
        return [
            Authenticate(
                address, h(step.ciphertext1), h(step.random1), h(step.factor), step.operator
            )
        ]
    requests = _sealed_requests(step, address)
    if step.readback is not None:
        requests.append(ReadBack(address, h(step.readback), step.operator))
    return requests


def step_report(
    step: AuthenticateStep | ControlStep | WriteStep, replies: list[Reply | None]
) -> tuple[CommandState, str | None, StepReport]:
    """The result of ``step`` from the meter's replies (None = no reply in time).

    ``executed`` means every request was accepted; for a control the gateway then reads the
    relay back and may still report ``failed``.
    """
    base: dict[str, Any] = {"step": step.step, "session": step.session}
    expected = 1 if isinstance(step, AuthenticateStep) else len(_sealed_requests(step, "0" * 12))
    done = 0
    for reply in replies:
        if done == expected and not isinstance(step, AuthenticateStep):
            # the read-back after every sealed frame was accepted: its data and MAC, if any
            # (a refused or missing read-back leaves ``readback`` empty; the head-end judges)
            if isinstance(reply, ReadBackData):
                base["readback"] = ReadBackReport(
                    identifier=reply.identifier.hex().upper(),
                    data=reply.data.hex().upper(),
                    mac=reply.mac.hex().upper(),
                )
            break
        if reply is None:
            report = StepReport(**base, outcome="no_reply", done=done)
            return CommandState.FAILED, "the meter did not answer", report
        if isinstance(reply, AbnormalReply):
            report = StepReport(**base, outcome="refused", reasons=reply.reasons, done=done)
            why = ", ".join(reply.reasons) or f"error {reply.error:#x}"
            return CommandState.FAILED, f"the meter refused the {step.step} step: {why}", report
        if isinstance(step, AuthenticateStep) and isinstance(reply, Authenticated):
            report = StepReport(
                **base,
                random2=reply.random2.hex().upper(),
                esam_serial=reply.esam_serial.hex().upper(),
            )
            return CommandState.EXECUTED, None, report
        if not isinstance(reply, ControlAck | WriteAck):
            report = StepReport(**base, outcome="unexpected", done=done)
            return CommandState.FAILED, f"unexpected reply {type(reply).__name__}", report
        done += 1
    if done < expected:
        report = StepReport(**base, outcome="no_reply", done=done)
        return CommandState.FAILED, "the step was not completed", report
    return CommandState.EXECUTED, None, StepReport(**base, done=done)


CLOCK_DIS = (0x04000101, 0x04000102)  # what a gateway reads back after a clock set


def with_clock(report: StepReport, day: date, clock: time) -> StepReport:
    """``report`` with the clock the gateway read back (04000101 then 04000102) after a set."""
    return report.model_copy(update={"meter_time": datetime.combine(day, clock)})


def late_report(step: ControlStep | WriteStep) -> tuple[CommandState, str, StepReport]:
    """What a gateway reports when a step reaches it at or after ``session_until``."""
    report = StepReport(step=step.step, session=step.session, outcome="late")
    return CommandState.FAILED, "the session's validity window had passed", report
