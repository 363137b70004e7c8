"""Scale-out ingest: 1, 2 (and 4 where there are ≥ 4 cores) ingest processes sharing the load.

Starts a private mosquitto and a private PostgreSQL (tests.services), migrates a fresh database
per run (with the code tree under test), starts N ``taiqu headend ingest`` processes of that tree
in one shared-subscription group, and drives them with ``bench/loadgen.py`` (a separate process,
its CPU not counted): G gateways × M meters, one 15-minute reading each per interval, on an
accelerated clock.  With ``--baseline`` every run is repeated with the baseline tree (commit
``5160880``, the ingest before issue 25, extracted with ``git archive``; or ``--baseline-tree``),
alternating, so both are measured in the same session.

Per run it prints readings/s (stored readings over the time from the first publish to the last
Ack), publish→Ack delay p50/p99 (the Ack follows the commit), CPU-ms per 1,000 readings of the
ingest processes, the broker and PostgreSQL (from /proc: utime+stime), each one's share of a
core, and the checks: readings stored == generated, every stream gap-free and holding every
record, no dead letters.

    .venv/bin/python bench/scale_ingest.py [--gateways 1000] [--meters 200] [--hours 2] [--baseline]
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

from sqlalchemy import create_engine, text  # noqa: E402

from tests.services import Mosquitto, _postgres_instance  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from _proc import PgCpu, cpu_seconds  # noqa: E402


def fresh_database(base: str, name: str) -> str:
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    return base.rsplit("/", 1)[0] + f"/{name}"


def in_tree(tree: Path) -> dict[str, Any]:
    """Popen arguments running Python with ``tree`` first on the path."""
    return {"cwd": tree, "env": {**os.environ, "PYTHONPATH": str(tree)}}


def run(
    n: int,
    args: argparse.Namespace,
    broker: Mosquitto,
    pg_base: str,
    tmp: Path,
    tree: Path = ROOT,
    label: str = "new",
) -> dict[str, Any]:
    url = fresh_database(pg_base, f"scale{n}_{label}")
    migrate = tmp / f"migrate-{n}-{label}.toml"
    migrate.write_text(f'[database]\nurl = "{url}"\n')
    subprocess.run(
        [sys.executable, "-m", "taiqu.cli", "headend", "migrate", "--config", str(migrate)],
        check=True,
        stdout=subprocess.DEVNULL,
        **in_tree(tree),
    )
    workers = []
    for i in range(n):
        config = tmp / f"w{n}-{i}-{label}.toml"
        config.write_text(
            f'[database]\nurl = "{url}"\npool_size = 2\n'
            f'[mqtt]\nhost = "{broker.host}"\nport = {broker.port}\n'
            f'client_id = "ingest-{n}-{i}-{label}"\n'
            'shared_group = "ingest"\n'
            f"[ingest]\nmax_group = {args.max_group}\nresend_after = 20\n"
        )
        ready, stats_file = tmp / f"w{n}-{i}-{label}.ready", tmp / f"w{n}-{i}-{label}.json"
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
            **in_tree(tree),
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
    out = tmp / f"loadgen{n}-{label}.json"
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
                str(tmp / f"w{n}-{i}-{label}.toml"),
            ],
            check=True,
            **in_tree(tree),
        )
    load = json.loads(out.read_text())
    stats = [json.loads(s.read_text()) for _, _, s in workers]
    engine = create_engine(url)  # plain SQL: both trees' schemas answer it
    with engine.connect() as conn:
        stored = conn.execute(text("SELECT count(*) FROM readings")).scalar_one()
        # every stream gap-free from seq 1: [base, upto] is all it holds
        seqs = conn.execute(
            text("SELECT coalesce(sum(upto - base + 1), 0) FROM streams WHERE highest = upto")
        ).scalar_one()
        dead = conn.execute(text("SELECT count(*) FROM dead_letters")).scalar_one()
        # bytes kept to tell duplicates (the baseline's ``ingested`` rows, or the stream rows)
        dedup = conn.execute(
            text(
                "SELECT coalesce(pg_total_relation_size(to_regclass('ingested')), 0) "
                "+ pg_total_relation_size('streams')"
            )
        ).scalar_one()
    engine.dispose()
    wall = load["total_seconds"]
    cpu = {k: after[k] - before[k] for k in after}
    per_k = {k: 1000 * 1000 * v / max(stored, 1) for k, v in cpu.items()}
    return {
        "tree": label,
        "processes": n,
        "readings": load["readings"],
        "stored": stored,
        "lost": load["readings"] - stored,
        "records": load["records"],
        "records_held": int(seqs),
        "dedup_bytes_per_record": int(dedup) / max(load["records"], 1),
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
    parser.add_argument("--baseline", action="store_true", help="also run the baseline tree")
    parser.add_argument("--baseline-tree", type=Path, help="the baseline's tree (default: 5160880)")
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
        trees = {"new": ROOT}
        if args.baseline or args.baseline_tree:
            trees = {"baseline": args.baseline_tree or baseline_tree(tmp), **trees}
        try:
            for n in counts:
                for label, tree in trees.items():
                    r = run(n, args, broker, pg_base, tmp, tree, label)
                    results.append(r)
                    print(json.dumps(r), flush=True)
        finally:
            broker.stop()
    base = results[0]["readings_per_s"]
    print()
    print(
        "tree      procs  readings/s  ×first  p99 delay s  CPU-ms/1k: ingest broker postgres  "
        "core share: ingest broker postgres  lost dup-rows dead"
    )
    for r in results:
        c, s = r["cpu_ms_per_1000"], r["core_share"]
        print(
            f"{r['tree']:<8} {r['processes']:>5}  {r['readings_per_s']:>10.0f}"
            f"  {r['readings_per_s'] / base:>6.2f}"
            f"  {r['delay_p99']:>11.2f}  {c['ingest']:>16.1f} {c['broker']:>6.1f} "
            f"{c['postgres']:>8.1f}  {s['ingest']:>19.2f} {s['broker']:>6.2f} "
            f"{s['postgres']:>8.2f}  {r['lost']:>4} {r['stored'] - r['readings'] + r['lost']:>8}"
            f" {r['dead_letters']:>4}"
        )
    return 0


def baseline_tree(tmp: Path) -> Path:
    """The ingest before issue 25 (commit 5160880), extracted with ``git archive``."""
    tree = tmp / "baseline-5160880"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "5160880"], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def _mosquitto() -> str:
    for candidate in ("/usr/sbin/mosquitto", "/usr/bin/mosquitto"):
        if Path(candidate).exists():
            return candidate
    raise SystemExit("mosquitto is not installed")


if __name__ == "__main__":
    sys.exit(main())
