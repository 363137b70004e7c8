"""Benchmark: the daily analytics recompute of areas of N meters on SQLite, before and after.

Times ``recompute`` of one day (with its 14-day suspect window and month to date) for the code of
this tree and, as the baseline in the same run, for the code at ``BENCH_BASE`` (default: the
commit before two-way energy, bands and context-aware suspects), extracted with ``git archive``
and run in a subprocess on an identical database.  Rounds alternate old and new; the median of
each is reported.  Also times the new code with export (reverse) registers frozen too, as
gateways that read two-way energy store them.

With ``--intervals [seed] [rounds]``: the suspects' workload instead — ``simulators.grid``,
4 areas × 200 customers, 7 days of daily freezes and 15-minute interval readings (3.25 million
rows), one database; the recompute of the last day by the issue's code (``BENCH_BASE``, as
above: the issue's "1.58 s" was that code's), by the code before the daily interval aggregates
(``BENCH_INTERVALS_BASE``, default ``7c0464d``) and by this tree without them, with 6 of 7 days
stored (the daily job's case) and with all stored, in alternating subprocesses (recompute
results are upserts: every run writes the same rows).

Usage: python bench/analytics_recompute.py [areas] [meters_per_area] [days] [rounds]
       python bench/analytics_recompute.py --intervals [seed] [rounds]
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BASE = os.environ.get("BENCH_BASE", "5160880")
INTERVALS_BASE = "7c0464d"  # --intervals: the code before the daily interval aggregates
SINCE = datetime(2025, 1, 1, tzinfo=UTC)


def measure(n_areas: int, n_meters: int, n_days: int, export: bool) -> dict[str, float]:
    """Build the database and time one recompute with whatever ``headend`` is importable."""
    from sqlalchemy import insert

    from headend.analytics.model import boundary
    from headend.analytics.service import recompute
    from headend.analytics.settings import AnalyticsSettings
    from headend.config import DatabaseSettings
    from headend.db import make_engine, writing
    from headend.db.migrate import upgrade
    from headend.db.tables import areas, meters, readings

    settings = AnalyticsSettings()
    zone = settings.tz
    first = date(2026, 3, 1)
    quantities = ["energy.active.import.total"] + (["energy.active.export.total"] * export)
    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(
            DatabaseSettings(url=f"sqlite:///{Path(tmp) / 'b.db'}", sqlite_synchronous="NORMAL")
        )
        upgrade(engine)
        with writing(engine) as conn:
            for a in range(n_areas):
                conn.execute(insert(areas).values(id=f"A{a}", gateway=f"gw{a}", valid_from=SINCE))
                conn.execute(
                    insert(meters),
                    [
                        {"id": f"A{a}-{i}", "point": f"A{a}-{i}", "area": f"A{a}", "bus": "b",
                         "protocol": "dlt645-2007", "address": f"{i:012d}",
                         "role": "area_total" if i == 0 else "customer", "valid_from": SINCE}
                        for i in range(n_meters + 1)
                    ],
                )  # fmt: skip
                rows = []
                for d in range(n_days + 1):
                    t = boundary(first + timedelta(days=d), zone)
                    for i in range(n_meters + 1):
                        v = Decimal(d * (10 * n_meters * 105 // 100 if i == 0 else 10))
                        for q in quantities:
                            rows.append(
                                {"meter": f"A{a}-{i}", "quantity": q, "time": t,
                                 "kind": "daily_frozen", "value": str(v if "import" in q else 0),
                                 "gateway": f"gw{a}", "gateway_time": t + timedelta(minutes=6),
                                 "freeze_time": t, "flags": ""}
                            )  # fmt: skip
                conn.execute(insert(readings), rows)
        last = first + timedelta(days=n_days - 1)
        t0, c0 = time.perf_counter(), time.process_time()
        recompute(engine, settings, last, last, datetime.now(UTC))
        took, cpu = time.perf_counter() - t0, time.process_time() - c0
        engine.dispose()
    return {"recompute_s": took, "cpu_s": cpu}


def _run(pythonpath: Path, args: list[str], export: bool) -> tuple[float, float]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    out = subprocess.run(
        [sys.executable, __file__, "--measure", *args, "1" if export else "0"],
        env=env, cwd=pythonpath, capture_output=True, text=True, check=True,
    )  # fmt: skip
    got = json.loads(out.stdout.strip().splitlines()[-1])
    return float(got["recompute_s"]), float(got["cpu_s"])


MODES = ("issue", "default", "raw", "steady", "stored")


def measure_db(path: str, last: str, mode: str = "default") -> dict[str, float]:
    """Time one recompute of ``last`` on an existing database with whatever ``headend`` is
    importable.  ``mode`` (this tree only): ``raw`` without the daily interval aggregates,
    ``steady`` with every day's aggregate stored but the last day's (the daily job's case: the
    new day is computed from its readings and stored), ``stored`` with all of them (a re-run)."""
    from headend.analytics.service import recompute
    from headend.analytics.settings import AnalyticsSettings
    from headend.config import DatabaseSettings
    from headend.db import make_engine

    engine = make_engine(DatabaseSettings(url=f"sqlite:///{path}"))
    settings = AnalyticsSettings() if mode == "default" else AnalyticsSettings(
        interval_aggregates=mode != "raw"
    )  # fmt: skip
    if mode == "steady":
        from sqlalchemy import delete

        from headend.db import writing
        from headend.db.analytics_tables import analytics_interval_days as t

        with writing(engine) as conn:
            conn.execute(delete(t).where(t.c.day == last))
    day = date.fromisoformat(last)
    t0, c0 = time.perf_counter(), time.process_time()
    recompute(engine, settings, day, day, datetime(2026, 3, 20, tzinfo=UTC))
    took, cpu = time.perf_counter() - t0, time.process_time() - c0
    engine.dispose()
    return {"recompute_s": took, "cpu_s": cpu}


def intervals(seed: int, rounds: int) -> None:
    """Before/after of the recompute with interval readings (see the module docstring)."""
    sys.path.insert(0, str(ROOT))
    from headend.config import DatabaseSettings
    from headend.db import make_engine
    from headend.db.migrate import upgrade
    from simulators.grid import GridConfig, simulate
    from tests.headend.analytics.grid_db import store_archive, store_readings

    base = os.environ.get("BENCH_INTERVALS_BASE", INTERVALS_BASE)
    cfg = GridConfig(areas=4, customers=200, days=7, seed=seed)
    last = (cfg.start + timedelta(days=cfg.days - 1)).isoformat()
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        db = tmp / "i.db"
        engine = make_engine(DatabaseSettings(url=f"sqlite:///{db}", sqlite_synchronous="NORMAL"))
        upgrade(engine)
        run = simulate(cfg)
        store_archive(engine, run)
        rows = store_readings(engine, run, interval_every=1)
        engine.dispose()
        trees = {}
        for name, rev in (("old", base), ("issue", BASE)):
            trees[name] = tmp / name
            trees[name].mkdir()
            archive = subprocess.run(
                ["git", "archive", rev, "headend", "protocols", "taiqu"],
                cwd=ROOT, capture_output=True, check=True,
            )  # fmt: skip
            subprocess.run(["tar", "-x", "-C", str(trees[name])], input=archive.stdout, check=True)

        def one(tree: Path, mode: str) -> float:
            got = subprocess.run(
                [sys.executable, __file__, "--measure-db", str(db), last, mode],
                env={**os.environ, "PYTHONPATH": str(tree)}, cwd=tree,
                capture_output=True, text=True, check=True,
            )  # fmt: skip
            return float(json.loads(got.stdout.strip().splitlines()[-1])["cpu_s"])

        fill = one(ROOT, "stored")  # the first run computes and stores every day
        times: dict[str, list[float]] = {m: [] for m in MODES}
        for _ in range(rounds):
            for mode in MODES:
                tree = {"issue": trees["issue"], "default": trees["old"]}.get(mode, ROOT)
                times[mode].append(one(tree, "default" if mode == "issue" else mode))
    b, i = statistics.median(times["default"]), statistics.median(times["issue"])
    print(f"4 areas × 200 customers, 7 days of 15-minute readings ({rows} rows), seed {seed}: "
          f"recompute of one day, CPU s, {rounds} alternating rounds")  # fmt: skip
    labels = {
        "issue": f"the issue's code ({BASE})",
        "default": f"baseline (code at {base})",
        "raw": "this tree, aggregates off",
        "steady": "this tree, 6 days stored, last computed",
        "stored": "this tree, all 7 days stored",
    }
    for mode in MODES:
        m = statistics.median(times[mode])
        print(f"{labels[mode]:<42} {' '.join(f'{x:.2f}' for x in times[mode])}  median {m:.2f}"
              f"  = {m / b:.2f} × baseline, {m / i:.2f} × the issue's")  # fmt: skip
    print(f"{'this tree, first run (computes all 7 days)':<42} {fill:.2f}")


def main(argv: list[str]) -> None:
    if argv[:1] == ["--measure-db"]:
        print(json.dumps(measure_db(argv[1], argv[2], *argv[3:4])))
        return
    if argv[:1] == ["--intervals"]:
        seed, rounds = (int(a) for a in [*argv[1:], "3", "3"][:2])
        intervals(seed, rounds)
        return
    if argv[:1] == ["--measure"]:
        a, m, d, export = (int(x) for x in argv[1:5])
        print(json.dumps(measure(a, m, d, bool(export))))
        return
    n_areas, n_meters, n_days, rounds = (int(a) for a in [*argv, "4", "200", "30", "3"][:4])
    args = [str(n_areas), str(n_meters), str(n_days)]
    with tempfile.TemporaryDirectory() as tmp:
        old = Path(tmp)
        archive = subprocess.run(
            ["git", "archive", BASE, "headend", "protocols", "taiqu"],
            cwd=ROOT, capture_output=True, check=True,
        )  # fmt: skip
        subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
        (old / "bench").mkdir()
        before, after, two_way = [], [], []
        for _ in range(rounds):
            before.append(_run(old, args, export=False))
            after.append(_run(ROOT, args, export=False))
            two_way.append(_run(ROOT, args, export=True))
    print(
        f"{n_areas} areas × {n_meters + 1} meters, {n_days} days of daily freezes, recompute of "
        f"one day, median of {rounds} alternating rounds (wall s / CPU s)"
    )
    (bw, bc), (aw, ac), (ww, wc) = (
        (statistics.median(r[0] for r in x), statistics.median(r[1] for r in x))
        for x in (before, after, two_way)
    )
    print(f"baseline (code at {BASE}), import only   {bw:7.3f} / {bc:7.3f}")
    print(
        f"this tree, import only                  {aw:7.3f} / {ac:7.3f}  = {ac / bc:5.2f} × (CPU)"
    )
    print(
        f"this tree, import + export freezes      {ww:7.3f} / {wc:7.3f}  = {wc / bc:5.2f} × (CPU)"
    )


if __name__ == "__main__":
    main(sys.argv[1:])
