"""Time sync ordered by the head-end: read each meter's clock, broadcast, read it back.

Per bus::

    DL/T 698.45 meters: GET 4000 ─► SET 4000 (password association) ─► GET 4000 (commands.dlt698)
    read clock (date, time, date again) of each DL/T 645 meter ──► drift
    plan_bus_time_sync(drifts, now, last broadcast on the bus, policy)  ── skip ──► refused: why
    broadcast 08H (at each line setting the drifting meters use)
    read every synced meter's clock again ──► drift after; still off ──► failed: not set

The once-a-day rule and the freeze window around midnight hold for ordered syncs too (meters
with a strict clock ignore a second sync or one near midnight and would report success
falsely); the refusal names the rule.  A read across midnight is never off by a day: the date
is read before and after the time, and the time picks the date it belongs to.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime, time
from typing import Any
from zoneinfo import ZoneInfo

from gateway.clock.sync import TimeSyncPolicy, broadcast_time, plan_bus_time_sync
from gateway.commands.types import (
    DI_DATE,
    DI_TIME,
    PROTOCOL_698,
    TIME_SYNC_KEY,
    CommandStore,
    MeterFailure,
    MeterLike,
    Outcome,
    Transact,
)
from protocols.dlt645 import AbnormalReply, BroadcastTimeSync, ReadData, ReadReply
from protocols.model import MeterTime
from protocols.uplink.messages import CommandState
from taiqu.clock import Clock


def meter_clock(first_day: date, tod: time, second_day: date) -> datetime:
    """The meter's wall time from date, time, date read in that order (midnight-safe)."""
    if first_day == second_day:
        return datetime.combine(first_day, tod)
    # the date turned while we read: a time before noon belongs to the new day
    return datetime.combine(second_day if tod < time(12) else first_day, tod)


class MeterClocks:
    """Reads meter clocks and carries out ordered time syncs (see the module docstring)."""

    def __init__(
        self,
        transact: Transact,
        store: CommandStore,
        clock: Clock,
        zone: str,
        baud_of: Callable[[str], int],
        policy: TimeSyncPolicy,
        password: Callable[[str], str] = lambda _meter: "000000",
    ) -> None:
        self.transact = transact
        self.store = store
        self.clock = clock
        self.zone = zone
        self.baud_of = baud_of
        self.policy = policy
        self.password = password  # a 698 meter's password (for its password association)

    async def _value(self, meter: MeterLike, di: int, key: str) -> Any:
        reply = await self.transact(meter.id, ReadData(meter.address, di))
        if not isinstance(reply, ReadReply):
            reasons = reply.reasons if isinstance(reply, AbnormalReply) else ()
            raise MeterFailure("clock read refused: " + ", ".join(reasons))
        value = reply.values.get(key)
        if value is None:
            raise MeterFailure("clock read: meter clock invalid")
        return value

    async def drift(self, meter: MeterLike) -> float:
        """Meter clock − gateway clock, in seconds."""
        first = await self._value(meter, DI_DATE, "meter.date")
        tod = await self._value(meter, DI_TIME, "meter.time")
        then = self.clock.now()
        second = await self._value(meter, DI_DATE, "meter.date")
        meter_now = MeterTime(meter_clock(first, tod, second), self.zone)
        return (meter_now.utc - then).total_seconds()

    def _last(self, bus: str) -> datetime | None:
        value = (self.store.get_state(TIME_SYNC_KEY, {}) or {}).get(bus)
        try:
            return datetime.fromisoformat(value) if value else None
        except ValueError:
            return None

    async def time_sync(self, targets: Sequence[MeterLike]) -> dict[str, Outcome]:
        """Outcome per meter id of an ordered time sync of ``targets``."""
        by_bus: dict[str, list[MeterLike]] = {}
        for meter in targets:
            by_bus.setdefault(meter.bus, []).append(meter)
        outcomes: dict[str, Outcome] = {}
        for bus, meters in by_bus.items():
            outcomes.update(await self._sync_bus(bus, meters))
        return outcomes

    async def _sync_bus(self, bus: str, meters: Iterable[MeterLike]) -> dict[str, Outcome]:
        drifts: dict[str, float] = {}
        results: dict[str, Outcome] = {}
        eligible: list[MeterLike] = []
        for meter in meters:
            if meter.protocol == PROTOCOL_698:  # addressed SET 4000, not a broadcast
                results[meter.id] = await self._set_698(meter)
                continue
            if not meter.protocol.startswith("dlt645"):
                results[meter.id] = Outcome(CommandState.REFUSED, "unsupported_protocol")
                continue
            try:
                drifts[meter.id] = await self.drift(meter)
                eligible.append(meter)
            except MeterFailure as exc:
                results[meter.id] = Outcome(CommandState.FAILED, str(exc))
            except Exception as exc:
                results[meter.id] = Outcome(CommandState.FAILED, f"no_reply: {exc}")
        tz = ZoneInfo(self.zone)
        now_local = self.clock.now().astimezone(tz)
        last = self._last(bus)
        plan = plan_bus_time_sync(
            drifts, now_local, last.replace(tzinfo=tz) if last else None, policy=self.policy
        )
        after: Mapping[str, float] = {}
        if plan.broadcast:
            when = broadcast_time(now_local, self.baud_of(bus)).replace(tzinfo=None)
            await self.transact(eligible[0].id, BroadcastTimeSync(when))
            stored = self.store.get_state(TIME_SYNC_KEY, {}) or {}
            self.store.set_state(TIME_SYNC_KEY, {**stored, bus: when.isoformat()})
            after = await self._read_back([m for m in eligible if m.id in plan.needing])
        for meter in eligible:
            detail: dict[str, Any] = {"drift_s": round(drifts[meter.id], 1)}
            if meter.id in after:
                detail["drift_after_s"] = round(after[meter.id], 1)
            results[meter.id] = self._outcome(meter.id, plan, detail, after)
        return results

    async def _set_698(self, meter: MeterLike) -> Outcome:
        from gateway.commands import dlt698  # the 698 codec only once a 698 meter is synced

        try:
            return await dlt698.set_clock(
                self.transact,
                meter,
                self.clock.now,
                self.zone,
                self.password(meter.id),
                self.policy,
            )
        except MeterFailure as exc:
            return Outcome(CommandState.FAILED, str(exc))
        except Exception as exc:
            return Outcome(CommandState.FAILED, f"no_reply: {exc}")

    async def _read_back(self, meters: Sequence[MeterLike]) -> dict[str, float]:
        out: dict[str, float] = {}
        for meter in meters:
            try:
                out[meter.id] = await self.drift(meter)
            except Exception:  # no read-back: judged below as not verified
                continue
        return out

    def _outcome(
        self, meter: str, plan: Any, detail: dict[str, Any], after: Mapping[str, float]
    ) -> Outcome:
        if meter in plan.site_visits:
            return Outcome(CommandState.FAILED, "drift_too_large: site visit", detail)
        if meter not in plan.needing:
            return Outcome(CommandState.EXECUTED, "in_tolerance", detail)
        if not plan.broadcast:
            reason = plan.skip.reason.value if plan.skip else "not_sent"
            return Outcome(CommandState.REFUSED, reason, detail)
        if meter not in after:
            return Outcome(CommandState.FAILED, "not_verified: clock not read back", detail)
        if abs(after[meter]) > max(self.policy.min_drift_s, 2.0):
            return Outcome(CommandState.FAILED, "clock_not_set: still off after the sync", detail)
        return Outcome(CommandState.EXECUTED, None, detail)
