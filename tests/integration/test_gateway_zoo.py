"""The real gateway reads the meter zoo honestly: every personality on one RFC 2217 bus.

The shipped zoo fleet (examples/zoo-fleet.toml: single-phase, no blocks, silent on what it
lacks, FF/EE filler, follow-up frames, delayed relay, strict and drifting clocks, busy at
midnight, a 1997 meter at 1200 8E1, Modbus meters at 9600 8N1) runs on a manual clock; the
gateway reads it through the bus's RFC 2217 endpoint, switching the port to each meter's own
line, as it would through an Ethernet serial server.  Compared with the simulator's ground truth.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gateway.config import parse_config
from gateway.daemon.app import Gateway
from gateway.polling import Group
from protocols.model import EventType
from protocols.uplink import EventRecord, ReadingRecord
from protocols.uplink.messages import Command, CommandAction, CommandState
from simulators.config import load_config
from simulators.fleet import start_fleet
from simulators.truth import readable
from taiqu.clock import ManualClock

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217"),
]
ZOO = Path(__file__).parents[2] / "examples" / "zoo-fleet.toml"
ZONE = ZoneInfo("Asia/Shanghai")
START = datetime(2026, 3, 17, 10, 0, 30, tzinfo=ZONE)  # a Tuesday morning, meter-local


def gateway_toml(rows: list[dict[str, Any]], url: str, data: Path) -> dict[str, Any]:
    meters = []
    for r in rows:
        meter = {"bus": "zoo", "protocol": r["protocol"], "address": r["address"],
                 "id": r["id"], "line": r["line"]}
        if r["protocol"] == "modbus":
            meter["model"] = r["model"]
        meters.append(meter)
    return {
        "gateway_id": "gw-zoo",
        "zone": "Asia/Shanghai",
        "data_dir": str(data),
        "signatures": {"required": False},
        "clock_trust": {"source": "trusted"},
        "commands": {"readback_interval_s": 5, "readback_deadline_s": 120},
        "buses": [{"name": "zoo", "port": url, "baud": 2400, "parity": "E", "retries": 0,
                   "response_timeout_ms": 400}],
        "meters": meters,
    }  # fmt: skip


@pytest.fixture
async def zoo(tmp_path: Path) -> Any:
    config = load_config(ZOO)
    config.control = ""
    config.buses[0].listen = "tcp://127.0.0.1:0"
    config.buses[0].rfc2217 = "127.0.0.1:0"
    config.buses[0].pace = False
    clock = ManualClock(START.astimezone(ZoneInfo("UTC")))
    async with start_fleet(config, clock) as fleet:
        rows = fleet.control.meters()
        cfg = parse_config(gateway_toml(rows, fleet.rfc2217["zoo"], tmp_path), Path("gw.toml"))
        gw = Gateway(cfg, clock=clock, uplink_factory=_NoUplink)
        await gw.start()
        for task in gw._tasks:  # the test runs the sweeps itself, on its manual clock
            task.cancel()
        try:
            yield fleet, gw, clock, rows
        finally:
            await gw.stop()


class _NoUplink:
    connected = False

    def __init__(self, *a: Any, **k: Any) -> None:
        self.results: list[Any] = []

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    def publish_status(self, snapshot: Any) -> None: ...

    def publish_result(self, result: Any) -> None:
        self.results.append(result)


async def test_the_gateway_collects_what_each_zoo_meter_gives_and_says_what_it_does_not(
    zoo,
) -> None:
    fleet, gw, clock, rows = zoo
    for _ in range(2):  # silence counts the second time: two rounds settle the capabilities
        await gw.poller.sweep(Group.ENERGY)
        await gw.poller.sweep(Group.INSTANT)
        await gw.poller.sweep(Group.EVENTS)
        clock.advance(900)
    records = [r.record() for r in gw.store.pending(0, 100_000)]
    unreachable = [
        r.meter for r in records
        if isinstance(r, EventRecord) and r.type is EventType.METER_UNREACHABLE
    ]  # fmt: skip
    assert unreachable == []  # every zoo meter answers something
    got: dict[str, set[str]] = {}
    for r in records:
        if isinstance(r, ReadingRecord):
            got.setdefault(r.meter, set()).update(r.values)
    health = gw.poller.health()
    missing: dict[str, list[str]] = {}
    for row in rows:
        truth = readable(fleet, row["id"])
        want = {
            q for q, v in truth["quantities"].items()
            if v["outcome"] == "readable" and q.startswith(("energy.active.import", "voltage."))
        }  # fmt: skip
        lost = want - got.get(row["id"], set())
        if lost:
            missing[row["id"]] = sorted(lost)
    assert missing == {}  # every readable import energy and voltage arrived
    # what a meter cannot give is said, not silently absent (single-phase: phases B and C)
    assert "voltage.b" in health["uncollected"].get("202611240002", [])


async def test_a_relay_with_a_trip_delay_ends_executed(zoo) -> None:
    fleet, gw, clock, rows = zoo
    delayed = next(r["id"] for r in rows if r["personality"] == "delayed-relay")
    now = clock.now()
    command = Command(
        id="c-zoo-1", gateway="gw-zoo", meters=(delayed,), action=CommandAction.RELAY_TRIP,
        issued=now, valid_until=now + timedelta(minutes=30), nonce="n" * 16,
    )  # fmt: skip
    task = asyncio.create_task(gw.execute(command))
    for _ in range(400):  # the read-back waits on the manual clock: move it along
        await asyncio.sleep(0.02)
        if task.done():
            break
        clock.advance(1)
    assert await task is CommandState.EXECUTED
    steps = [r for r in gw.uplink.results if r.meter == delayed]
    assert [s.state for s in steps][-2:] == [CommandState.EXECUTING, CommandState.EXECUTED]
    assert fleet.control.relay(delayed)["relay"] == "open"
