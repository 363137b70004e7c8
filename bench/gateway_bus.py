"""Bus efficiency of the gateway's bus worker against the simulator at real time.

32 DL/T 645-2007 meters × 5 identifiers, one sweep per baud rate.  Efficiency = theoretical
minimum (request + reply on the wire + the meter's response delay, summed over transactions) ÷
the sweep's wall time.  Run: ``.venv/bin/python bench/gateway_bus.py [--bauds 2400 9600]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time

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


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--bauds", type=int, nargs="+", default=[2400, 9600])
    args = parser.parse_args()
    print(f"bus efficiency: {METERS} meters x {len(DIS)} identifiers, response delay {DELAY_MS} ms")
    for baud in args.bauds:
        theoretical, wall, errors = await sweep(baud)
        print(
            f"  {baud:>5} baud: theoretical {theoretical:7.2f} s, sweep {wall:7.2f} s, "
            f"efficiency {theoretical / wall:.3f}, failed transactions {errors}"
        )


if __name__ == "__main__":
    asyncio.run(main())
