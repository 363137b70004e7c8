"""Relays that switch late and clocks that do not take a sync: the executor reads back."""

from __future__ import annotations

from dataclasses import replace
from datetime import date, datetime, time, timedelta

from gateway.commands.clock import meter_clock
from gateway.commands.types import DI_STATUS_WORD3
from protocols.dlt645 import BroadcastTimeSync, ReadData, ReadReply
from protocols.dlt645.layouts import StatusWord
from protocols.uplink.messages import CommandAction, CommandState
from tests.gateway.commands.test_commands import ADDRESSES, START, Bench, command


class DelayedRelay(Bench):
    """The first meter's relay shows open only ``delay`` seconds after the trip command."""

    def __init__(self, tmp_path, delay: float, **kw) -> None:
        super().__init__(tmp_path, **kw)
        self.delay = delay
        self.tripped_at: datetime | None = None

    async def transact(self, meter_id, request):
        reply = await super().transact(meter_id, request)
        if type(request).__name__ == "RemoteControl" and self.tripped_at is None:
            self.tripped_at = self.clock.now()
        late = self.tripped_at and self.clock.now() - self.tripped_at < timedelta(
            seconds=self.delay
        )
        if isinstance(request, ReadData) and request.di == DI_STATUS_WORD3 and late:
            assert isinstance(reply, ReadReply)
            word = reply.values["status.word3"]
            closed = StatusWord(word.number, word.raw & ~0x10, tuple(
                f for f in word.flags if "relay" not in f))
            return replace(reply, values={"status.word3": closed})
        return reply


async def test_a_relay_with_a_trip_delay_ends_executed_after_pending(tmp_path) -> None:
    bench = DelayedRelay(tmp_path, delay=30, readback_deadline_s=120, readback_interval_s=5)
    cmd = command(CommandAction.RELAY_TRIP)
    assert await bench.executor.handle(cmd) is CommandState.EXECUTED
    steps = [(r.state, r.reason) for r in bench.results if r.meter == ADDRESSES[0]]
    assert steps == [(CommandState.EXECUTING, "awaiting relay"), (CommandState.EXECUTED, None)]
    pending = bench.results[[r.meter for r in bench.results].index(ADDRESSES[0])]
    assert pending.detail["pending"] is True and pending.detail["relay"] == "closed"
    assert 30 <= (bench.clock.now() - START).total_seconds() <= 40


async def test_a_relay_that_never_switches_fails_at_the_deadline(tmp_path) -> None:
    bench = DelayedRelay(tmp_path, delay=10_000, readback_deadline_s=60, readback_interval_s=5)
    cmd = command(CommandAction.RELAY_TRIP, minutes=30)
    assert await bench.executor.handle(cmd) is CommandState.FAILED
    final = [r for r in bench.results if r.meter == ADDRESSES[0]][-1]
    assert final.state is CommandState.FAILED and "after 60 s" in (final.reason or "")
    assert (bench.clock.now() - START).total_seconds() >= 60


def test_a_clock_read_across_midnight_is_not_off_by_a_day() -> None:
    d1, d2 = date(2026, 3, 2), date(2026, 3, 3)
    assert meter_clock(d1, time(23, 59, 59), d2) == datetime(2026, 3, 2, 23, 59, 59)
    assert meter_clock(d1, time(0, 0, 1), d2) == datetime(2026, 3, 3, 0, 0, 1)
    assert meter_clock(d2, time(0, 0, 1), d2) == datetime(2026, 3, 3, 0, 0, 1)


class DeafClock(Bench):
    """A strict meter: takes no broadcast time (outside its rules)."""

    async def transact(self, meter_id, request):
        if isinstance(request, BroadcastTimeSync):
            self.sent.append(request)
            return None
        return await super().transact(meter_id, request)


async def test_a_time_sync_the_meter_ignores_is_reported_failed_with_the_drift_after(
    tmp_path,
) -> None:
    bench = DeafClock(tmp_path)
    for m in bench.meters.values():  # 90 s behind
        m.set_time(START.timestamp(), (START - timedelta(seconds=90)).replace(tzinfo=None))
    cmd = command(CommandAction.TIME_SYNC)
    assert await bench.executor.handle(cmd) is CommandState.FAILED
    (result,) = [r for r in bench.results if r.meter == ADDRESSES[0]]
    assert result.reason == "clock_not_set: still off after the sync"
    assert abs(result.detail["drift_s"] + 90) < 2 and abs(result.detail["drift_after_s"] + 90) < 2


async def test_an_ordered_time_sync_reads_the_clock_back_and_keeps_the_daily_rule(tmp_path) -> None:
    bench = Bench(tmp_path)
    for m in bench.meters.values():
        m.set_time(START.timestamp(), (START - timedelta(seconds=90)).replace(tzinfo=None))
    first = command(CommandAction.TIME_SYNC)
    assert await bench.executor.handle(first) is CommandState.EXECUTED
    (done,) = [r for r in bench.results if r.id == first.id and r.meter == ADDRESSES[0]]
    assert abs(done.detail["drift_after_s"]) < 3
    for m in bench.meters.values():  # drifts again the same day
        local = bench.clock.now().astimezone(START.tzinfo) - timedelta(seconds=90)
        m.set_time(bench.ts(), local.replace(tzinfo=None))
    bench.clock.advance(3600)
    second = command(CommandAction.TIME_SYNC, now=bench.clock.now())
    await bench.executor.handle(second)
    (again,) = [r for r in bench.results if r.id == second.id and r.meter == ADDRESSES[0]]
    assert again.state is CommandState.REFUSED and again.reason == "already_today"
