"""Bus time of DL/T 698.45 meters against DL/T 645-2007 meters, read by the gateway's drivers.

One simulated fleet, two buses paced at real time (9600 8E1, meter response delay 50 ms): eight
DL/T 645-2007 meters on one, eight DL/T 698.45 meters on the other.  Each bus gets its own
``Poller`` (real ``BusWorker`` + ``SerialLink`` over ``socket://``) and sweeps energy, instant and
events in turn, then back-fills a week of daily freezes; the 645 bus is the baseline measured in
the same run.  First events sweep of
each meter: counters read, no records (no events in the fleet).
Run: ``.venv/bin/python bench/gateway_dlt698_sweep.py [--baud 9600] [--meters 8]``.
"""

from __future__ import annotations

import argparse
import asyncio
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from gateway.bus.link import LinkSettings, SerialLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker
from gateway.config import MeterConfig
from gateway.polling import Group, Poller
from gateway.polling.drivers import make_driver
from gateway.polling.frozen import FrozenReader
from simulators.config import parse_config
from simulators.fleet import start_fleet
from taiqu.clock import ManualClock, RealClock

GROUPS = (Group.ENERGY, Group.INSTANT, Group.EVENTS)


class Sink:
    def __init__(self) -> None:
        self.state: dict[str, Any] = {}
        self.readings = 0

    def append_readings(self, readings: Any, command: Any = None) -> None:
        self.readings += len(readings)

    def append_events(self, events: Any) -> None:
        pass

    def get_state(self, key: str, default: Any = None) -> Any:
        return self.state.get(key, default)

    def set_state(self, key: str, value: Any) -> None:
        self.state[key] = value

    def has_frozen(self, meter: str, freeze_time: Any) -> bool:
        return False


async def run(baud: int, meters: int) -> list[tuple[str, str, float, int, int]]:
    cfg = parse_config(
        {
            "buses": [
                {"name": "b645", "baud": baud, "parity": "E"},
                {"name": "b698", "baud": baud, "parity": "E"},
            ],
            "meters": [
                {"bus": "b645", "protocol": "dlt645-2007", "address": "202611240001",
                 "count": meters, "response_delay_ms": 50},
                {"bus": "b698", "protocol": "dlt698", "address": "202612060001",
                 "count": meters, "response_delay_ms": 50},
            ],
        },
        "bench",
    )  # fmt: skip
    out = []
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=8))
    async with start_fleet(cfg, clock) as fleet:
        clock.advance(8 * 86400)  # a week of daily freezes kept by every meter
        for bus, protocol in (("b645", "dlt645-2007"), ("b698", "dlt698")):
            link = SerialLink(LinkSettings(fleet.endpoints[bus], baud))
            worker = BusWorker(bus, link, LineTiming(baud=baud, bits_per_char=11))
            worker.start()
            sink = Sink()
            poller = Poller({bus: worker}, RealClock(), sink, make_driver, zone="Asia/Shanghai",
                            state=sink)  # fmt: skip
            poller.set_meters(
                MeterConfig(bus=bus, protocol=protocol, address=m.address)  # type: ignore[arg-type]
                for ident, m in fleet.meters.items()
                if fleet.meter_bus[ident] == bus
            )
            await poller.sweep(Group.ENERGY)  # open the link, warm up
            for group in GROUPS:
                before = worker.stats.transactions
                t0 = time.perf_counter()
                report = await poller.sweep(group)
                wall = time.perf_counter() - t0
                assert report.failed == 0, report.visits
                tx = worker.stats.transactions - before
                out.append((group.value, protocol, wall, tx, report.read))
            before = worker.stats.transactions
            t0 = time.perf_counter()
            frozen = await FrozenReader(poller, sink).run(7)
            wall = time.perf_counter() - t0
            assert not frozen.failed and frozen.days_stored == 7 * meters, frozen
            tx = worker.stats.transactions - before
            out.append(("back-fill 7 days", protocol, wall, tx, meters))
            await worker.stop()
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--baud", type=int, default=9600)
    parser.add_argument("--meters", type=int, default=8)
    args = parser.parse_args()
    rows = asyncio.run(run(args.baud, args.meters))
    print(f"{args.meters} meters per bus, {args.baud} 8E1, response delay 50 ms")
    print("| group | DL/T 645 s/meter (tx) | DL/T 698 s/meter (tx) | 698 ÷ 645 |")
    print("|---|---|---|---|")
    by = {(g, p): (w, tx, n) for g, p, w, tx, n in rows}
    for group in (*(g.value for g in GROUPS), "back-fill 7 days"):
        w645, tx645, n645 = by[(group, "dlt645-2007")]
        w698, tx698, n698 = by[(group, "dlt698")]
        print(
            f"| {group} | {w645 / n645:.3f} ({tx645 / n645:.0f}) | "
            f"{w698 / n698:.3f} ({tx698 / n698:.0f}) | {w698 / n698 / (w645 / n645):.2f} |"
        )


if __name__ == "__main__":
    main()
