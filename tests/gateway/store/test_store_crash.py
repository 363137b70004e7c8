"""kill -9 of a writer in a loop during heavy writes: nothing committed is lost, nothing skipped."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from gateway.store import Store
from protocols.uplink import ReadingRecord
from taiqu.clock import ManualClock
from tests.gateway.conftest import START

ROOT = Path(__file__).resolve().parents[3]

# The child appends 40-meter sweeps as fast as it can and prints each committed last seq.
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
    sweep = [Reading(m, q, Decimal(n) + Decimal("0.01") * i, at) for i, m in enumerate(meters) for q in names]
    print(store.append_readings(sweep), flush=True)
    n += 1
"""


@pytest.mark.integration
def test_kill_dash_nine_during_heavy_writes_loses_nothing_committed(tmp_path: Path) -> None:
    path = tmp_path / "store.db"
    rng = random.Random(1)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    committed = 0
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert child.stdout is not None
        ready = child.stdout.readline().split()
        assert ready[0] == "ready" and int(ready[1]) >= committed  # reopen kept every commit
        for _ in range(
            rng.randint(1, 8)
        ):  # let it write a few sweeps, then pull the plug mid-write
            committed = int(child.stdout.readline())
        child.send_signal(signal.SIGKILL)
        rest = child.stdout.read().split()  # commits reported before the kill landed
        child.wait()
        child.stdout.close()
        committed = max([committed, *map(int, rest)])
        with Store.open(path, clock=ManualClock(START)) as store:
            rows = store.records(0, 10**9)
            seqs = [r.seq for r in rows]
            assert store.last_seq >= committed
            assert seqs == list(range(1, store.last_seq + 1))  # gap-free, nothing skipped
            assert store.last_seq % 40 == 0  # whole sweeps only: a sweep is one transaction
            assert all(isinstance(r.record(), ReadingRecord) for r in rows[-40:])
            assert store.pragma("integrity_check") == "ok"
            committed = store.last_seq
    assert committed >= 20 * 40
