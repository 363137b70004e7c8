"""Store commits (= WAL fsyncs with synchronous=FULL) per simulated day: per-meter vs group commits.

The real poller (DL/T 645 driver, event detection, daily frozen run) reads simulated meters
(``simulators.fleet``, pacing off, no response delay) on two buses through real TCP endpoints,
on a manual clock moved slot by slot through ``--hours`` of the default schedule (energy every
15 min, events every 5 min) plus one daily frozen run; commits are counted by the store
(``Store.commits``: every write transaction) and scaled to 24 h.  "before" is the per-meter
path (``DirectBatch``: a commit per visit and per meter's state, as the gateway did until group
commits), "after" is the daemon's ``GroupCommit`` per bus; both in the same run.

Run: ``.venv/bin/python bench/_store_commits.py [--meters 200] [--hours 2]``;
``bench/gateway_store.py`` runs it as its fourth part.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.bus.link import LinkSettings, SerialLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker
from gateway.config import MeterConfig
from gateway.polling import Group, Poller
from gateway.polling.drivers import make_driver
from gateway.polling.frozen import FrozenReader
from gateway.store import Store
from gateway.store.group import GroupCommit
from simulators.config import parse_config
from simulators.fleet import start_fleet
from taiqu.clock import ManualClock

START = datetime(2026, 12, 1, 0, 0, 30, tzinfo=UTC)
ZONE = "Asia/Shanghai"


def fleet_config(meters: int, buses: int) -> object:
    per_bus = meters // buses
    return parse_config(
        {
            "buses": [
                {"name": f"bus{b}", "baud": 115200, "parity": "E", "pace": False}
                for b in range(1, buses + 1)
            ],
            "meters": [
                {
                    "bus": f"bus{b}",
                    "protocol": "dlt645-2007",
                    "address": f"2026{b:02d}000001",
                    "count": per_bus,
                    "response_delay_ms": 0,
                }
                for b in range(1, buses + 1)
            ],
        },
        "bench",
    )


async def run(meters: int, buses: int, hours: int, grouped: bool) -> tuple[float, float, int, int]:
    """(commits per day, wall seconds, records stored, frozen-run commits) for one way."""
    clock = ManualClock(START)
    tmp = Path(tempfile.mkdtemp(prefix="taiqu-commits-"))
    store = Store.open(tmp / "gateway.db", clock=clock, budget_bytes=2 * 1024**3)
    async with start_fleet(fleet_config(meters, buses), clock) as fleet:  # type: ignore[arg-type]
        timing = LineTiming(baud=115200, bits_per_char=11, response_timeout=0.2)
        workers = {
            name: BusWorker(name, SerialLink(LinkSettings(url, 115200)), timing, retries=0)
            for name, url in fleet.endpoints.items()
        }
        for w in workers.values():
            w.start()
        poller = Poller(
            workers,
            clock,
            store,
            make_driver,
            zone=ZONE,
            state=store,
            batches=(lambda bus: GroupCommit(store)) if grouped else None,
        )
        poller.set_meters(
            MeterConfig(bus=fleet.meter_bus[ident], protocol="dlt645-2007", address=m.address)
            for ident, m in fleet.meters.items()
        )
        before, t0 = store.commits, time.perf_counter()
        for minute in range(0, hours * 60, 5):
            clock.current = START + timedelta(minutes=minute)
            if minute % 15 == 0:
                await poller.sweep(Group.ENERGY)
            await poller.sweep(Group.EVENTS)
        sweeps = store.commits - before
        frozen_before = store.commits
        await FrozenReader(poller, store).run(1)
        frozen = store.commits - frozen_before
        wall = time.perf_counter() - t0
        for w in workers.values():
            await w.stop()
    records = store.last_seq
    store.close()
    return sweeps * 24 / hours + frozen, wall, records, frozen


def fsyncs_per_day(meters: int, buses: int, hours: int, grouped: bool) -> float | None:
    """The same run in a child process under ``strace -c``: real fsync + fdatasync calls a day
    (the WAL's commits and the checkpoints' syncs of the database file), scaled like commits."""
    if shutil.which("strace") is None:
        return None
    mode = "after" if grouped else "before"
    cmd = [
        "strace",
        "-f",
        "-qq",
        "-c",
        "-e",
        "trace=fsync,fdatasync",
        sys.executable,
        __file__,
        "--meters",
        str(meters),
        "--buses",
        str(buses),
        "--hours",
        str(hours),
        "--mode",
        mode,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, check=False)
    calls = 0
    for line in done.stderr.splitlines():
        parts = line.split()
        if parts and parts[-1] in ("fsync", "fdatasync"):
            calls += int(parts[3])
    counted = re.search(r"frozen-commits (\d+)", done.stdout)
    frozen = int(counted.group(1)) if counted else 0
    return (calls - frozen) * 24 / hours + frozen  # the frozen run happens once a day


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--buses", type=int, default=2)
    parser.add_argument("--hours", type=int, default=2)
    parser.add_argument("--mode", choices=("before", "after"), help=argparse.SUPPRESS)
    parser.add_argument("--no-strace", action="store_true", help="count commits only")
    args = parser.parse_args()
    if args.mode:  # the child of fsyncs_per_day
        _, _, _, frozen = await run(args.meters, args.buses, args.hours, args.mode == "after")
        print(f"frozen-commits {frozen}")
        return
    print(
        f"store commits per simulated day: {args.meters} meters on {args.buses} buses, default "
        f"schedule ({args.hours} h simulated and scaled to 24 h, plus one daily frozen run)"
    )
    before, wall_b, rec_b, _ = await run(args.meters, args.buses, args.hours, grouped=False)
    after, wall_a, rec_a, _ = await run(args.meters, args.buses, args.hours, grouped=True)
    print(f"  per-meter commits (before): {before:9,.0f} a day  ({rec_b} records, {wall_b:.0f} s)")
    print(f"  group commits (after):      {after:9,.0f} a day  ({rec_a} records, {wall_a:.0f} s)")
    print(f"  ratio after/before: {after / before:.3f}; goal <= 2,500 a day")
    if not args.no_strace:
        fb = fsyncs_per_day(args.meters, args.buses, args.hours, grouped=False)
        fa = fsyncs_per_day(args.meters, args.buses, args.hours, grouped=True)
        if fb is None or fa is None:
            print("  (strace not installed: fsync calls not counted)")
        else:
            print(
                f"  fsync+fdatasync (strace): before {fb:,.0f} a day, after {fa:,.0f} a day, "
                f"ratio {fa / fb:.3f}"
            )


if __name__ == "__main__":
    asyncio.run(main())
