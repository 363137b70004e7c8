"""Fault campaign: a gateway writing flat out, a real broker and the head-end ingest, under faults.

One gateway process (the real ``gateway.store.Store`` and ``gateway.uplink.Uplink``) appends a
sweep of 40 meters × 5 registers (plus a cover-open event every 5th sweep) as fast as it can and
drains it to a real mosquitto (persistence on); a real ``taiqu headend ingest`` process stores it
in SQLite.  Faults, mixed at random (seeded) while data flows:

- ``gateway``: kill -9 of the gateway process mid-write, restarted at once;
- ``broker``: kill -9 of mosquitto, restarted (persistence on);
- ``ingest``: kill -9 of the head-end ingest mid-batch, restarted;
- ``week``: the uplink down (broker stopped) while the gateway writes a simulated week of sweeps
  (672 × 15 min, the clock of the data accelerated to write speed) into a store whose disk budget
  is too small, so the oldest unacknowledged records are dropped and announced as gaps.

At the end the gateway runs without faults until the head-end has acknowledged everything, and
the campaign counts what the gateway generated against what the head-end stored:
``lost = generated − stored − announced in gaps`` must be 0, as must stored rows no sweep
generated (phantoms).  Duplicates are impossible by construction of the head-end keys; the count
of records the ingest saw more than once is printed as the measure of re-delivery.

Run: ``.venv/bin/python bench/fault_campaign.py [--gateway-kills 600 --broker-kills 250
--ingest-kills 150 --weeks 1]`` (defaults total ≥ 1,000 faults; ``--quick`` for a short run).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

GW = "gw-fault"
METERS = [f"2026112{n:05d}" for n in range(1, 41)]
QUANTITIES = ["energy.active.import.total"] + [f"energy.active.import.t{i}" for i in range(1, 5)]
START = datetime(2026, 11, 24, tzinfo=UTC)
STEP = timedelta(minutes=15)
WEEK = 7 * 96


def sweep_time(n: int) -> datetime:
    return START + STEP * n


# -- the gateway process -------------------------------------------------------------------------
def sweep_records(n: int) -> list[object]:
    """Sweep ``n``: 40 reading records and, every 5th sweep, one event record."""
    from protocols.model import Event, EventType, Reading
    from protocols.uplink import events_to_records, readings_to_records

    at = sweep_time(n)
    readings = [
        Reading(m, q, Decimal(n) + Decimal(i) / 100 + Decimal(j), at)
        for i, m in enumerate(METERS)
        for j, q in enumerate(QUANTITIES)
    ]
    records: list[object] = list(readings_to_records(readings))
    if n % 5 == 0:
        event = Event(METERS[n % 40], EventType.METER_COVER_OPEN, start=at, detected=at)
        records += events_to_records([event])
    return records


def resume_point(store: object) -> int:
    """The next sweep to write: one past the newest sweep in the store (0 when empty)."""
    last = store.last_seq  # type: ignore[attr-defined]
    rows = store.records(max(1, last - 50), last) if last else []  # type: ignore[attr-defined]
    from protocols.uplink.messages import EventRecord, ReadingRecord

    newest = None
    for row in rows:
        record = row.record()
        if isinstance(record, ReadingRecord):
            newest = record.gateway_time
        elif isinstance(record, EventRecord) and record.start is not None:
            newest = max(newest or record.start, record.start)
    if newest is None:
        return 0
    return int((newest - START) / STEP) + 1


async def gateway_main(path: Path, host: str, port: int, target: int, budget: int) -> None:
    from gateway.store import Store
    from gateway.uplink.client import Uplink
    from gateway.uplink.settings import BrokerSettings, UplinkSettings
    from taiqu.clock import RealClock

    clock = RealClock()
    store = Store.open(path, budget_bytes=budget, clock=clock)
    settings = UplinkSettings(
        ack_timeout=2.0,
        ack_timeout_max=5.0,
        poll_interval=0.2,
        reconnect_min=0.2,
        reconnect_max=1.0,
        window=8,
    )
    uplink = Uplink(GW, BrokerSettings(host=host, port=port), store, clock, settings=settings)
    await uplink.start()
    n = resume_point(store)
    print(f"resume {n}", flush=True)
    while n < target:
        # printed before the commit: a single writer, so the seqs are certain if it commits
        print(f"seqs {n} {store.last_seq + 1}", flush=True)
        await asyncio.to_thread(store.append_records, sweep_records(n))
        print(f"wrote {n}", flush=True)
        n += 1
        await asyncio.sleep(0)
    print(f"done {n} last_seq {store.last_seq}", flush=True)
    while True:  # keep draining until the campaign stops us
        await asyncio.sleep(0.5)
        unacked = store.first_unacked()
        print(f"unacked {unacked} last_seq {store.last_seq}", flush=True)


# -- the campaign ----------------------------------------------------------------------------------
class Campaign:
    """Processes of one campaign and the counts of injected faults."""

    def __init__(self, work: Path, seed: int) -> None:
        from tests.services import Mosquitto

        self.work = work
        self.rng = random.Random(seed)
        broker_dir = work / "broker"
        broker_dir.mkdir()
        if os.geteuid() == 0:  # mosquitto drops to its own user and must write its persistence
            shutil.chown(broker_dir, "mosquitto", "mosquitto")
        binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
        self.broker = Mosquitto(binary, broker_dir)
        self.store_path = work / "gateway" / "store.db"
        self.store_path.parent.mkdir()
        self.db_path = work / "headend.db"
        self.config = work / "headend.toml"
        self.faults = {"gateway": 0, "broker": 0, "ingest": 0, "week": 0}
        self.gateway: subprocess.Popen[str] | None = None
        self.ingest: subprocess.Popen[bytes] | None = None
        self.written = -1
        self.first_seq: dict[int, int] = {}  # sweep → seq of its first record
        self.mid_write = 0  # gateway kills that hit it while it was still writing sweeps
        self.env = {**os.environ, "PYTHONPATH": str(ROOT)}

    # processes
    def start_broker(self) -> None:
        self.broker.start()

    def start_ingest(self) -> None:
        self.config.write_text(
            f'[database]\nurl = "sqlite:///{self.db_path}"\nsqlite_synchronous = "NORMAL"\n'
            f'[mqtt]\nhost = "127.0.0.1"\nport = {self.broker.port}\nclient_id = "ingest-fault"\n'
            "[ingest]\nmax_group = 50\nresend_after = 1.0\n"
        )
        with (self.work / "ingest.log").open("ab") as log:
            self.ingest = subprocess.Popen(
                [sys.executable, "-m", "taiqu.cli", "headend", "ingest", "-c", str(self.config)],
                stdout=subprocess.DEVNULL,
                stderr=log,
                env=self.env,
                cwd=self.work,
            )

    def start_gateway(self, target: int, budget: int = 256 * 1024 * 1024) -> None:
        self.gateway = subprocess.Popen(
            [
                sys.executable,
                __file__,
                "--gateway-child",
                str(self.store_path),
                str(self.broker.port),
                str(target),
                str(budget),
            ],
            stdout=subprocess.PIPE,
            stderr=(self.work / "gateway.log").open("a"),
            text=True,
            env=self.env,
            bufsize=1,
        )

    def read_gateway(self, until: str, timeout: float) -> str | None:
        """Read the gateway's lines until one starts with ``until`` (None on timeout)."""
        assert self.gateway is not None and self.gateway.stdout is not None
        deadline = time.monotonic() + timeout
        os.set_blocking(self.gateway.stdout.fileno(), False)
        while time.monotonic() < deadline:
            line = self.gateway.stdout.readline()
            if not line:
                if self.gateway.poll() is not None:
                    return None
                time.sleep(0.01)
                continue
            if line.startswith("resume "):
                self.written = max(self.written, int(line.split()[1]) - 1)
            elif line.startswith("wrote "):
                self.written = max(self.written, int(line.split()[1]))
            elif line.startswith("seqs "):
                _, n, first = line.split()
                self.first_seq[int(n)] = int(first)
            if line.startswith(until):
                return line.strip()
        return None

    def kill_gateway(self) -> None:
        """kill -9 the gateway, then read what it printed before it died."""
        self.kill(self.gateway)
        if self.gateway is not None and self.gateway.stdout and not self.gateway.stdout.closed:
            self.read_gateway("\0never", 5)
            self.gateway.stdout.close()

    def kill(self, proc: subprocess.Popen | None) -> None:  # type: ignore[type-arg]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def stop_all(self) -> None:
        self.kill_gateway()
        if self.ingest is not None and self.ingest.poll() is None:
            self.ingest.send_signal(signal.SIGTERM)
            try:
                self.ingest.wait(20)
            except subprocess.TimeoutExpired:
                self.kill(self.ingest)
        self.broker.stop()

    # faults
    def fault_round(self, kind: str, target: int) -> None:
        """One fault while the gateway writes (it is restarted after every fault)."""
        self.start_gateway(target)
        self.read_gateway("wrote", 30)
        time.sleep(self.rng.uniform(0.05, 0.6))
        if kind == "broker":
            self.broker.kill()
            time.sleep(self.rng.uniform(0.0, 0.3))
            self.broker.start()
        elif kind == "ingest":
            self.kill(self.ingest)
            time.sleep(self.rng.uniform(0.0, 0.3))
            self.start_ingest()
        self.read_gateway("wrote", 2)
        if self.written + 1 < target:  # lines read so far: a lower bound
            self.mid_write += 1
        self.kill_gateway()  # every round ends with a gateway kill -9, mostly mid-write
        self.faults["gateway"] += 1
        if kind != "gateway":
            self.faults[kind] += 1

    def week_outage(self, target: int, budget: int) -> None:
        """The uplink down for a simulated week while the store's disk budget runs out."""
        self.broker.stop()
        self.start_gateway(target, budget)
        self.read_gateway("done", 600)
        self.kill_gateway()
        self.broker.start()
        self.faults["week"] += 1

    def drain(self, target: int, timeout: float) -> bool:
        """Run the gateway until everything up to its last seq is acknowledged."""
        self.start_gateway(target)
        self.read_gateway("done", 300)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.read_gateway("unacked", 5)
            if line and line.split()[1] == "None":
                return True
        return False


