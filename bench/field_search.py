"""``taiqu field search`` on a crowded, byte-timed bus against the theoretical minimum.

Usage: ``.venv/bin/python bench/field_search.py [--meters 32] [--window 0.55] [--step digit]``.
A simulated bus of N DL/T 645-2007 meters with random addresses (collisions forced: batches
sharing 8 leading digits, pairs sharing their 5 low digits), paced at 2400 8E1 (11 bits a byte),
every meter answering after 50 ms, so colliding replies overlap byte for byte.  The search is
the product's (``gateway.field.search``) over ``socket://``, with a response window safe for
real meters (the standard allows 500 ms).  Printed, all from the same run:

- measured wall time and requests;
- wire time of the frames it needed (request and reply bytes × 11 / 2400);
- the floor of this algorithm: every request's own wire time plus one response window;
- the bus minimum: each meter sending its address once, after one request and its response
  delay (N × (16 + 22 bytes of wire time + 50 ms)), which no search can beat.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import threading
import time
import warnings

from gateway.bus.link import Line
from gateway.field.port import Port
from gateway.field.search import SearchStats, search_dlt645
from protocols.dlt645 import Version
from simulators.config import parse_config
from simulators.fleet import Fleet

BAUD, BITS = 2400, 11
REQUEST, REPLY, DELAY = 16, 22, 0.050  # 13H request and 93H reply with 4 FE; response delay


def addresses(n: int, seed: int = 7) -> list[str]:
    rng = random.Random(seed)
    out: set[str] = set()
    while len(out) < n - 6:
        batch = f"2026{rng.randrange(10**4):04d}"
        out.update(f"{batch}{rng.randrange(10**4):04d}" for _ in range(4))
    for _ in range(3):
        tail = f"{rng.randrange(10**5):05d}"
        out.update(f"{rng.randrange(10**7):07d}{tail}" for _ in range(2))
    return sorted(out)[:n]


def main() -> None:
    warnings.simplefilter("ignore", DeprecationWarning)
    parser = argparse.ArgumentParser()
    parser.add_argument("--meters", type=int, default=32)
    parser.add_argument("--window", type=float, default=0.55)
    parser.add_argument("--step", default="digit", choices=("digit", "byte"))
    args = parser.parse_args()
    wanted = addresses(args.meters)
    config = parse_config(
        {
            "buses": [{"name": "b", "baud": BAUD, "parity": "E", "pace": True}],
            "meters": [{"bus": "b", "address": a, "response_delay_ms": 50} for a in wanted],
        }
    )
    fleet = Fleet(config)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(fleet.start(), loop).result(10)
    try:
        stats = SearchStats()
        started = time.monotonic()
        with Port(fleet.endpoints["b"], Line(BAUD, "E")) as port:
            found = search_dlt645(port, Version.V2007, args.window, stats, step=args.step)
        elapsed = time.monotonic() - started
    finally:
        asyncio.run_coroutine_threadsafe(fleet.stop(), loop).result(10)
        loop.call_soon_threadsafe(loop.stop)
    byte_time = BITS / BAUD
    wire = (stats.tx_bytes + stats.rx_bytes) * byte_time
    floor = stats.tx_bytes * byte_time + stats.probes * args.window
    minimum = len(wanted) * ((REQUEST + REPLY) * byte_time + DELAY)
    print(f"meters on the bus           {len(wanted)}")
    print(f"found                       {len(found)} (all: {found == wanted})")
    print(
        f"requests                    {stats.probes} ({stats.collisions} garbled, "
        f"{stats.silent} silent), step {args.step}, window {args.window * 1000:.0f} ms"
    )
    print(f"measured                    {elapsed:8.1f} s")
    rows = (
        ("wire time of its frames", wire, "wire"),
        ("request wire + windows", floor, "floor"),
        ("bus minimum (N exchanges)", minimum, "minimum"),
    )
    for label, seconds, name in rows:
        print(f"{label:<27} {seconds:8.1f} s   measured / {name:<8}{elapsed / seconds:6.2f}x")
    if found != wanted:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
