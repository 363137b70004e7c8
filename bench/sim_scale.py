"""Simulator scale: 10,000 DL/T 645 meters on 100 buses in one process, paced at the wire.

The simulator runs in a child process (one asyncio loop, ``start_fleet``); this process plays
100 gateways: one asyncio TCP client per bus reading each meter's energy register in turn.
For every transaction it measures the wall time from writing the request to the last reply
byte and compares it with the wire time (request + reply bytes × 11 bits / baud + the meter's
response delay).  Excess = measured / wire − 1.  The baseline is the same measurement on one
bus alone, in the same run.

    .venv/bin/python bench/sim_scale.py                     # 2400 and 9600 baud, 30 s each
    .venv/bin/python bench/sim_scale.py --seconds 10 --buses 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from protocols.dlt645 import NEED_DATA, Master, ReadData

DELAY_MS = 50.0


def run_simulator(buses: int, meters: int, baud: int) -> None:
    """Child: serve the fleet, print endpoints as one JSON line, stop when stdin closes."""
    from simulators.config import parse_config
    from simulators.fleet import start_fleet

    config = parse_config(
        {
            "control": "",
            "buses": [{"name": f"b{i:03d}", "baud": baud} for i in range(buses)],
            "meters": [
                {
                    "bus": f"b{i:03d}",
                    "address": f"{i + 1:06d}{1:06d}",
                    "count": meters,
                    "response_delay_ms": DELAY_MS,
                }
                for i in range(buses)
            ],
        }
    )

    async def main() -> None:
        t0 = os.times()
        build = time.perf_counter()
        async with start_fleet(config) as fleet:
            built = time.perf_counter() - build
            print(json.dumps({"endpoints": fleet.endpoints, "build_s": built}), flush=True)
            loop = asyncio.get_running_loop()
            await loop.run_in_executor(None, sys.stdin.read)
        t1 = os.times()
        cpu = (t1.user - t0.user) + (t1.system - t0.system)
        print(json.dumps({"cpu_s": cpu}), flush=True)

    asyncio.run(main())


async def poll_bus(
    url: str, addresses: list[str], baud: int, until: float, out: list[float]
) -> None:
    """One gateway: read each meter's energy in turn until ``until``; append excess ratios."""
    host, port = url[len("socket://") :].split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    master = Master(preamble=4)
    byte_time = 11 / baud
    i = 0
    try:
        while time.monotonic() < until:
            address = addresses[i % len(addresses)]
            i += 1
            frame = master.send(ReadData(address, 0x00010000))
            start = time.monotonic()
            writer.write(frame)
            received = 0
            while True:
                chunk = await asyncio.wait_for(reader.read(256), 5)
                if not chunk:
                    return
                received += len(chunk)
                master.receive_data(chunk)
                if master.next_event() is not NEED_DATA:
                    break
            elapsed = time.monotonic() - start
            wire = (len(frame) + received) * byte_time + DELAY_MS / 1000
            out.append(elapsed / wire - 1)
    finally:
        writer.close()


def p(values: list[float], q: float) -> float:
    """The q-quantile."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(buses: int, meters: int, baud: int, seconds: float) -> dict[str, object]:
    """Start a simulator child, poll every bus for ``seconds``, summarise."""
    child = subprocess.Popen(
        [sys.executable, __file__, "--role", "sim", "--buses", str(buses), "--meters", str(meters),
         "--baud", str(baud)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert child.stdout is not None and child.stdin is not None
    info = json.loads(child.stdout.readline())
    endpoints: dict[str, str] = info["endpoints"]
    per_bus: dict[str, list[float]] = {name: [] for name in endpoints}

    async def clients() -> None:
        until = time.monotonic() + seconds
        tasks = []
        for n, (name, url) in enumerate(sorted(endpoints.items())):
            addresses = [f"{n + 1:06d}{k + 1:06d}" for k in range(meters)]
            tasks.append(poll_bus(url, addresses, baud, until, per_bus[name]))
        await asyncio.gather(*tasks)

    asyncio.run(clients())
    child.stdin.close()
    cpu = json.loads(child.stdout.readline())["cpu_s"]
    child.wait(timeout=60)
    everything = [x for xs in per_bus.values() for x in xs]
    within = sum(1 for xs in per_bus.values() if xs and p(xs, 0.95) <= 0.10)
    return {
        "buses": buses,
        "meters": buses * meters,
        "baud": baud,
        "transactions": len(everything),
        "excess_p50": statistics.median(everything),
        "excess_p95": p(everything, 0.95),
        "excess_max": max(everything),
        "never_faster": min(everything) >= -1e-3,
        "buses_within_10pct_p95": within,
        "sim_cpu_s": cpu,
        "sim_cpu_share": cpu / seconds,
        "build_s": info["build_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", default="bench")
    parser.add_argument("--buses", type=int, default=100)
    parser.add_argument("--meters", type=int, default=100)
    parser.add_argument("--baud", type=int, default=0)
    parser.add_argument("--seconds", type=float, default=30.0)
    args = parser.parse_args()
    if args.role == "sim":
        run_simulator(args.buses, args.meters, args.baud)
        return
    for baud in [args.baud] if args.baud else [2400, 9600]:
        base = measure(1, args.meters, baud, min(args.seconds, 10.0))
        full = measure(args.buses, args.meters, baud, args.seconds)
        for label, r in (("baseline 1 bus", base), (f"{args.buses} buses", full)):
            print(
                f"{baud} baud {label:>14}: {r['meters']:>6} meters, {r['transactions']:>6} reads, "
                f"excess p50 {r['excess_p50']:.1%} p95 {r['excess_p95']:.1%} "
                f"max {r['excess_max']:.1%}, "
                f"never faster than wire: {r['never_faster']}, buses within 10% (p95): "
                f"{r['buses_within_10pct_p95']}/{r['buses']}, sim CPU {r['sim_cpu_s']:.1f} s "
                f"({r['sim_cpu_share']:.0%} of one core), build {r['build_s']:.1f} s"
            )
        ratio = (full["excess_p95"] + 1) / (base["excess_p95"] + 1)  # type: ignore[operator]
        print(f"{baud} baud: p95 transaction time at scale / baseline = {ratio:.3f}")


if __name__ == "__main__":
    main()