def reconcile(db: Path, sweeps: int, first_seq: dict[int, int]) -> dict[str, int]:
    """Every generated record: stored whole, or dropped inside an announced gap, else lost."""
    import sqlite3

    conn = sqlite3.connect(db)
    try:
        stored = {
            (m, t): c
            for m, t, c in conn.execute(
                "select meter, gateway_time, count(*) from readings where gateway = ? "
                "group by meter, gateway_time",
                (GW,),
            )
        }
        events = set(
            conn.execute("select meter, start from events where gateway = ? and meter != ''", (GW,))
        )
        gaps = conn.execute("select first, last, readings from gaps where gateway = ?", (GW,))
        gaps = gaps.fetchall()
        # what the streams hold (stored records and seqs announced lost), less the announced
        streams = conn.execute("select base, upto, ranges from streams where gateway = ?", (GW,))
        held = 0
        for base, upto, ranges in streams.fetchall():
            held += max(upto - base + 1, 0)
            for run in filter(None, ranges.split(",")):
                first, last = map(int, run.split("-"))
                held += last - first + 1
        records_ingested = held - sum(last - first + 1 for first, last, _ in gaps)
    finally:
        conn.close()

    def in_gap(seq: int) -> bool:
        return any(first <= seq <= last for first, last, _ in gaps)

    names = [
        "readings",
        "events",
        "readings_stored",
        "events_stored",
        "readings_in_gaps",
        "events_in_gaps",
        "readings_lost",
        "events_lost",
        "partial",
        "unmapped",
    ]
    out = dict.fromkeys(names, 0)
    out["gaps"] = len(gaps)
    out["gap_readings_announced"] = sum(g[2] for g in gaps)
    out["records_ingested"] = records_ingested
    q = len(QUANTITIES)
    for n in range(sweeps):
        at = sweep_time(n).strftime("%Y-%m-%d %H:%M:%S.%f")
        first = first_seq.get(n)
        for i, meter in enumerate(METERS):
            out["readings"] += q
            got = stored.get((meter, at), 0)
            if got == q:
                out["readings_stored"] += q
            elif got:
                out["partial"] += 1
                out["readings_lost"] += q - got
            elif first is None:
                out["unmapped"] += 1
                out["readings_lost"] += q
            elif in_gap(first + i):
                out["readings_in_gaps"] += q
            else:
                out["readings_lost"] += q
        if n % 5 == 0:
            out["events"] += 1
            if (METERS[n % 40], at) in events:
                out["events_stored"] += 1
            elif first is not None and in_gap(first + len(METERS)):
                out["events_in_gaps"] += 1
            else:
                out["events_lost"] += 1
    out["phantom_readings"] = (
        sum(stored.values()) - out["readings_stored"] - sum(c for c in stored.values() if c != q)
    )
    out["phantom_readings"] += sum(1 for (m, t) in stored if m not in METERS)
    return out


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--gateway-child", nargs=4, metavar=("STORE", "PORT", "TARGET", "BUDGET"))
    parser.add_argument("--gateway-kills", type=int, default=600)
    parser.add_argument("--broker-kills", type=int, default=250)
    parser.add_argument("--ingest-kills", type=int, default=150)
    parser.add_argument("--weeks", type=int, default=1)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--quick", action="store_true", help="20/10/5 kills and one week")
    args = parser.parse_args(argv)
    if args.gateway_child:
        store, port, target, budget = args.gateway_child
        asyncio.run(gateway_main(Path(store), "127.0.0.1", int(port), int(target), int(budget)))
        return 0
    if args.quick:
        args.gateway_kills, args.broker_kills, args.ingest_kills = 20, 10, 5
    plan = (
        ["broker"] * args.broker_kills
        + ["ingest"] * args.ingest_kills
        + ["gateway"] * max(0, args.gateway_kills - args.broker_kills - args.ingest_kills)
    )
    work = Path(tempfile.mkdtemp(prefix="taiqu-faults-"))
    work.chmod(0o755)
    campaign = Campaign(work, args.seed)
    campaign.rng.shuffle(plan)
    started = time.monotonic()
    target = 0
    try:
        campaign.start_broker()
        campaign.start_ingest()
        for i, kind in enumerate(plan):
            target += 25  # the gateway writes at most 25 new sweeps per round
            campaign.fault_round(kind, target)
            if args.weeks and i == len(plan) // 2:
                for _ in range(args.weeks):
                    target = max(target, campaign.written + 1) + WEEK
                    campaign.week_outage(target, budget=3 * 1024 * 1024)
            if (i + 1) % 50 == 0:
                print(
                    f"  {i + 1}/{len(plan)} rounds, sweeps written {campaign.written + 1}, "
                    f"{time.monotonic() - started:.0f}s",
                    flush=True,
                )
        target = campaign.written + 1
        drained = campaign.drain(target, timeout=300)
    finally:
        campaign.stop_all()
    sweeps = campaign.written + 1
    r = reconcile(campaign.db_path, sweeps, campaign.first_seq)
    faults = campaign.faults
    print(
        f"faults injected: {sum(faults.values())} = gateway kill -9 {faults['gateway']}, "
        f"broker kill -9 + restart {faults['broker']}, ingest kill -9 {faults['ingest']}, "
        f"week-long outages with the disk budget exhausted {faults['week']}"
    )
    print(
        f"gateway kills while it was still writing: ≥ {campaign.mid_write}; wall time "
        f"{time.monotonic() - started:.0f}s; drained: {drained}"
    )
    print(
        f"sweeps generated {sweeps} ({sweep_time(0):%Y-%m-%d} … {sweep_time(sweeps - 1):%Y-%m-%d})"
    )
    print(
        f"readings: generated {r['readings']}, stored {r['readings_stored']}, dropped in "
        f"announced gaps {r['readings_in_gaps']}, lost {r['readings_lost']}, phantom "
        f"{r['phantom_readings']}, partial records {r['partial']}"
    )
    print(
        f"events:   generated {r['events']}, stored {r['events_stored']}, dropped in announced "
        f"gaps {r['events_in_gaps']}, lost {r['events_lost']}"
    )
    print(
        f"gap announcements {r['gaps']} (announcing {r['gap_readings_announced']} readings, some "
        f"delivered before the drop); records ingested {r['records_ingested']}; sweeps without "
        f"a seq map {r['unmapped']}"
    )
    ok = drained and not (r["readings_lost"] or r["events_lost"] or r["phantom_readings"])
    print("RESULT", "ok" if ok else "FAILED", f"(work dir {work})")
    if ok:
        shutil.rmtree(work, ignore_errors=True)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
