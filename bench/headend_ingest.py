"""Ingest throughput: readings/s through mosquitto into SQLite and PostgreSQL.

Prints, for the same run and the same pre-encoded batches: the broker's raw delivery rate to a
plain paho subscriber (the baseline), then the ingest's rate into each database (every reading
committed, acked to the broker and to the gateway), their ratio to the baseline, and the ingest
process's CPU-ms per 1,000 readings.  One reading = one meter, quantity, time and value.
The publisher runs in a child process so its CPU is not counted.

    .venv/bin/python bench/headend_ingest.py [--messages 400] [--records 100]
"""

from __future__ import annotations

import argparse
import pickle
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

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
        [sys.executable, __file__, "--publish", host, str(port), str(data_file)]
    )


def raw_rate(broker, data_file: Path, total_msgs: int, readings: int) -> float:
    """Readings/s a plain paho subscriber receives (QoS 1, auto-ack)."""
    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    got = 0
    done = threading.Event()
    first: list[float] = []

    def on_message(*_: object) -> None:
        nonlocal got
        if not first:
            first.append(time.perf_counter())
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


def register(engine, meters: list[str]) -> None:
    """Put the bench's meters in the archive (readings of unknown meters take a slower path)."""
    from datetime import UTC, datetime

    from headend.db.engine import writing
    from headend.db.tables import meters as meters_table

    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [
        {
            "id": m,
            "point": m,
            "area": "A1",
            "bus": "b",
            "protocol": "dlt645-2007",
            "address": m,
            "valid_from": t0,
        }
        for m in meters
    ]
    with writing(engine) as conn:
        conn.execute(meters_table.insert(), rows)


def ingest_rate(
    broker, url: str, data_file: Path, readings: int, client_id: str, meters: list[str]
) -> tuple[float, float]:
    """(readings/s, CPU-ms per 1,000 readings) of one ingest process into ``url``."""
    from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
    from headend.db import make_engine
    from headend.db.migrate import upgrade
    from headend.ingest.service import IngestService

    settings = Settings(
        database=DatabaseSettings(url=url),
        mqtt=MqttSettings(host=broker.host, port=broker.port, client_id=client_id),
        ingest=IngestSettings(max_group=50),
    )
    engine = make_engine(settings.database)
    upgrade(engine)
    register(engine, meters)
    service = IngestService(engine, settings)
    service.start()
    service.connected.wait(10)
    cpu0, start = time.process_time(), time.perf_counter()
    proc = spawn_publisher(broker.host, broker.port, data_file)
    deadline = time.monotonic() + 900
    while service.stats.readings < readings and time.monotonic() < deadline:
        time.sleep(0.01)
    elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu0
    proc.wait()
    stored = service.stats.readings
    service.stop()
    engine.dispose()
    return stored / elapsed, cpu * 1000 / (stored / 1000)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--publish":
        publish(sys.argv[2], int(sys.argv[3]), sys.argv[4])
        return
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=400)
    parser.add_argument("--records", type=int, default=100)
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    from tests.services import Mosquitto, _postgres_instance

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    items = payloads(args.messages, args.records)
    meters = bench_meters(args.records)
    data_file = work / "payloads.pickle"
    data_file.write_bytes(pickle.dumps(items))
    readings = len(items) * args.records * QUANTITIES
    (work / "mq").mkdir()
    broker = Mosquitto("/usr/sbin/mosquitto", work / "mq")
    broker.start()
    print(
        f"{len(items)} messages × {args.records} records × {QUANTITIES} quantities "
        f"= {readings} readings"
    )
    try:
        base = raw_rate(broker, data_file, len(items), readings)
        print(f"broker raw delivery      {base:>10,.0f} readings/s  (baseline)")
        rate, cpu = ingest_rate(
            broker, f"sqlite:///{work / 'h.db'}", data_file, readings, "b-sq", meters
        )
        print(
            f"ingest → SQLite (WAL)    {rate:>10,.0f} readings/s  {rate / base:5.2f}× baseline"
            f"  {cpu:6.1f} CPU-ms/1k readings"
        )
        if not args.skip_postgres:
            with _postgres_instance() as url:
                rate, cpu = ingest_rate(broker, url, data_file, readings, "b-pg", meters)
            print(
                f"ingest → PostgreSQL      {rate:>10,.0f} readings/s  {rate / base:5.2f}× "
                f"baseline  {cpu:6.1f} CPU-ms/1k readings"
            )
    finally:
        broker.stop()


if __name__ == "__main__":
    main()
