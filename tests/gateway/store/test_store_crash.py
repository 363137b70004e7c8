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


# The child runs group commits as a bus sweep does: per meter a visit's readings and its state
# (how many visits of that meter were stored), a flush every 10 meters; it prints each seq the
# uplink would hear of (the store's listener), i.e. everything that may have been published.
GROUP_WRITER = r"""
import asyncio, sys
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from gateway.store import Store
from gateway.store.group import GroupCommit
from protocols.model import Reading
from taiqu.clock import RealClock

async def main():
    store = Store.open(Path(sys.argv[1]), clock=RealClock())
    store.add_listener(lambda last: print("heard", last, flush=True))
    group = GroupCommit(store, seconds=3600)
    meters = [f"2026112{n:05d}" for n in range(1, 41)]
    start = datetime(2026, 11, 24, tzinfo=UTC)
    print("ready", store.last_seq, flush=True)
    n = 0
    while True:
        at = start + timedelta(minutes=15 * n)
        for i, m in enumerate(meters):
            group.add_readings([Reading(m, "energy.active.import.total", Decimal(n), at)])
            visits = group.get_state(f"visits:{m}", 0)
            group.set_state(f"visits:{m}", visits + 1)
            if i % 10 == 9:
                await group.flush()
        n += 1

asyncio.run(main())
"""


@pytest.mark.integration
def test_kill_dash_nine_during_group_commits_loses_nothing_heard_and_keeps_state_with_records(
    tmp_path: Path,
) -> None:
    path = tmp_path / "store.db"
    rng = random.Random(2)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    heard = 0
    for _ in range(8):
        child = subprocess.Popen(
            [sys.executable, "-c", GROUP_WRITER, str(path)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
            cwd=ROOT,
        )
        assert child.stdout is not None
        ready = child.stdout.readline().split()
        assert ready[0] == "ready" and int(ready[1]) >= heard
        for _ in range(rng.randint(1, 12)):
            heard = int(child.stdout.readline().split()[1])
        child.send_signal(signal.SIGKILL)
        rest = [int(line.split()[1]) for line in child.stdout.read().splitlines() if line]
        child.wait()
        child.stdout.close()
        heard = max([heard, *rest])
        with Store.open(path, clock=ManualClock(START)) as store:
            rows = store.records(0, 10**9)
            assert store.last_seq >= heard  # nothing the uplink heard of is lost
            assert [r.seq for r in rows] == list(range(1, store.last_seq + 1))
            assert store.last_seq % 10 == 0  # whole groups only
            per_meter: dict[str, int] = {}
            for r in rows:
                per_meter[r.record().meter] = per_meter.get(r.record().meter, 0) + 1
            for meter, count in per_meter.items():  # state committed with its records
                assert store.get_state(f"visits:{meter}") == count
            heard = store.last_seq
    assert heard >= 8 * 10
