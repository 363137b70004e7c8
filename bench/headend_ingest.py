"""Ingest throughput and cost: this tree against the baseline tree, in one run, on one broker.

Prints, for the same pre-encoded batches: the broker's raw delivery rate to a plain paho
subscriber, then for SQLite and PostgreSQL and for each code tree (this one, and the baseline:
commit ``5160880`` — the ingest before issue 25 — extracted with ``git archive`` into a temporary
directory, or ``--baseline DIR``): the ingest's rate (every reading committed, acked to the broker
and to the gateway), the ingest process's CPU-ms per 1,000 readings, and on PostgreSQL the
server's (postmaster and every backend, from /proc).  Runs alternate baseline and new
``--repeat`` times; the summary gives medians and the new/baseline ratios.  One reading = one
meter, quantity, time and value.

Each ingest runs in its own process with its tree first on ``sys.path`` (``--worker``), against
a fresh database migrated by that tree; the publisher runs in another process (not counted).
The machine's load average is printed with each run: on a shared machine compare ratios.

    .venv/bin/python bench/headend_ingest.py [--messages 400] [--records 100] [--repeat 2]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BASELINE_COMMIT = "5160880"
QUANTITIES = 5


def bench_meters(records: int, gateways: int = 4) -> list[str]:
    from tests.headend.gen import meter_ids

    return [m for g in range(gateways) for m in meter_ids(records, prefix=f"{g:02d}26")]


def payloads(messages: int, records: int, gateways: int = 4) -> list[tuple[str, bytes]]:
    from protocols.uplink import encode
    from tests.headend.gen import meter_ids, reading_batches

    out: list[tuple[str, bytes]] = []
    per_gw = messages // gateways
    for g in range(gateways):
        gw = f"gw-{g:04d}"
        meters = meter_ids(records, prefix=f"{g:02d}26")
        for b in reading_batches(gw, "be" * 8, meters, steps=per_gw, per_batch=records):
            out.append((f"taiqu/v1/{gw}/up/data", encode(b)))
    return out


def publish(host: str, port: int, data_file: str) -> None:
    """Child process: publish every payload at QoS 1 as fast as the broker takes them."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    items = pickle.loads(Path(data_file).read_bytes())
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-publisher")
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect(host, port)
    client.loop_start()
    infos = [client.publish(t, p, qos=1) for t, p in items]
    for info in infos:
        info.wait_for_publish(120)
    client.loop_stop()
    client.disconnect()


def spawn_publisher(host: str, port: int, data_file: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, __file__, "--publish", host, str(port), str(data_file)], cwd=ROOT
    )


