"""kill -9 campaign on the local store: a writer appends 40-meter sweeps flat out and is killed.

Each round starts the writer, lets it commit a random number of sweeps, sends SIGKILL mid-write,
reopens the store and checks: every seq the writer reported committed is present, seqs are
gap-free from 1, only whole sweeps exist, ``PRAGMA integrity_check`` is ok.  Prints the counts.

Run: ``.venv/bin/python bench/gateway_store_crash.py [--kills 200]``
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from gateway.store import Store  # noqa: E402
from taiqu.clock import RealClock  # noqa: E402

WRITER = r"""
import sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from gateway.store import Store
from protocols.model import Reading
from taiqu.clock import RealClock

store = Store.open(Path(sys.argv[1]), clock=RealClock())
meters = [f"2026112{n:05d}" for n in range(1, 41)]
names = ["energy.active.import.total"] + [f"energy.active.import.t{i}" for i in range(1, 5)]
start = datetime(2026, 11, 24, tzinfo=UTC)
print("ready", store.last_seq, flush=True)
n = 0
while True:
    at = start + timedelta(minutes=15 * n)
    sweep = [Reading(m, q, Decimal(n) + Decimal("0.01") * i, at)
             for i, m in enumerate(meters) for q in names]
    print(store.append_readings(sweep), flush=True)
    n += 1
"""


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--kills", type=int, default=200)
    args = parser.parse_args()
    path = Path(tempfile.mkdtemp(prefix="taiqu-crash-")) / "store.db"
    rng = random.Random(42)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    committed, failures, started = 0, 0, time.monotonic()
    for _ in range(args.kills):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert child.stdout is not None
        child.stdout.readline()
        for _ in range(rng.randint(1, 30)):
            committed = int(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        committed = max([committed, *map(int, child.stdout.read().split())])
        child.wait()
        child.stdout.close()
        with Store.open(path, clock=RealClock()) as store:
            seqs = [r.seq for r in store.records(0, 10**12)]
            ok = (
                store.last_seq >= committed
                and seqs == list(range(1, store.last_seq + 1))
                and store.last_seq % 40 == 0
                and store.pragma("integrity_check") == "ok"
            )
            failures += not ok
            committed = store.last_seq
    print(
        f"{args.kills} kill -9 rounds in {time.monotonic() - started:.0f}s: {committed} records "
        f"committed, {failures} rounds lost or skipped anything"
    )
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
