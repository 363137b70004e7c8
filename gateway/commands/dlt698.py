"""Commands to DL/T 698.45 meters: relay control (8000/8001 methods) and clock set (4000 SET).

Plaintext for now (the secured form goes through the encryption seam once it lands)::

    CONNECT (password mechanism, the level-02 password of the meter's credentials)
    └── ACTION 8000 129 trip / 130 close (direct or allowed), 8001 127/128 keep power,
        with a time tag ending at the command's ``valid_until`` (a late command is refused
        by the meter, DAR 32, not executed)  ──►  GET 2014 status words: relay read-back
    CONNECT └── GET 4000 ─► drift ─► SET 4000 (gateway time) ─► GET 4000: drift after

Each CONNECT + request pair is one bus exchange (``Dlt698Request`` through ``transact``).  A DAR
fails the meter with its name.  An alarm (645 02H/03H) has no 698 method here: refused.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from gateway.clock.sync import SkipReason, TimeSyncPolicy
from gateway.commands.types import (
    PROTOCOL_698,
    Dlt698Request,
    MeterFailure,
    MeterLike,
    Outcome,
    Transact,
    password_of,
)
from protocols.dlt698 import apdu as A
from protocols.dlt698.axdr import NULL, Data
from protocols.dlt698.descriptors import OMD, TI, DataType, DateTimeS, dar_name
from protocols.dlt698.objects import (
    CLOCK,
    CLOSE,
    KEEP_POWER,
    KEEP_POWER_RELEASE,
    STATUS_WORDS,
    TRIP,
)
from protocols.dlt698.values import close_parameter, decode_value, trip_parameter
from protocols.freeze_window import in_freeze_window
from protocols.model import MeterTime
from protocols.uplink.messages import Command, CommandAction, CommandState

if TYPE_CHECKING:
    from gateway.commands.relay import RelayControl

PROTOCOL = PROTOCOL_698
MIN_TAG_MINUTES = 1


def _control(action: CommandAction) -> tuple[OMD, Data] | None:
    return {
        CommandAction.RELAY_TRIP: (TRIP, trip_parameter()),
        CommandAction.RELAY_CLOSE_DIRECT: (CLOSE, close_parameter(direct=True)),
        CommandAction.RELAY_CLOSE_ALLOWED: (CLOSE, close_parameter(direct=False)),
        CommandAction.KEEP_POWER_ON: (KEEP_POWER, NULL),
        CommandAction.KEEP_POWER_OFF: (KEEP_POWER_RELEASE, NULL),
    }.get(action)


def time_tag(now_local: datetime, until_local: datetime) -> A.TimeTag:
    """A time tag from now to ``until_local`` (whole minutes, at least one)."""
    minutes = max(MIN_TAG_MINUTES, int((until_local - now_local).total_seconds() // 60))
    return A.TimeTag(DateTimeS.of(now_local.replace(microsecond=0)), TI(1, min(minutes, 0xFFFF)))


async def control(executor: RelayControl, command: Command, meter: MeterLike) -> Outcome:
    """Carry out a relay / keep-power command on a 698 meter and read the relay back."""
    found = _control(command.action)
    if found is None:
        return Outcome(CommandState.REFUSED, "unsupported_action: no DL/T 698.45 method")
    omd, parameter = found
    tz = ZoneInfo(executor.zone)
    now_local = executor.clock.now().astimezone(tz).replace(tzinfo=None)
    until = MeterTime.from_utc(command.valid_until, executor.zone).local
    tag = time_tag(now_local, until)
    password = password_of(executor.credentials(meter.id).password)
    reply = await executor.transact(
        meter.id,
        Dlt698Request(lambda piid: A.ActionRequestNormal(piid, omd, parameter, tag), password),
    )
    _check(reply, A.ActionResponseNormal)
    return await executor.await_relay(command, meter)


def _check(reply: Any, expected: type) -> Any:
    if isinstance(reply, A.ConnectResponse):
        raise MeterFailure(f"association refused: CONNECT result {reply.result}")
    if isinstance(reply, A.ErrorResponse):
        raise MeterFailure(f"refused: ERROR-Response {reply.error}")
    if not isinstance(reply, expected):
        raise MeterFailure(f"unexpected reply {type(reply).__name__}")
    dar = getattr(reply, "dar", 0)
    result = getattr(reply, "result", None)
    if not dar and isinstance(result, A.ResultNormal):
        dar = result.dar
    if dar:
        raise MeterFailure(f"refused: {dar_name(dar)} (DAR {dar})")
    return reply


async def status_word3(transact: Transact, meter: MeterLike) -> int:
    """Status word 3 of a 698 meter (2014 attribute 2), the relay read-back."""
    reply = _check(
        await transact(meter.id, Dlt698Request(lambda p: A.GetRequestNormal(p, STATUS_WORDS))),
        A.GetResponseNormal,
    )
    data = reply.result.data
    word = decode_value(STATUS_WORDS, data).get("status.word3") if data is not None else None
    if not isinstance(word, int):
        raise MeterFailure("readback: status word 3 did not decode")
    return word


async def meter_drift(
    transact: Transact, meter: MeterLike, now: Callable[[], datetime], zone: str
) -> float:
    """Meter clock (4000) − gateway clock, in seconds."""
    reply = _check(
        await transact(meter.id, Dlt698Request(lambda p: A.GetRequestNormal(p, CLOCK))),
        A.GetResponseNormal,
    )
    then = now()
    data = reply.result.data
    clock = decode_value(CLOCK, data).get("meter.clock") if data is not None else None
    if not isinstance(clock, datetime):
        raise MeterFailure("clock read: meter clock invalid")
    return (MeterTime(clock, zone).utc - then).total_seconds()


async def set_clock(
    transact: Transact,
    meter: MeterLike,
    now: Callable[[], datetime],
    zone: str,
    password: str,
    policy: TimeSyncPolicy,
) -> Outcome:
    """Read the clock; SET 4000 to the gateway's time when it drifts; read it back."""
    drift = await meter_drift(transact, meter, now, zone)
    detail: dict[str, Any] = {"drift_s": round(drift, 1), "method": "set"}
    if abs(drift) <= policy.min_drift_s:
        return Outcome(CommandState.EXECUTED, "in_tolerance", detail)
    tz = ZoneInfo(zone)
    if in_freeze_window(now().astimezone(tz), policy.margin):
        return Outcome(CommandState.REFUSED, SkipReason.FREEZE_WINDOW.value, detail)

    def request(piid: int) -> A.Request:
        local = now().astimezone(tz).replace(tzinfo=None, microsecond=0)
        value = Data(DataType.DATE_TIME_S, DateTimeS.of(local + timedelta(seconds=1)))
        # the meter judges the tag by its own (wrong) clock: send it in the meter's time
        meter_local = local + timedelta(seconds=round(drift))
        return A.SetRequestNormal(piid, CLOCK, value, time_tag(meter_local, meter_local))

    _check(await transact(meter.id, Dlt698Request(request, password)), A.SetResponseNormal)
    after = await meter_drift(transact, meter, now, zone)
    detail["drift_after_s"] = round(after, 1)
    if abs(after) > max(policy.min_drift_s, 2.0):
        return Outcome(CommandState.FAILED, "clock_not_set: still off after the set", detail)
    return Outcome(CommandState.EXECUTED, None, detail)
