"""Benchmark: the prepayment charge job's full pass with and without reading validation (VEE), and
the per-account tier true-up, on SQLite.

N meters (one point and one account each, a yearly tiered tariff) with D days of clean hourly
readings (so both passes charge the same intervals).  Prints, measured in the same run on copies of
the same database:
the full pass without validation (the baseline), the full pass with validation, and the tier
true-up of every account, each with its ratio to the baseline; then the estimation pass
(``headend.prepay.estimates``) with no open gap (what every job pass adds) and with every point in
a three-day gap (three estimates each), against the second full pass (nothing new) of the same run.
Usage: python bench/prepay_charging.py [meters] [days]
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Engine, insert

from headend.config import DatabaseSettings
from headend.db import make_engine, writing
from headend.db.migrate import upgrade
from headend.db.tables import areas, meters, readings
from headend.prepay import charging, estimates, store, tiers
from headend.vee.limits import VeeSettings

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
ZONE = ZoneInfo("Asia/Shanghai")
YEARLY = {
    "kind": "tiered",
    "period": "yearly",
    "steps": [
        {"upto": "2160", "price": "0.4883"},
        {"upto": "4200", "price": "0.5383"},
        {"upto": None, "price": "0.7883"},
    ],
}


def seed(engine: Engine, n: int, days: int) -> datetime:
    with writing(engine) as conn:
        conn.execute(insert(areas).values(id="A", name="A", gateway="gw", valid_from=SINCE))
        conn.execute(
            insert(meters),
            [
                {
                    "id": f"m{i}", "point": f"P{i}", "area": "A", "bus": "b",
                    "protocol": "dlt645-2007", "address": f"{i:012d}", "tariff_category": "res",
                    "valid_from": SINCE,
                }
                for i in range(n)
            ],
        )  # fmt: skip
        store.put_tariff(conn, "res", YEARLY, SINCE, actor="b", now=SINCE)
        for i in range(n):
            store.create_account(conn, f"a{i}", mode="prepaid", actor="b", now=SINCE)
            store.link_point(conn, f"a{i}", f"P{i}", SINCE, actor="b", now=SINCE)
        rows = []
        for i in range(n):
            v = Decimal(0)
            for h in range(days * 24):
                v += Decimal("0.7") + Decimal(h % 5) / 10
                value = str(v)
                t = SINCE + timedelta(hours=h)
                rows.append(
                    {"meter": f"m{i}", "quantity": "energy.active.import.total", "time": t,
                     "kind": "interval", "value": value, "gateway": "gw", "gateway_time": t,
                     "flags": ""}
                )  # fmt: skip
        for start in range(0, len(rows), 5000):
            conn.execute(insert(readings), rows[start : start + 5000])
    return SINCE + timedelta(days=days)


def timed(engine: Engine, now: datetime, vee: VeeSettings | None) -> float:
    @contextmanager
    def factory() -> Iterator[Connection]:
        with writing(engine) as conn:
            yield conn

    started = time.perf_counter()
    result = charging.charge_all(
        factory, ZONE, now=now, full=True, lookback=timedelta(days=62), vee=vee
    )
    elapsed = time.perf_counter() - started
    print(f"  charges created {result.created}", flush=True)
    return elapsed


def main() -> None:
    n, days = (int(a) for a in [*sys.argv[1:], "50", "14"][:2])
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "base.db"
        engine = make_engine(DatabaseSettings(url=f"sqlite:///{base}"))
        upgrade(engine)
        now = seed(engine, n, days)
        engine.dispose()
        copies = {}
        for name in ("plain", "vee"):
            shutil.copy(base, Path(tmp) / f"{name}.db")
            copies[name] = make_engine(DatabaseSettings(url=f"sqlite:///{Path(tmp) / name}.db"))
        print(f"{n} meters × {days} days of hourly readings ({n * days * 24} readings)")
        plain = timed(copies["plain"], now, None)
        print(f"full pass, no validation (baseline): {plain * 1000:.0f} ms")
        checked = timed(copies["vee"], now, VeeSettings())
        print(f"full pass with VEE: {checked * 1000:.0f} ms  ({checked / plain:.2f}× baseline)")

        @contextmanager
        def factory() -> Iterator[Connection]:
            with writing(copies["vee"]) as conn:
                yield conn

        started = time.perf_counter()
        posted = tiers.true_up_all(factory, ZONE, now)
        trued = time.perf_counter() - started
        print(
            f"tier true-up of {n} accounts ({posted} rows): {trued * 1000:.0f} ms  "
            f"({trued / plain:.2f}× baseline)"
        )
        again = time.perf_counter()
        timed(copies["vee"], now + timedelta(minutes=1), VeeSettings())
        second = time.perf_counter() - again
        print(f"second full pass with VEE (nothing new): {second * 1000:.0f} ms")
        policy = VeeSettings(estimate_charging="all")
        for label, at in (
            ("estimation pass, no open gap", now + timedelta(minutes=2)),
            ("estimation pass, every point 3 days open", now + timedelta(days=3)),
        ):
            started = time.perf_counter()
            made = estimates.estimate_all(factory, ZONE, now=at, settings=policy)
            took = time.perf_counter() - started
            print(
                f"{label} ({made.created} estimates): {took * 1000:.0f} ms  "
                f"({took / second:.2f}× the second full pass)"
            )
        for e in copies.values():
            e.dispose()


if __name__ == "__main__":
    main()
