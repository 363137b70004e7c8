"""Local store: disk bytes per meter per day, 30-day sizing for 256 meters, cost of batching.

1. Appends ``--days`` days of the default schedule for ``--meters`` meters (96 energy sweeps of
   total + t1…t4 per day, each sweep one transaction, one daily frozen record per meter), then
   prints accounted bytes and real file bytes per meter per day and the 30-day × 256-meter size.
2. Write cost: the same records committed one per transaction (what batching avoids), as a
   ratio against one transaction per sweep measured in the same run (synchronous=FULL: fsyncs).
3. Drain cost: reading pending rows and building contract batches, records per second.
4. Commits (fsyncs) per simulated day for 200 meters on two buses with the default schedule:
   per-meter commits (before) against group commits (after), same run (``bench/_store_commits``).

Run: ``.venv/bin/python bench/gateway_store.py [--days 3] [--meters 256]``
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from gateway.store import Store
from protocols.model import Reading, ReadingKind
from protocols.quantities import ENERGY_TARIFFS, ENERGY_TOTAL
from protocols.uplink import Batch
from taiqu.clock import ManualClock

START = datetime(2026, 11, 24, tzinfo=UTC)
NAMES = (ENERGY_TOTAL, *ENERGY_TARIFFS)


def sweep(meters: list[str], at: datetime, n: int) -> list[Reading]:
    out = []
    for i, m in enumerate(meters):
        gt = at + timedelta(seconds=i * 0.35)
        total = Decimal(10000 + i * 7) + Decimal(n) * Decimal("0.37")
        values = [
            total,
            total * Decimal("0.1"),
            total * Decimal("0.4"),
            total * Decimal("0.3"),
            total * Decimal("0.2"),
        ]
        for q, v in zip(NAMES, values, strict=True):
            out.append(
                Reading(m, q, v.quantize(Decimal("0.01")), gt, meter_time=gt.replace(microsecond=0))
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--meters", type=int, default=256)
    args = parser.parse_args()
    meters = [f"2026112{n:05d}" for n in range(1, args.meters + 1)]
    tmp = Path(tempfile.mkdtemp(prefix="taiqu-store-bench-"))
    clock = ManualClock(START)
    store = Store.open(tmp / "store.db", clock=clock, budget_bytes=8 * 1024**3)
    started = time.perf_counter()
    sweeps = 0
    for day in range(args.days):
        for n in range(96):
            at = START + timedelta(days=day, minutes=15 * n)
            clock.current = at
            store.append_readings(sweep(meters, at, sweeps))
            sweeps += 1
        ft = START + timedelta(days=day + 1)
        store.append_readings(
            [
                Reading(m, q, Decimal("1.00"), ft, kind=ReadingKind.DAILY_FROZEN, freeze_time=ft)
                for m in meters
                for q in NAMES
            ]
        )
    elapsed = time.perf_counter() - started
    stats = store.stats()
    per_meter_day = stats.file_bytes / (args.meters * args.days)
    accounted = stats.bytes / (args.meters * args.days)
    print(
        f"{args.days} days × {args.meters} meters: {stats.records} records, "
        f"{sweeps} sweep transactions "
        f"in {elapsed:.1f}s ({elapsed / sweeps * 1000:.1f} ms per sweep of {args.meters} meters)"
    )
    print(f"file bytes per meter per day:      {per_meter_day:,.0f} B")
    print(f"accounted bytes per meter per day: {accounted:,.0f} B (what the budget counts)")
    size30 = per_meter_day * 256 * 30
    print(
        f"30 days offline × 256 meters:      {size30 / 1024**2:,.0f} MiB on disk "
        f"(accounted {accounted * 256 * 30 / 1024**2:,.0f} MiB)"
    )

    # 2. write cost: one transaction per sweep vs one per record
    few = meters[:32]
    rows = sweep(few, START, 0)
    t0 = time.perf_counter()
    for k in range(20):
        store.append_readings(sweep(few, START + timedelta(minutes=k), k))
    per_sweep = (time.perf_counter() - t0) / (20 * len(few))
    t0 = time.perf_counter()
    for _ in range(20):
        for m in few:
            store.append_readings([r for r in rows if r.meter == m])
    per_record = (time.perf_counter() - t0) / (20 * len(few))
    print(
        f"write cost per meter record: batched per sweep {per_sweep * 1e6:,.0f} µs, "
        "one commit each "
        f"{per_record * 1e6:,.0f} µs  → batching is {per_record / per_sweep:.1f}× cheaper"
    )

    # 3. drain: pending rows → contract batches
    t0 = time.perf_counter()
    after, count = 0, 0
    while count < 20_000:
        pending = store.pending(after, 500)
        if not pending:
            break
        Batch(
            gateway="gw-1",
            epoch=store.epoch,
            seq=pending[0].seq,
            sent=START,
            records=tuple(p.record() for p in pending),
        )
        after, count = pending[-1].seq, count + len(pending)
    print(f"drain: {count / (time.perf_counter() - t0):,.0f} records/s read and rebuilt as batches")
    store.close()

    # 4. commits per day: per-meter commits vs group commits (the real poller, simulated meters)
    import asyncio

    sys.argv = [sys.argv[0]]
    from bench._store_commits import main as commits_main

    asyncio.run(commits_main())


if __name__ == "__main__":
    main()