def raw_rate(broker: Any, data_file: Path, total_msgs: int, readings: int) -> float:
    """Readings/s a plain paho subscriber receives (QoS 1, auto-ack)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = 0
    done = threading.Event()

    def on_message(*_: object) -> None:
        nonlocal got
        got += 1
        if got >= total_msgs:
            done.set()

    sub = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="bench-raw")
    sub.on_message = on_message
    subscribed = threading.Event()
    sub.on_subscribe = lambda *_: subscribed.set()
    sub.connect(broker.host, broker.port)
    sub.subscribe("taiqu/v1/+/up/#", qos=1)
    sub.loop_start()
    subscribed.wait(10)
    start = time.perf_counter()
    proc = spawn_publisher(broker.host, broker.port, data_file)
    done.wait(600)
    elapsed = time.perf_counter() - start
    proc.wait()
    sub.loop_stop()
    sub.disconnect()
    return readings / elapsed


# --- the ingest process (runs with the tree under test first on sys.path) ---------------------


def register(engine: Any, meters: list[str]) -> None:
    """Put the bench's meters in the archive, each in the area of the gateway that publishes it
    (a reading is stored only for a meter of the publishing gateway's archive at its time)."""
    from datetime import UTC, datetime

    from headend.db.engine import writing
    from headend.db.tables import areas as areas_table
    from headend.db.tables import meters as meters_table

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    gateways = sorted({int(m[:2]) for m in meters})  # bench_meters: prefix f"{g:02d}26"
    area_rows = [{"id": f"A{g}", "gateway": f"gw-{g:04d}", "valid_from": t0} for g in gateways]
    rows = [
        {
            "id": m,
            "point": m,
            "area": f"A{int(m[:2])}",
            "bus": "b",
            "protocol": "dlt645-2007",
            "address": m,
            "valid_from": t0,
        }
        for m in meters
    ]
    with writing(engine) as conn:
        conn.execute(areas_table.insert(), area_rows)
        conn.execute(meters_table.insert(), rows)


def worker(tree: str, spec: dict[str, Any]) -> None:
    """Ingest process: migrate, subscribe, say ready; on "go" count until every reading is in."""
    sys.path.insert(0, tree)
    from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
    from headend.db import make_engine
    from headend.db.migrate import upgrade
    from headend.ingest.service import IngestService

    settings = Settings(
        database=DatabaseSettings(url=spec["url"]),
        mqtt=MqttSettings(host=spec["host"], port=spec["port"], client_id=spec["client_id"]),
        ingest=IngestSettings(max_group=spec["max_group"]),
    )
    engine = make_engine(settings.database)
    upgrade(engine)
    register(engine, spec["meters"])
    service = IngestService(engine, settings)
    service.start()
    service.connected.wait(10)
    print("ready", flush=True)
    sys.stdin.readline()
    cpu0, start = time.process_time(), time.perf_counter()
    print("started", flush=True)
    deadline = time.monotonic() + 900
    while service.stats.readings < spec["readings"] and time.monotonic() < deadline:
        time.sleep(0.005)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    print(json.dumps({"readings": service.stats.readings, "seconds": elapsed, "cpu": cpu}))
    sys.stdout.flush()
    sys.stdin.readline()  # the parent has sampled the server: stop
    service.stop()
    from sqlalchemy import func, select

    from headend.db.tables import readings

    with engine.connect() as conn:
        rows = conn.execute(select(func.count()).select_from(readings)).scalar_one()
    print(json.dumps({"rows": rows}), flush=True)
    engine.dispose()


def ingest_run(
    tree: Path, url: str, broker: Any, data_file: Path, spec: dict[str, Any], pg: Any | None
) -> dict[str, float]:
    """One ingest process of ``tree`` into ``url``: rate, CPU-ms/1k of it and of the server."""
    from _proc import load

    spec = {**spec, "url": url, "host": broker.host, "port": broker.port}
    proc = subprocess.Popen(
        [sys.executable, __file__, "--worker", str(tree), json.dumps(spec)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=tree,
        env={**os.environ, "PYTHONPATH": str(tree)},
    )
    assert proc.stdin is not None and proc.stdout is not None
    if proc.stdout.readline().strip() != "ready":
        raise SystemExit(f"the ingest of {tree} did not start")
    before_load = load()
    server0 = pg.sample() if pg else 0.0
    stop = threading.Event()

    def sampler() -> None:
        while not stop.wait(0.2):
            pg.sample()

    if pg:
        threading.Thread(target=sampler, daemon=True).start()
    proc.stdin.write("go\n")
    proc.stdin.flush()
    proc.stdout.readline()
    publisher = spawn_publisher(broker.host, broker.port, data_file)
    result = json.loads(proc.stdout.readline())
    stop.set()
    server = (pg.sample() - server0) if pg else 0.0
    proc.stdin.close()
    rows = json.loads(proc.stdout.readline())["rows"]
    proc.wait(60)
    if rows != spec["readings"]:
        raise SystemExit(f"{tree}: {rows} readings stored, {spec['readings']} sent")
    publisher.wait(60)
    stored = result["readings"]
    return {
        "rate": stored / result["seconds"],
        "ingest_ms": result["cpu"] * 1000 / (stored / 1000),
        "server_ms": server * 1000 / (stored / 1000),
        "load": f"{before_load} → {load()}",  # type: ignore[dict-item]
    }


def baseline_tree(work: Path) -> Path:
    """Today's code before issue 25 (commit 5160880), extracted beside the bench's files."""
    tree = work / f"baseline-{BASELINE_COMMIT}"
    tree.mkdir()
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", BASELINE_COMMIT], check=True, capture_output=True
    )
    subprocess.run(["tar", "-x", "-C", str(tree)], input=archive.stdout, check=True)
    return tree


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--publish":
        publish(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        worker(sys.argv[2], json.loads(sys.argv[3]))
        return
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--max-group", type=int, default=50)
    parser.add_argument(
        "--baseline", type=Path, help=f"tree of the baseline (default: {BASELINE_COMMIT})"
    )
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()

    from _proc import PgCpu
    from sqlalchemy import create_engine, text

    from tests.services import Mosquitto, _postgres_instance

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    trees = {"new": ROOT}
    if not args.skip_baseline:
        trees = {"baseline": args.baseline or baseline_tree(work), "new": ROOT}
    items = payloads(args.messages, args.records)
    data_file = work / "payloads.pickle"
    data_file.write_bytes(pickle.dumps(items))
    readings = len(items) * args.records * QUANTITIES
    spec = {
        "meters": bench_meters(args.records),
        "readings": readings,
        "max_group": args.max_group,
    }
    (work / "mq").mkdir()
    broker = Mosquitto("/usr/sbin/mosquitto", work / "mq")
    broker.start()
    print(
        f"{len(items)} messages × {args.records} records × {QUANTITIES} quantities "
        f"= {readings} readings; max_group {args.max_group}; {os.cpu_count()} cores"
    )
    results: dict[tuple[str, str], list[dict[str, Any]]] = {}
    runs = 0
    try:
        base = raw_rate(broker, data_file, len(items), readings)
        print(f"broker raw delivery {base:>10,.0f} readings/s")
        with _postgres_instance() if not args.skip_postgres else _nothing() as pg_url:
            pg = PgCpu(pg_url) if pg_url else None
            for _ in range(args.repeat):
                for db in ("sqlite", "postgresql"):
                    if db == "postgresql" and pg_url is None:
                        continue
                    for name, tree in trees.items():
                        runs += 1
                        if db == "sqlite":
                            url = f"sqlite:///{work / f'run{runs}.db'}"
                        else:
                            admin = create_engine(pg_url, isolation_level="AUTOCOMMIT")
                            with admin.connect() as conn:
                                conn.execute(text(f"CREATE DATABASE run{runs}"))
                            admin.dispose()
                            url = pg_url.rsplit("/", 1)[0] + f"/run{runs}"
                        r = ingest_run(
                            tree,
                            url,
                            broker,
                            data_file,
                            {**spec, "client_id": f"b{runs}"},
                            pg if db == "postgresql" else None,
                        )
                        results.setdefault((db, name), []).append(r)
                        server = f"  server {r['server_ms']:5.1f}" if db == "postgresql" else ""
                        print(
                            f"{db:<10} {name:<8} {r['rate']:>9,.0f} readings/s  "
                            f"ingest {r['ingest_ms']:5.1f}{server} CPU-ms/1k  ({r['load']})",
                            flush=True,
                        )
    finally:
        broker.stop()
    print("\nmedians                readings/s   ingest CPU-ms/1k   server CPU-ms/1k")
    for db in ("sqlite", "postgresql"):
        med = {
            name: {
                k: statistics.median(r[k] for r in rs) for k in ("rate", "ingest_ms", "server_ms")
            }
            for (d, name), rs in results.items()
            if d == db
            for rs in [rs]
        }
        for name, m in med.items():
            server = f"{m['server_ms']:>18.1f}" if db == "postgresql" else ""
            print(f"{db:<10} {name:<10} {m['rate']:>11,.0f} {m['ingest_ms']:>18.1f} {server}")
        if "baseline" in med and "new" in med:
            b, n = med["baseline"], med["new"]
            server = f"{n['server_ms'] / b['server_ms']:>17.2f}×" if db == "postgresql" else ""
            print(
                f"{db:<10} new/base {n['rate'] / b['rate']:>12.2f}× "
                f"{n['ingest_ms'] / b['ingest_ms']:>17.2f}× {server}"
            )


class _nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> None:
        return None


if __name__ == "__main__":
    main()
