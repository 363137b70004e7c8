"""Secured steps for cost-control (ESAM) meters: the gateway's side of the chain.

A command whose ``params`` carries ``esam`` is one step of the head-end's chain (docs/mqtt.md,
"Secured steps"): authenticate (03H 070000FF), control (1CH, level 98: ciphertext + MAC) or
MAC-protected writes (14H, level 98/99, e.g. the meter clock).  The gateway holds no key and no
session: everything it sends is in the signed step.  Per meter::

    step past session_until ──► failed "late" (nothing sent to the meter)
    send step_requests one by one; stop at the first refusal or silence ──► step_report
    control executed ──► read status word 3 back until the relay moved (as for plaintext)
    clock write executed ──► read date and time back (the head-end judges the offset)
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from gateway.commands.types import MeterLike, Outcome
from protocols.dlt645 import AbnormalReply, ReadData, ReadReply, Reply
from protocols.uplink.messages import Command, CommandAction, CommandState
from protocols.uplink.secured import (
    CLOCK_DIS,
    AuthenticateStep,
    ControlStep,
    WriteStep,
    late_report,
    step_report,
    step_requests,
    with_clock,
)

if TYPE_CHECKING:
    from gateway.commands.executor import CommandExecutor

Step = AuthenticateStep | ControlStep | WriteStep


def _detail(report: Any, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {**(extra or {}), "esam": report.model_dump(mode="json")}


async def run_step(ex: CommandExecutor, command: Command, meter: MeterLike, step: Step) -> Outcome:
    """Carry out one secured step on ``meter`` (see the module docstring)."""
    if meter.protocol != "dlt645-2007":
        return Outcome(CommandState.REFUSED, "unsupported_protocol")
    if isinstance(step, ControlStep | WriteStep) and ex.clock.now() >= step.session_until:
        late_state, why, late = late_report(step)
        return Outcome(late_state, why, _detail(late))
    if isinstance(step, ControlStep) and command.action is not CommandAction.TIME_SYNC:
        ex.supersede(meter.id, command.id)
    replies: list[Reply | None] = []
    for request in step_requests(step, meter.address):
        try:
            reply = cast("Reply | None", await ex.transact(meter.id, request))  # a 645 meter
        except Exception:  # silence after retries, the link down: no reply to this request
            reply = None
        replies.append(reply)
        if reply is None or isinstance(reply, AbnormalReply):
            break
    state, reason, report = step_report(step, replies)
    if state is not CommandState.EXECUTED:
        return Outcome(state, reason, _detail(report))
    if isinstance(step, ControlStep):
        moved = await ex.await_relay(command, meter)
        return Outcome(moved.state, moved.reason, _detail(report, dict(moved.detail or {})))
    if isinstance(step, WriteStep) and command.action is CommandAction.TIME_SYNC:
        values: dict[str, Any] = {}
        for di in CLOCK_DIS:
            read = await ex.transact(meter.id, ReadData(meter.address, di))
            if isinstance(read, ReadReply):
                values.update(read.values)
        day, clock = values.get("meter.date"), values.get("meter.time")
        if day is None or clock is None:
            return Outcome(CommandState.FAILED, "clock set: clock not read back", _detail(report))
        report = with_clock(report, day, clock)
    return Outcome(CommandState.EXECUTED, None, _detail(report))
