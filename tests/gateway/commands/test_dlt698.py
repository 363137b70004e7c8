"""Commands to DL/T 698.45 meters through the daemon's ``transact``, the bus worker and the 698
driver, against the simulator's 698 meters: relay control with read-back, clock set."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.commands import CommandExecutor
from gateway.config import parse_config
from gateway.daemon.ops import DaemonOps
from gateway.polling.frozen import FrozenReader
from gateway.store.store import Store
from protocols.dlt645 import ReadData
from protocols.uplink.messages import ArchiveMeter, Command, CommandAction, CommandState
from simulators.meter import Relay
from tests.gateway.polling.test_dlt698 import M1, M2, Rig

GW = "gw-698"
_seq = iter(range(1, 10_000))


class Bench:
    def __init__(self, tmp_path: Path, **kw: Any) -> None:
        self.rig = Rig()
        self.rig.clock.advance(30 * 60)  # 08:30 in Shanghai: outside the freeze window
        cfg = parse_config(
            {
                "gateway_id": GW,
                "data_dir": str(tmp_path / "gw"),
                "signatures": {"required": False},  # a test bench
                "buses": [{"name": "bus1", "port": "/dev/null"}],
                "meters": [{"bus": "bus1", "protocol": "dlt698", "address": a} for a in (M1, M2)],
            },
            tmp_path / "gw.toml",
        )
        self.store = Store.open(tmp_path / "store.db", clock=self.rig.clock)
        poller = self.rig.poller
        self.ops = DaemonOps(
            cfg, poller, FrozenReader(poller, self.store), self.store, self.rig.clock, lambda: True
        )
        self.results: list[Any] = []
        self.executor = CommandExecutor(
            GW,
            store=self.store,
            publish=self.results.append,
            transact=self.ops.transact,
            meters=lambda: {
                a: ArchiveMeter(id=a, bus="bus1", protocol="dlt698", address=a) for a in (M1, M2)
            },
            clock=self.rig.clock,
            clock_synced=lambda: True,
            readback_deadline_s=0,
            **kw,
        )

    def command(self, action: CommandAction, minutes: int = 10) -> Command:
        now = self.rig.clock.now()
        return Command(
            id=f"cmd-{next(_seq)}",
            gateway=GW,
            meters=(M1,),
            action=action,
            issued=now,
            valid_until=now + timedelta(minutes=minutes),
            nonce="n0nce-12345678",
        )

    def relay(self) -> Relay:
        return self.rig.fleet.meter(M1).relay(self.rig.clock.now().timestamp())

    def final(self, command: Command) -> Any:
        return [r for r in self.results if r.id == command.id and r.meter == M1][-1]


@pytest.fixture
async def bench(tmp_path: Path) -> Any:
    b = Bench(tmp_path)
    b.rig.worker.start()
    yield b
    await b.rig.worker.stop()
    b.store.close()


async def test_trip_and_close_switch_the_relay_and_are_read_back(bench: Bench) -> None:
    trip = bench.command(CommandAction.RELAY_TRIP)
    assert await bench.executor.handle(trip) is CommandState.EXECUTED
    assert bench.relay() is Relay.OPEN
    assert bench.final(trip).detail["relay"] == "open"
    close = bench.command(CommandAction.RELAY_CLOSE_DIRECT)
    assert await bench.executor.handle(close) is CommandState.EXECUTED
    assert bench.relay() is Relay.CLOSED
    # each command: CONNECT + ACTION in one exchange, then the status-word read-back
    assert bench.rig.worker.stats.transactions == 4


async def test_a_wrong_password_fails_the_command_and_leaves_the_relay(tmp_path: Path) -> None:
    from gateway.commands.secrets import MeterCredentials

    b = Bench(tmp_path, credentials=lambda _m: MeterCredentials("02999999", "00000000"))
    b.rig.worker.start()
    try:
        trip = b.command(CommandAction.RELAY_TRIP)
        assert await b.executor.handle(trip) is CommandState.FAILED
        assert "association refused" in (b.final(trip).reason or "")
        assert b.relay() is Relay.CLOSED
    finally:
        await b.rig.worker.stop()
        b.store.close()


async def test_an_alarm_has_no_698_method_and_is_refused(bench: Bench) -> None:
    alarm = bench.command(CommandAction.ALARM)
    await bench.executor.handle(alarm)
    assert bench.final(alarm).state is CommandState.REFUSED


async def test_time_sync_sets_a_drifting_698_clock_and_reads_it_back(bench: Bench) -> None:
    meter = bench.rig.fleet.meter(M1)
    ts = bench.rig.clock.now().timestamp()
    meter.set_time(ts, meter.meter_time(ts).replace(microsecond=0) + timedelta(seconds=95))
    sync = bench.command(CommandAction.TIME_SYNC)
    state = await bench.executor.handle(sync)
    assert state is CommandState.EXECUTED, bench.final(sync)
    detail = bench.final(sync).detail
    assert detail["method"] == "set" and 90 <= detail["drift_s"] <= 100
    assert abs(detail["drift_after_s"]) <= 2
    now = bench.rig.clock.now()
    local = now.astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    assert abs((meter.meter_time(now.timestamp()) - local).total_seconds()) <= 2


async def test_a_645_request_to_a_698_meter_is_refused(bench: Bench) -> None:
    from gateway.commands import MeterFailure

    with pytest.raises(MeterFailure, match="unsupported_protocol"):
        await bench.ops.transact(M1, ReadData(M1, 0x04000503))


async def test_a_trip_the_meter_sees_as_late_is_refused_not_executed(bench: Bench) -> None:
    meter = bench.rig.fleet.meter(M1)
    ts = bench.rig.clock.now().timestamp()
    meter.set_time(ts, meter.meter_time(ts) + timedelta(minutes=20))  # past the 10-minute tag
    trip = bench.command(CommandAction.RELAY_TRIP, minutes=10)
    assert await bench.executor.handle(trip) is CommandState.FAILED
    assert "DAR 32" in (bench.final(trip).reason or "")
    assert bench.relay() is Relay.CLOSED


async def test_a_drifting_698_meter_gets_a_698_broadcast_time_after_a_sweep(bench: Bench) -> None:
    from gateway.polling import Group
    from protocols.dlt698.frame import decode_frame

    meter = bench.rig.fleet.meter(M1)
    ts = bench.rig.clock.now().timestamp()
    meter.set_time(ts, meter.meter_time(ts) + timedelta(seconds=40))
    report = await bench.rig.poller.sweep(Group.EVENTS)
    assert any(v.drift_s and 35 < v.drift_s < 45 for v in report.visits)
    sent = len(bench.rig.link.written)
    assert await bench.ops.time_sync_after_sweep(report) == ["bus1:dlt698"]
    (frame,) = bench.rig.link.written[sent:]  # one frame: 698's, to the broadcast address
    decoded = decode_frame(frame)
    assert decoded.server.kind.name == "BROADCAST" and decoded.apdu[:2] == b"\x07\x01"
    now = bench.rig.clock.now()
    local = now.astimezone(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None)
    assert abs((meter.meter_time(now.timestamp()) - local).total_seconds()) <= 2
    # once a day: the next sweep's drift (none now) and the rule send nothing more
    meter.set_time(now.timestamp(), meter.meter_time(now.timestamp()) + timedelta(seconds=40))
    again = await bench.rig.poller.sweep(Group.EVENTS)
    assert await bench.ops.time_sync_after_sweep(again) == []
    assert bench.ops.broadcasts == 1
