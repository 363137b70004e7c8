"""API latency: "latest readings of a 500-meter area" with millions of readings stored.

Loads ``--areas`` × 500 meters and ``--readings`` interval readings of
``energy.active.import.total`` spread evenly over them (set-based SQL, not the ingest), then
times ``GET /api/v1/areas/{id}/latest`` through the full app (routing, bearer-token check, query,
JSON): now, as of mid-history, and as of a time a week after every meter's last reading (a
second probe per meter, over a quarter); readings end at the current hour, and PostgreSQL has a year
of monthly partitions.  As the baseline of the same run, ``GET /api/v1/areas/{id}`` (token check
and one small query).  Prints p50/p99 and their ratio to the baseline, for SQLite and PostgreSQL.

    .venv/bin/python bench/headend_api.py [--readings 10000000] [--requests 300]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

AREA_SIZE = 500
QUANTITY = "energy.active.import.total"
STEP = timedelta(minutes=15)
END = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)  # the newest reading


def first_time(per_meter: int) -> datetime:
    """The oldest reading's time: each meter's readings end at ``END``, 15 minutes apart."""
    return END - (per_meter - 1) * STEP


def load(engine, areas: int, readings: int) -> None:
    """The archive (areas × 500 meters) and ``readings`` readings, loaded set-based."""
    from headend.db.engine import writing
    from headend.db.scale import ensure_partitions
    from headend.db.tables import areas as areas_t
    from headend.db.tables import meters as meters_t

    meters = [f"{a:02d}{m:010d}" for a in range(areas) for m in range(AREA_SIZE)]
    per_meter = readings // len(meters)
    t0 = first_time(per_meter)
    sqlite_t0 = t0.strftime("%Y-%m-%d %H:%M:%S")
    with writing(engine) as conn:
        conn.execute(
            areas_t.insert(),
            [
                {
                    "id": f"A{a}",
                    "name": f"area {a}",
                    "gateway": f"gw-{a:04d}",
                    "valid_from": t0 - STEP,
                }
                for a in range(areas)
            ],
        )
        conn.execute(
            meters_t.insert(),
            [
                {
                    "id": m,
                    "point": m,
                    "area": f"A{int(m[:2])}",
                    "bus": "b",
                    "protocol": "dlt645-2007",
                    "address": m,
                    "multiplier": "1",
                    "role": "area_total" if m.endswith("0" * 10) else "customer",
                    "valid_from": t0 - STEP,
                }
                for m in meters
            ],
        )
    with writing(engine) as conn:
        if engine.dialect.name == "postgresql":
            # a year of monthly partitions, as a head-end keeping twelve months raw has
            ensure_partitions(conn, END, ahead=3, behind=12)
            conn.exec_driver_sql(f"""
                INSERT INTO readings (meter, quantity, time, kind, value, gateway, gateway_time,
                                      flags)
                SELECT m.id, '{QUANTITY}', t, 'interval', (s * 0.25)::text, 'gw', t, ''
                FROM (SELECT id FROM meters ORDER BY id) m
                CROSS JOIN LATERAL generate_series(0, {per_meter - 1}) s
                CROSS JOIN LATERAL (SELECT timestamptz '{t0.isoformat()}'
                                           + s * interval '15 minutes' AS t) tt
            """)
            conn.exec_driver_sql("ANALYZE readings")
        else:
            conn.exec_driver_sql(f"""
                WITH RECURSIVE s(n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s
                                        WHERE n < {per_meter - 1})
                INSERT INTO readings (meter, quantity, time, kind, value, gateway, gateway_time,
                                      flags)
                SELECT m.id, '{QUANTITY}', strftime('%Y-%m-%d %H:%M:%S.000000', '{sqlite_t0}',
                       '+' || (s.n * 15) || ' minutes'), 'interval', s.n * 0.25, 'gw',
                       strftime('%Y-%m-%d %H:%M:%S.000000', '{sqlite_t0}',
                       '+' || (s.n * 15) || ' minutes'), ''
                FROM (SELECT id FROM meters ORDER BY id) m, s
            """)
            conn.exec_driver_sql("ANALYZE")


def timed(client, url: str, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        r = client.get(url)
        out.append((time.perf_counter() - start) * 1000)
        assert r.status_code == 200, r.text
    return out


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[int(q) - 1]


def run(
    url: str, label: str, areas: int, readings: int, requests: int, reuse: bool = False
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from fastapi.testclient import TestClient

    from headend.app import create_app, tune_gc
    from headend.auth import users
    from headend.config import DatabaseSettings, Settings
    from headend.db import make_engine
    from headend.db.engine import writing
    from headend.db.migrate import upgrade

    os.environ.setdefault("TAIQU_HEADEND_SECRET", "b" * 48)
    settings = Settings(database=DatabaseSettings(url=url))
    engine = make_engine(settings.database)
    upgrade(engine)
    start = time.perf_counter()
    if not reuse:
        load(engine, areas, readings)
    print(
        f"{label}: {'reused' if reuse else 'loaded'} {readings:,} readings of "
        f"{areas * AREA_SIZE:,} meters in {time.perf_counter() - start:.0f} s"
    )
    if not reuse:
        with writing(engine) as conn:
            users.create(
                conn, "bench", "admin", "bench-password-1", actor="bench", now=datetime.now(UTC)
            )
    app = create_app(settings, engine=engine, ingest=False)
    with TestClient(app) as client:
        r = client.post(
            "/api/v1/auth/token", data={"username": "bench", "password": "bench-password-1"}
        )
        client.headers["Authorization"] = "Bearer " + r.json()["access_token"]
        latest = f"/api/v1/areas/A{areas // 2}/latest?quantity={QUANTITY}"
        body = client.get(latest).json()
        assert body["read"] == AREA_SIZE, body["read"]
        timed(client, latest, 20)  # warm up
        tune_gc()  # as `taiqu headend serve` does
        base = timed(client, f"/api/v1/areas/A{areas // 2}", requests)
        per_meter = readings // (areas * AREA_SIZE)
        mid = first_time(per_meter) + per_meter // 2 * STEP
        silent = END + timedelta(days=8)  # nothing in the week before: a second probe
        cases = {
            "latest of 500 meters": timed(client, latest, requests),
            "... as of mid-history": timed(
                client, f"{latest}&at={quote(mid.isoformat())}", requests
            ),
            "... all silent a week": timed(
                client, f"{latest}&at={quote(silent.isoformat())}", requests
            ),
        }
    b50, b99 = pct(base, 50), pct(base, 99)
    print(f"{label}: baseline GET area       p50 {b50:6.1f} ms  p99 {b99:6.1f} ms")
    for name, times in cases.items():
        p50, p99 = pct(times, 50), pct(times, 99)
        print(
            f"{label}: {name:<23} p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
            f"({p50 / b50:.1f}× / {p99 / b99:.1f}× baseline)"
        )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--readings", type=int, default=10_000_000)
    parser.add_argument("--areas", type=int, default=20)
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--only", choices=["sqlite", "postgresql"])
    parser.add_argument("--sqlite-file", help="reuse a database this script loaded before")
    args = parser.parse_args()
    from tests.services import _postgres_instance

    if args.only in (None, "postgresql"):
        with _postgres_instance() as url:
            run(url, "PostgreSQL", args.areas, args.readings, args.requests)
    if args.only in (None, "sqlite"):
        if args.sqlite_file:
            run(
                f"sqlite:///{args.sqlite_file}",
                "SQLite",
                args.areas,
                args.readings,
                args.requests,
                reuse=True,
            )
        else:
            work = Path(tempfile.mkdtemp(prefix="bench-api-"))
            run(f"sqlite:///{work / 'h.db'}", "SQLite", args.areas, args.readings, args.requests)


if __name__ == "__main__":
    main()
