"""Scale-out ingest: 1, 2 (and 4 where there are ≥ 4 cores) ingest processes sharing the load.

Starts a private mosquitto and a private PostgreSQL (tests.services), migrates a fresh database
per run (0005 included), starts N ``taiqu headend ingest`` processes in one shared-subscription
group, and drives them with ``bench/loadgen.py`` (a separate process, its CPU not counted):
G gateways × M meters, one 15-minute reading each per interval, on an accelerated clock.

Per run it prints readings/s (stored readings over the time from the first publish to the last
Ack), publish→Ack delay p50/p99 (the Ack follows the commit), CPU-ms per 1,000 readings of the
ingest processes, the broker and PostgreSQL (from /proc: utime+stime), each one's share of a
core, and the checks: readings stored == generated, ``ingested`` rows == records, no dead letters.

    .venv/bin/python bench/scale_ingest.py [--gateways 1000] [--meters 200] [--hours 2]
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import create_engine, func, select, text  # noqa: E402

from headend.config import DatabaseSettings  # noqa: E402
from headend.db import make_engine  # noqa: E402
from headend.db.engine import reading  # noqa: E402
from headend.db.migrate import upgrade  # noqa: E402
from headend.db.tables import dead_letters, ingested, readings  # noqa: E402
from tests.services import Mosquitto, _postgres_instance  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from _proc import PgCpu, cpu_seconds  # noqa: E402


def fresh_database(base: str, name: str) -> str:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    url = base.rsplit("/", 1)[0] + f"/{name}"
    engine = make_engine(DatabaseSettings(url=url))
    upgrade(engine)
    engine.dispose()
    return url


def run(
    n: int, args: argparse.Namespace, broker: Mosquitto, pg_base: str, tmp: Path
) -> dict[str, Any]:
    url = fresh_database(pg_base, f"scale{n}")
    workers = []
    for i in range(n):
        config = tmp / f"w{n}-{i}.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\npool_size = 2\n'
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\nclient_id = "ingest-{n}-{i}"\n'
            'shared_group = "ingest"\n'
            f"[ingest]\nmax_group = {args.max_group}\nresend_after = 20\n"
        )
        ready, stats_file = tmp / f"w{n}-{i}.ready", tmp / f"w{n}-{i}.json"
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "taiqu.cli",
                "headend",
                "ingest",
                "--config",
                str(config),
                "--stats",
                str(stats_file),
                "--ready",
                str(ready),
            ],
            cwd=ROOT,
        )
        workers.append((proc, ready, stats_file))
    deadline = time.monotonic() + 60
    while not all(r.exists() for _, r, _ in workers):
        if time.monotonic() > deadline:
            raise SystemExit("ingest workers did not subscribe")
        time.sleep(0.1)
    pg = PgCpu(pg_base)
    assert broker.process is not None
    before = {
        "ingest": sum(cpu_seconds(p.pid) for p, _, _ in workers),
        "broker": cpu_seconds(broker.process.pid),
        "postgres": pg.sample(),
    }
    out = tmp / f"loadgen{n}.json"
    gen = subprocess.Popen(
        [
            sys.executable,
            str(ROOT / "bench" / "loadgen.py"),
            "--port",
            str(broker.port),
            "--gateways",
            str(args.gateways),
            "--meters",
            str(args.meters),
            "--quantities",
            str(args.quantities),
            "--hours",
            str(args.hours),
            "--factor",
            str(args.factor),
            "--spread",
            str(args.spread),
            "--ack-timeout",
            str(args.ack_timeout),
            "--drain",
            str(args.drain),
            "--tag",
            str(n),
            "--json",
            str(out),
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    while gen.poll() is None:
        pg.sample()
        time.sleep(0.5)
    after = {
        "ingest": sum(cpu_seconds(p.pid) for p, _, _ in workers),
        "broker": cpu_seconds(broker.process.pid),
        "postgres": pg.sample(),
    }
    for proc, _, _ in workers:
        proc.send_signal(signal.SIGTERM)
    for proc, _, _ in workers:
        proc.wait(60)
    for i in range(n):  # retire the run's sessions: they would keep a share of the next run's load
        subprocess.run(
            [
                sys.executable,
                "-m",
                "taiqu.cli",
                "headend",
                "forget-session",
                "--config",
                str(tmp / f"w{n}-{i}.toml"),
            ],
            cwd=ROOT,
            check=True,
        )
    load = json.loads(out.read_text())
    stats = [json.loads(s.read_text()) for _, _, s in workers]
    engine = make_engine(DatabaseSettings(url=url))
    with reading(engine) as conn:
        stored = conn.execute(select(func.count()).select_from(readings)).scalar_one()
        seqs = conn.execute(select(func.count()).select_from(ingested)).scalar_one()
        dead = conn.execute(select(func.count()).select_from(dead_letters)).scalar_one()
    engine.dispose()
    wall = load["total_seconds"]
    cpu = {k: after[k] - before[k] for k in after}
    per_k = {k: 1000 * 1000 * v / max(stored, 1) for k, v in cpu.items()}
    return {
        "processes": n,
        "readings": load["readings"],
        "stored": stored,
        "lost": load["readings"] - stored,
        "records": load["records"],
        "ingested_rows": seqs,
        "dead_letters": dead,
        "unacked_batches": load["unacked_batches"],
        "duplicates_suppressed": sum(s["duplicates"] for s in stats),
        "rewinds": load["rewinds"],
        "db_retries": sum(s["retries"] for s in stats),
        "messages_per_process": [s["messages"] for s in stats],
        "seconds": wall,
        "readings_per_s": stored / wall,
        "offered_per_s": load["readings"] / max(load["publish_seconds"], 1e-9),
        "delay_p50": load["delay_p50"],
        "delay_p99": load["delay_p99"],
        "cpu_ms_per_1000": per_k,
        "core_share": {k: v / wall for k, v in cpu.items()},
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--gateways", type=int, default=1000)
    parser.add_argument("--meters", type=int, default=200)
    parser.add_argument("--quantities", type=int, default=1)
    parser.add_argument("--hours", type=float, default=2.0)
    parser.add_argument("--factor", type=float, default=900.0)
    parser.add_argument("--spread", type=float, default=0.9)
    parser.add_argument("--ack-timeout", type=float, default=30.0, help="gateways' rewind (s)")
    parser.add_argument("--max-group", type=int, default=100)
    parser.add_argument("--drain", type=float, default=600.0)
    parser.add_argument(
        "--processes", default=None, help="e.g. 1,2 (default: 1,2 and 4 if ≥4 cores)"
    )
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    counts = [1, 2, 4] if cores >= 4 else [1, 2]
    if args.processes:
        counts = [int(c) for c in args.processes.split(",")]
    print(
        f"cores: {cores}; load: {args.gateways} gateways × {args.meters} meters × "
        f"{args.quantities} quantities, {args.hours} simulated h at ×{args.factor:g}, "
        f"publishes spread over {args.spread:g} of each interval"
    )
    results = []
    with (
        tempfile.TemporaryDirectory(prefix="taiqu-scale-") as tmpdir,
        _postgres_instance() as pg_base,
    ):
        tmp = Path(tmpdir)
        broker = Mosquitto(_mosquitto(), tmp / "mosquitto")
        broker.workdir.mkdir()
        broker.extra_config = "max_queued_messages 1000000\n"
        broker.start()
        try:
            for n in counts:
                r = run(n, args, broker, pg_base, tmp)
                results.append(r)
                print(json.dumps(r))
        finally:
            broker.stop()
    base = results[0]["readings_per_s"]
    print()
    print(
        "procs  readings/s  ×1-proc  p99 delay s  CPU-ms/1k: ingest broker postgres  "
        "core share: ingest broker postgres  lost dup-rows dead"
    )
    for r in results:
        c, s = r["cpu_ms_per_1000"], r["core_share"]
        print(
            f"{r['processes']:>5}  {r['readings_per_s']:>10.0f}  {r['readings_per_s'] / base:>7.2f}"
            f"  {r['delay_p99']:>11.2f}  {c['ingest']:>16.1f} {c['broker']:>6.1f} "
            f"{c['postgres']:>8.1f}  {s['ingest']:>19.2f} {s['broker']:>6.2f} "
            f"{s['postgres']:>8.2f}  {r['lost']:>4} {r['stored'] - r['readings'] + r['lost']:>8}"
            f" {r['dead_letters']:>4}"
        )
    return 0


def _mosquitto() -> str:
    for candidate in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto"):
        if Path(candidate).exists():
            return candidate
    raise SystemExit("mosquitto is not installed")


if __name__ == "__main__":
    sys.exit(main())
