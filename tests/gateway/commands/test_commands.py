"""Commands against simulated DL/T 645 meters: sans-IO master ↔ the simulators' slave, no port."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.commands import CommandExecutor, MeterFailure
from gateway.store.store import Store
from protocols.dlt645 import NEED_DATA, Master, Request, Version
from protocols.uplink.messages import (
    ArchiveMeter,
    Command,
    CommandAction,
    CommandResult,
    CommandState,
)
from simulators.dlt645.meter import Dlt645Listener
from simulators.meter import Control, Meter, MeterSpec, Relay
from taiqu.clock import ManualClock

ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 2, 10, 30, tzinfo=ZONE)
GW = "gw-0001"
ADDRESSES = [f"20261124{n:04d}" for n in range(1, 6)]


class Bench:
    """Simulated meters on one bus, a store, the executor and what it published."""

    def __init__(self, tmp_path, *, synced=True, window=300.0, seed=7, **kw) -> None:
        self.clock = ManualClock(START)
        self.path = tmp_path / "store.db"
        self.store = Store.open(self.path, clock=self.clock)
        origin = START.timestamp() - 86400
        self.meters = {a: Meter(MeterSpec(address=a), origin) for a in ADDRESSES}
        for m in self.meters.values():  # meter clocks set right now (no drift since origin)
            m.set_time(START.timestamp(), START.replace(tzinfo=None))
        self.listener = Dlt645Listener(Version.V2007, self.meters.values())
        self.master = Master()
        self.synced = synced
        self.sent: list[Request] = []
        self.results: list[CommandResult] = []
        self.archive = {
            a: ArchiveMeter(id=a, bus="bus1", protocol="dlt645-2007", address=a) for a in ADDRESSES
        }
        self.archive["modbus-7"] = ArchiveMeter(
            id="modbus-7", bus="bus2", protocol="modbus", address="7"
        )
        self.kw = {"reconnect_window_s": window, "rng": random.Random(seed), **kw}
        self.executor = self.make_executor()

    def make_executor(self) -> CommandExecutor:
        return CommandExecutor(
            GW,
            store=self.store,
            publish=self.results.append,
            transact=self.transact,
            meters=lambda: self.archive,
            clock=self.clock,
            clock_synced=lambda: self.synced,
            **self.kw,
        )

    async def transact(self, meter_id: str, request: Request):
        self.sent.append(request)
        answers = self.listener.feed(self.master.send(request), self.clock.now().timestamp())
        if not self.master.awaiting_reply:
            return None  # a broadcast
        for answer in answers:
            self.master.receive_data(answer.data)
        reply = self.master.next_event()
        if reply is NEED_DATA:
            self.master.abandon()
            raise TimeoutError(f"{meter_id} did not answer")
        return reply

    def ts(self) -> float:
        return self.clock.now().timestamp()

    def relay(self, address: str) -> Relay:
        return self.meters[address].relay(self.ts())

    def steps(self, command_id: str, meter: str | None = None) -> list[CommandState]:
        return [r.state for r in self.results if r.id == command_id and r.meter == meter]


_seq = iter(range(1, 10_000))


def command(action: CommandAction, meters=(ADDRESSES[0],), *, minutes=10, **kw) -> Command:
    now = kw.pop("now", START)
    return Command(
        id=kw.pop("id", f"cmd-{next(_seq)}"),
        gateway=kw.pop("gateway", GW),
        meters=meters,
        action=action,
        issued=now,
        valid_until=now + timedelta(minutes=minutes),
        nonce="n0nce-12345678",
        **kw,
    )


@pytest.fixture
def bench(tmp_path) -> Bench:
    return Bench(tmp_path)


async def test_trip_opens_the_simulated_relay_and_ends_executed_with_the_read_back(bench):
    cmd = command(CommandAction.RELAY_TRIP)
    assert await bench.executor.handle(cmd) is CommandState.EXECUTED
    assert bench.relay(ADDRESSES[0]) is Relay.OPEN
    assert bench.steps(cmd.id) == ["received", "executing", "executed"]
    (per_meter,) = [r for r in bench.results if r.meter == ADDRESSES[0]]
    assert per_meter.state is CommandState.EXECUTED
    assert per_meter.detail["relay"] == "open" and per_meter.detail["status_word3"] & 0x10
    assert [type(r).__name__ for r in bench.sent] == ["RemoteControl", "ReadData"]
    assert bench.sent[1].di == 0x04000503
    logged = [s["state"] for s in bench.store.command_log(cmd.id)]
    assert logged == ["received", "executing", "executed", "executed"]


async def test_close_allowed_stays_armed_until_the_customer_presses_the_button(bench):
    meter = ADDRESSES[0]
    await bench.executor.handle(command(CommandAction.RELAY_TRIP))
    cmd = command(CommandAction.RELAY_CLOSE_ALLOWED)
    assert await bench.executor.handle(cmd) is CommandState.EXECUTED  # summary: armed counts
    assert bench.steps(cmd.id, meter) == ["armed"]
    assert bench.relay(meter) is Relay.ARMED
    assert bench.executor.armed() == {meter: cmd.id}
    # a sweep still sees it open: nothing happens
    sw3 = await bench.executor.read_status3(bench.archive[meter])
    assert bench.executor.observe_relay(meter, "open" if sw3 & 0x10 else "closed") is None
    bench.clock.advance(600)
    assert bench.meters[meter].press_button(bench.ts())
    sw3 = await bench.executor.read_status3(bench.archive[meter])
    done = bench.executor.observe_relay(meter, "open" if sw3 & 0x10 else "closed")
    assert done is not None and done.id == cmd.id and done.state is CommandState.EXECUTED
    assert done.detail["by"] == "customer"
    assert bench.steps(cmd.id, meter) == ["armed", "executed"]
    assert bench.executor.armed() == {}


async def test_the_armed_state_survives_a_restart(bench):
    meter = ADDRESSES[0]
    await bench.executor.handle(command(CommandAction.RELAY_TRIP))
    cmd = command(CommandAction.RELAY_CLOSE_ALLOWED)
    await bench.executor.handle(cmd)
    bench.store.close()
    bench.store = Store.open(bench.path, clock=bench.clock)
    executor = bench.make_executor()
    assert executor.armed() == {meter: cmd.id}
    assert executor.observe_relay(meter, "closed").id == cmd.id


async def test_a_later_relay_command_supersedes_an_armed_one(bench):
    meter = ADDRESSES[0]
    await bench.executor.handle(command(CommandAction.RELAY_TRIP))
    armed = command(CommandAction.RELAY_CLOSE_ALLOWED)
    await bench.executor.handle(armed)
    await bench.executor.handle(command(CommandAction.RELAY_TRIP))
    assert bench.steps(armed.id, meter) == ["armed", "failed"]
    assert bench.executor.armed() == {}


async def test_direct_close_closes_the_relay(bench):
    meter = ADDRESSES[1]
    await bench.executor.handle(command(CommandAction.RELAY_TRIP, (meter,)))
    cmd = command(CommandAction.RELAY_CLOSE_DIRECT, (meter,))
    assert await bench.executor.handle(cmd) is CommandState.EXECUTED
    assert bench.relay(meter) is Relay.CLOSED
    assert bench.steps(cmd.id, meter) == ["executed"]


async def test_an_expired_command_is_refused_without_touching_the_bus(bench):
    cmd = command(CommandAction.RELAY_TRIP, now=START - timedelta(hours=1), minutes=30)
    assert await bench.executor.handle(cmd) is CommandState.EXPIRED
    assert bench.sent == [] and bench.relay(ADDRESSES[0]) is Relay.CLOSED
    assert bench.steps(cmd.id) == ["received", "expired"]


async def test_a_repeated_command_is_never_executed_twice_even_after_a_restart(bench):
    meter = ADDRESSES[0]
    cmd = command(CommandAction.RELAY_TRIP)
    await bench.executor.handle(cmd)
    bench.meters[meter].control(bench.ts(), Control.CLOSE)
    assert bench.relay(meter) is Relay.CLOSED  # closed on site meanwhile
    sent = len(bench.sent)
    assert await bench.executor.handle(cmd) is CommandState.REFUSED
    bench.store.close()
    bench.store = Store.open(bench.path, clock=bench.clock)
    assert await bench.make_executor().handle(cmd) is CommandState.REFUSED
    assert len(bench.sent) == sent and bench.relay(meter) is Relay.CLOSED
    dups = [r for r in bench.results if r.id == cmd.id and r.reason == "duplicate"]
    assert len(dups) == 2 and dups[0].detail["last"] == "executed"


async def test_a_relay_command_while_the_clock_is_unsynced_is_refused_with_that_rule(tmp_path):
    bench = Bench(tmp_path, synced=False)
    cmd = command(CommandAction.RELAY_TRIP)
    assert await bench.executor.handle(cmd) is CommandState.REFUSED
    refused = [r for r in bench.results if r.state is CommandState.REFUSED]
    assert refused[0].reason == "clock_unsynced"
    assert bench.sent == [] and bench.relay(ADDRESSES[0]) is Relay.CLOSED


async def test_a_meter_refusal_fails_with_the_meters_named_reason(tmp_path):
    bench = Bench(tmp_path, password="02123456")
    cmd = command(CommandAction.RELAY_TRIP)
    assert await bench.executor.handle(cmd) is CommandState.FAILED
    (failed,) = [r for r in bench.results if r.meter == ADDRESSES[0]]
    assert failed.state is CommandState.FAILED
    assert "password" in failed.reason
    assert bench.relay(ADDRESSES[0]) is Relay.CLOSED


async def test_keep_power_refuses_a_trip_and_the_read_back_shows_it(bench):
    meter = ADDRESSES[2]
    on = command(CommandAction.KEEP_POWER_ON, (meter,))
    assert await bench.executor.handle(on) is CommandState.EXECUTED
    trip = command(CommandAction.RELAY_TRIP, (meter,))
    assert await bench.executor.handle(trip) is CommandState.FAILED
    (failed,) = [r for r in bench.results if r.id == trip.id and r.meter == meter]
    assert failed.reason  # the meter's own reason ("other error")
    assert bench.relay(meter) is Relay.CLOSED


async def test_a_silent_meter_fails_with_no_reply(bench):
    meter = ADDRESSES[3]
    bench.meters[meter].set_power(bench.ts() - 1, False)
    cmd = command(CommandAction.RELAY_TRIP, (meter,))
    assert await bench.executor.handle(cmd) is CommandState.FAILED
    (failed,) = [r for r in bench.results if r.meter == meter]
    assert failed.reason.startswith("no_reply")


async def test_mass_reconnects_are_spread_over_the_window_and_seeded(tmp_path):
    window = 900.0
    times = []
    for _ in range(2):
        bench = Bench(tmp_path / str(len(times)), window=window, seed=42)
        await bench.executor.handle(command(CommandAction.RELAY_TRIP, tuple(ADDRESSES)))
        start = bench.ts()
        cmd = command(CommandAction.RELAY_CLOSE_DIRECT, tuple(ADDRESSES), minutes=60)
        assert await bench.executor.handle(cmd) is CommandState.EXECUTED
        closes = sorted(
            ts - start
            for m in bench.meters.values()
            for ts, state, why in m.relay_log
            if state == "closed"
        )
        assert len(closes) == len(ADDRESSES)
        assert all(0 <= c <= window for c in closes)
        assert closes[-1] - closes[0] > window / 10  # not all at once
        times.append(closes)
    assert times[0] == times[1]  # the same seed spreads the same way


async def test_a_spread_turn_after_valid_until_expires_for_that_meter(tmp_path):
    bench = Bench(tmp_path, window=3600.0, seed=3)
    await bench.executor.handle(command(CommandAction.RELAY_TRIP, tuple(ADDRESSES)))
    cmd = command(CommandAction.RELAY_CLOSE_DIRECT, tuple(ADDRESSES), minutes=20)
    final = await bench.executor.handle(cmd)
    states = {m: bench.steps(cmd.id, m)[-1] for m in ADDRESSES}
    assert CommandState.EXPIRED in states.values()
    assert final is not CommandState.EXECUTED
    for m, state in states.items():
        assert (bench.relay(m) is Relay.CLOSED) == (state is CommandState.EXECUTED)


async def test_unknown_meters_and_other_protocols_are_refused_per_meter(bench):
    cmd = command(CommandAction.RELAY_TRIP, (ADDRESSES[0], "999999999999", "modbus-7"))
    assert await bench.executor.handle(cmd) is CommandState.FAILED
    assert bench.steps(cmd.id, "999999999999") == ["refused"]
    assert bench.steps(cmd.id, "modbus-7") == ["refused"]
    assert bench.steps(cmd.id, ADDRESSES[0]) == ["executed"]
    only_unknown = command(CommandAction.RELAY_TRIP, ("999999999999",))
    assert await bench.executor.handle(only_unknown) is CommandState.REFUSED


async def test_wrong_gateway_and_bad_signature_are_refused(tmp_path):
    bench = Bench(tmp_path, verify_signature=lambda c: None if c.signature else "unsigned")
    other = command(CommandAction.RELAY_TRIP, gateway="gw-9999")
    assert await bench.executor.handle(other) is CommandState.REFUSED
    unsigned = command(CommandAction.RELAY_TRIP)
    assert await bench.executor.handle(unsigned) is CommandState.REFUSED
    reasons = [r.reason for r in bench.results if r.state is CommandState.REFUSED]
    assert reasons == ["wrong_gateway", "signature: unsigned"]
    assert bench.sent == []


async def test_the_default_signature_check_accepts_unsigned_commands(bench):
    assert await bench.executor.handle(command(CommandAction.ALARM)) is CommandState.EXECUTED
    assert bench.meters[ADDRESSES[0]].alarm


async def test_time_sync_broadcasts_only_for_small_drift_outside_the_windows(bench):
    ts = bench.ts()
    meters = bench.meters
    meters[ADDRESSES[0]].set_time(ts, (START + timedelta(seconds=90)).replace(tzinfo=None))
    meters[ADDRESSES[1]].set_time(ts, (START + timedelta(minutes=20)).replace(tzinfo=None))
    cmd = command(CommandAction.TIME_SYNC, tuple(ADDRESSES[:3]))
    await bench.executor.handle(cmd)
    assert bench.steps(cmd.id, ADDRESSES[0]) == ["executed"]
    assert bench.steps(cmd.id, ADDRESSES[1]) == ["failed"]  # needs a site visit
    assert bench.steps(cmd.id, ADDRESSES[2]) == ["executed"]  # within tolerance
    assert sum(type(r).__name__ == "BroadcastTimeSync" for r in bench.sent) == 1
    drift = meters[ADDRESSES[0]].meter_time(ts).replace(tzinfo=ZONE) - START
    assert abs(drift.total_seconds()) < 1


async def test_time_sync_in_the_freeze_window_is_refused(tmp_path):
    bench = Bench(tmp_path)
    bench.clock.current = START.replace(hour=11, minute=3)
    meter = bench.meters[ADDRESSES[0]]
    meter.set_time(
        bench.ts(),
        (bench.clock.now() + timedelta(seconds=60)).astimezone(ZONE).replace(tzinfo=None),
    )
    cmd = command(CommandAction.TIME_SYNC, (ADDRESSES[0],), now=bench.clock.now())
    await bench.executor.handle(cmd)
    (res,) = [r for r in bench.results if r.meter == ADDRESSES[0]]
    assert res.state is CommandState.REFUSED and res.reason == "freeze_window"
    assert not any(type(r).__name__ == "BroadcastTimeSync" for r in bench.sent)


async def test_time_sync_while_unsynced_is_refused(tmp_path):
    bench = Bench(tmp_path, synced=False)
    cmd = command(CommandAction.TIME_SYNC)
    assert await bench.executor.handle(cmd) is CommandState.REFUSED
    assert bench.sent == []


async def test_reads_are_delegated_and_their_failures_named(tmp_path):
    calls = []

    async def read(cmd, meter):
        calls.append((cmd.id, meter, cmd.params))
        if meter == ADDRESSES[1]:
            raise MeterFailure("meter unavailable")
        return {"readings": 3}

    bench = Bench(tmp_path, read=read)
    cmd = command(
        CommandAction.READ,
        tuple(ADDRESSES[:2]),
        params={"quantities": ["energy.active.import.total"]},
    )
    assert await bench.executor.handle(cmd) is CommandState.FAILED
    assert [c[1] for c in calls] == list(ADDRESSES[:2])
    results = {r.meter: r for r in bench.results if r.meter}
    assert results[ADDRESSES[0]].detail == {"readings": 3}
    assert results[ADDRESSES[1]].reason == "meter unavailable"
    # an action without a handler is refused, not dropped
    backfill = command(CommandAction.BACKFILL)
    assert await bench.executor.handle(backfill) is CommandState.REFUSED


async def test_all_meters_means_the_whole_archive(tmp_path):
    seen = []

    async def read(cmd, meter):
        seen.append(meter)
        return {}

    bench = Bench(tmp_path, read=read)
    assert await bench.executor.handle(command(CommandAction.READ, None)) is CommandState.EXECUTED
    assert sorted(seen) == sorted(bench.archive)


async def test_archive_update_is_delegated(tmp_path):
    async def update(cmd):
        return {"version": cmd.params["version"]}

    bench = Bench(tmp_path, archive_update=update)
    cmd = command(CommandAction.ARCHIVE_UPDATE, None, params={"version": 4})
    assert await bench.executor.handle(cmd) is CommandState.EXECUTED
    assert bench.results[-1].detail == {"version": 4}


def test_a_negative_window_is_rejected(tmp_path):
    with pytest.raises(ValueError):
        Bench(tmp_path, window=-1)
