"""Bus efficiency of the gateway's bus worker against the simulator at real time.

32 DL/T 645-2007 meters × 5 identifiers, one sweep per baud rate.  Efficiency = theoretical
minimum (request + reply on the wire + the meter's response delay, summed over transactions) ÷
the sweep's wall time.

The mixed bus (``--mixed``, on by default): zoo personalities at their own line settings on one
bus served over RFC 2217 (as an Ethernet serial server serves a field bus): DL/T 645-2007 meters
at 2400 8E1, DL/T 645-1997 meters at 1200 8E1 and Modbus meters at 9600 8N1, read by the real
``Poller`` (energy and instantaneous sweeps), which orders a bus's meters by line setting and
switches the port between the groups.  Its theoretical minimum comes from what crossed the
simulated wire (the simulator's per-meter byte counts, each at its meter's own line, plus a
response delay per reply); the 2400-baud homogeneous sweep of the same run is its baseline.
Run: ``.venv/bin/python bench/gateway_bus.py [--bauds 2400 9600] [--no-mixed]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from typing import Any

from gateway.bus.link import LinkSettings, SerialLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker, Priority
from gateway.config import MeterConfig
from gateway.polling.dlt645 import Dlt645Driver
from protocols.dlt645 import data_id
from simulators.config import parse_config
from simulators.fleet import start_fleet

DIS = (0x00010000, 0x00010100, 0x00010200, 0x02010100, 0x02020100)
METERS = 32
DELAY_MS = 50.0


async def sweep(baud: int) -> tuple[float, float, int]:
    cfg = parse_config(
        {
            "buses": [{"name": "bus1", "baud": baud, "parity": "E"}],
            "meters": [
                {
                    "bus": "bus1",
                    "protocol": "dlt645-2007",
                    "address": "202611240001",
                    "count": METERS,
                    "response_delay_ms": DELAY_MS,
                }
            ],
        },
        "bench",
    )
    async with start_fleet(cfg) as fleet:
        timing = LineTiming(baud=baud, bits_per_char=11)
        worker = BusWorker("bus1", SerialLink(LinkSettings(fleet.endpoints["bus1"], baud)), timing)
        worker.start()
        drivers = [
            Dlt645Driver(MeterConfig(bus="bus1", protocol="dlt645-2007", address=m.address), "UTC")
            for m in fleet.meters.values()
        ]
        theoretical = 0.0
        await worker.transact(lambda: drivers[0].exchange(DIS[0]))  # open the link, warm up
        t0 = time.perf_counter()
        for driver in drivers:
            for di in DIS:
                reply = await worker.transact(lambda d=driver, i=di: d.exchange(i), Priority.ENERGY)
                assert reply is not None
        wall = time.perf_counter() - t0
        for driver in drivers:  # wire bytes: request as sent; reply 4 FE + header + DI + value
            for di in DIS:
                request = driver.exchange(di).request
                reply_bytes = 4 + 12 + 4 + data_id(di).length
                theoretical += timing.theoretical(len(request), reply_bytes, DELAY_MS / 1000)
        stats = worker.stats
        await worker.stop()
        return theoretical, wall, stats.timeouts + stats.garbled


MIXED = (("ordinary", 8), ("dlt645-1997", 8), ("modbus-word-swapped", 8))


async def mixed() -> tuple[float, float, int, int]:
    """(theoretical, wall, failed transactions, line switches) of the mixed bus's sweeps."""
    from gateway.polling import Group, Poller
    from gateway.polling.drivers import make_driver
    from simulators.line import LineSettings

    rows = []
    for personality, count in MIXED:
        for _ in range(count):
            modbus = personality.startswith("modbus")
            address = str(20 + len(rows)) if modbus else f"{len(rows) + 1:012d}"
            rows.append({"bus": "mixed", "address": address, "personality": personality,
                         "response_delay_ms": DELAY_MS})  # fmt: skip
    cfg = parse_config(
        {"buses": [{"name": "mixed", "baud": 2400, "parity": "E", "rfc2217": "127.0.0.1:0"}],
         "meters": rows},
        "bench",
    )  # fmt: skip
    async with start_fleet(cfg) as fleet:
        url = fleet.rfc2217["mixed"]
        timing = LineTiming(baud=2400, bits_per_char=11)
        worker = BusWorker("mixed", SerialLink(LinkSettings(url, 2400)), timing, retries=0)
        worker.start()
        meters = []
        for r in fleet.control.meters():
            meters.append(
                MeterConfig(
                    id=r["id"], bus="mixed", protocol=r["protocol"], address=r["address"],
                    model=r["model"] or "", line=r["line"],
                )
            )  # fmt: skip

        class _Sink:
            def append_readings(self, *a: object, **k: object) -> None: ...

            def append_events(self, *a: object) -> None: ...

        poller = Poller({"mixed": worker}, _Clock(), _Sink(), make_driver, zone="UTC")
        poller.set_meters(meters)
        await poller.sweep(Group.ENERGY)  # warm up: capabilities, the link open
        bus = fleet.buses["mixed"]
        before = {a: (t.bytes_in, t.bytes_out, t.replies) for a, t in bus.meter_traffic.items()}
        switches = worker.stats.line_switches
        t0 = time.perf_counter()
        energy = await poller.sweep(Group.ENERGY)
        instant = await poller.sweep(Group.INSTANT)
        wall = time.perf_counter() - t0
        theoretical = 0.0
        for r in fleet.control.meters():
            t = bus.meter_traffic[r["address"]]
            b_in, b_out, replies = before.get(r["address"], (0, 0, 0))
            line = LineSettings.parse(r["line"])
            per_byte = line.bits_per_byte / line.baud
            theoretical += (t.bytes_in - b_in + t.bytes_out - b_out) * per_byte
            theoretical += (t.replies - replies) * DELAY_MS / 1000
        failed = energy.failed + instant.failed + energy.empty + instant.empty
        switches = worker.stats.line_switches - switches
        await worker.stop()
        return theoretical, wall, failed, switches


class _Clock:
    """Wall time (the poller's back-off and capability stamps)."""

    def now(self) -> Any:
        from datetime import UTC, datetime

        return datetime.now(UTC)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bauds", type=int, nargs="+", default=[2400, 9600])
    parser.add_argument("--no-mixed", dest="mixed", action="store_false")
    args = parser.parse_args()
    print(f"bus efficiency: {METERS} meters x {len(DIS)} identifiers, response delay {DELAY_MS} ms")
    base: float | None = None
    for baud in args.bauds:
        theoretical, wall, errors = await sweep(baud)
        if baud == 2400:
            base = theoretical / wall
        print(
            f"  {baud:>5} baud: theoretical {theoretical:7.2f} s, sweep {wall:7.2f} s, "
            f"efficiency {theoretical / wall:.3f}, failed transactions {errors}"
        )
    if args.mixed:
        theoretical, wall, failed, switches = await mixed()
        share = theoretical / wall
        against = f", {share / base:.3f} of the 2400-baud bus above" if base else ""
        print(
            f"  mixed bus over RFC 2217 ({', '.join(f'{n} {p}' for p, n in MIXED)}; energy and "
            f"instantaneous sweeps): theoretical {theoretical:7.2f} s, sweeps {wall:7.2f} s, "
            f"efficiency {share:.3f}{against}; {switches} line switches, {failed} meters failed"
        )


if __name__ == "__main__":
    asyncio.run(main())
