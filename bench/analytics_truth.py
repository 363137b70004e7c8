"""Benchmark: the analytics against simulated truth (``simulators.grid``), before and after.

1. PV line loss: 4 areas × 200 customers, one area half rooftop PV, 7 days of daily freezes
   (import and export).  Each day's loss rate against the simulated technical loss, for this
   tree and for the code at ``BENCH_BASE`` (extracted with ``git archive``, run in a subprocess
   on a copy of the same database).
2. Suspects: 4 areas × 200 customers with the default mix (PV, vacant, seasonal, arrears
   disconnections, bypass 20–80 %, cover open, neutral bypass, bridged relay; every theft older
   than the data), 7 days of 15-minute interval readings.  Precision at 10 and mean average
   precision of the ranked list per area, how many context customers (PV, vacant, seasonal,
   disconnected) reach the top 10, and whether every theft ranks above the first honest one.
3. Peers: the suspects population of 2. (with ``BENCH_PEERS_CIRCUIT=0.01`` also 2 circuit
   bypasses per area) and, in area A2, 8 more customers bypassing 50 % since before the data
   (the demo's area2); this tree against the
   ranking before the comparison with similar customers (``PEERS_BASE``), with and without the
   area meter's interval readings (an area meter read only for its daily freeze leaves no loss
   curve to fit).
4. Membership: 4 areas × 200 meters, 3 % mis-mapped: share of mis-mapped meters flagged and of
   correctly mapped ones flagged, with 7 and 3 days of 15-minute and of 1-hour voltages.

Seeds: ``BENCH_SUSPECTS_SEEDS`` / ``BENCH_PEERS_SEEDS`` (comma-separated; default 3,8 and
5,9), ``BENCH_PEERS_CURVE=1`` runs the peers population with the area meter's curve only.

Usage: python bench/analytics_truth.py [pv|suspects|peers|membership ...]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if "--results" not in sys.argv:  # the baseline's subprocess imports the old tree only
    sys.path.insert(0, str(ROOT))
BASE = os.environ.get("BENCH_BASE", "5160880")
NOW = datetime(2026, 3, 20, tzinfo=UTC)
CONTEXT = ("pv", "vacant", "seasonal", "disconnected")
PEERS_BASE = os.environ.get("BENCH_PEERS_BASE", "5d16682")  # before the peer comparison


def _engine(path: Path) -> Any:
    from headend.config import DatabaseSettings
    from headend.db import make_engine
    from headend.db.migrate import upgrade

    engine = make_engine(DatabaseSettings(url=f"sqlite:///{path}", sqlite_synchronous="NORMAL"))
    upgrade(engine)
    return engine


def _results(path: Path, first: date, last: date) -> dict[str, Any]:
    """Recompute with whatever ``headend`` is importable; stored rates and suspects."""
    from headend.analytics import store
    from headend.analytics.service import recompute
    from headend.analytics.settings import AnalyticsSettings
    from headend.config import DatabaseSettings
    from headend.db import make_engine, reading

    engine = make_engine(DatabaseSettings(url=f"sqlite:///{path}"))
    t0 = time.process_time()
    summary = recompute(engine, AnalyticsSettings(), first, last, NOW)
    cpu = time.process_time() - t0
    out: dict[str, Any] = {"cpu_s": cpu, "rates": {}, "suspects": {}}
    with reading(engine) as conn:
        for r in store.loss_rows(conn, None, "day", first, last):
            out["rates"][f"{r['area']}/{r['start']}"] = r["rate"]
        for area in summary.areas:
            _, rows = store.suspect_rows(conn, area, last)
            out["suspects"][area] = [r["meter"] for r in rows]
    engine.dispose()
    return out


def _old_tree(tmp: Path, base: str = BASE) -> Path:
    old = tmp / "old"
    old.mkdir()
    archive = subprocess.run(
        ["git", "archive", base, "headend", "protocols", "taiqu"],
        cwd=ROOT, capture_output=True, check=True,
    )  # fmt: skip
    subprocess.run(["tar", "-x", "-C", str(old)], input=archive.stdout, check=True)
    return old


def _old_results(tmp: Path, db: Path, first: date, last: date, base: str = BASE) -> dict[str, Any]:
    copy = tmp / "old.db"
    shutil.copy(db, copy)
    old = _old_tree(tmp, base) if not (tmp / "old").exists() else tmp / "old"
    out = subprocess.run(
        [sys.executable, __file__, "--results", str(copy), first.isoformat(), last.isoformat()],
        env={**os.environ, "PYTHONPATH": str(old)}, cwd=old, capture_output=True, text=True,
        check=True,
    )  # fmt: skip
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def pv() -> None:
    from simulators.grid import GridConfig, simulate
    from tests.headend.analytics.grid_db import store_archive, store_readings

    cfg = GridConfig(areas=4, customers=200, days=7, pv_area=1, seed=2)
    run = simulate(cfg)
    first, last = cfg.start, cfg.start + timedelta(days=cfg.days - 1)
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        db = tmp / "pv.db"
        engine = _engine(db)
        store_archive(engine, run)
        store_readings(engine, run)
        engine.dispose()
        old = _old_results(tmp, db, first, last)
        new = _results(db, first, last)
    print("PV line loss (area A2: 100 of 200 customers with 2–5 kWp; 7 days; daily freezes)")
    print("  day          truth %   this tree %   baseline %")
    errs_new, errs_old = [], []
    for d in range(cfg.days - 1):
        day = cfg.start + timedelta(days=d)
        truth = run.area_day("A2", day).technical_rate * 100
        a = float(new["rates"][f"A2/{day.isoformat()}"]) * 100
        b_text = old["rates"].get(f"A2/{day.isoformat()}")
        b = float(b_text) * 100 if b_text is not None else float("nan")
        errs_new.append(abs(a - truth))
        errs_old.append(abs(b - truth))
        print(f"  {day}   {truth:7.2f}   {a:10.2f}   {b:10.2f}")
    print(f"  max |this tree − truth| = {max(errs_new):.2f} pp; "
          f"baseline off by {min(errs_old):.1f}–{max(errs_old):.1f} pp "
          f"(mean {statistics.mean(errs_old):.1f} pp)")  # fmt: skip
    others = [abs(float(new["rates"][f"{a}/{first.isoformat()}"]) * 100
                  - (run.area_day(a, first).technical + run.area_day(a, first).stolen)
                  / run.area_day(a, first).supply * 100) for a in ("A1", "A3", "A4")]  # fmt: skip
    print(f"  areas without PV: |rate − (technical + stolen)/supply| ≤ {max(others):.2f} pp")


def _ranking(run: Any, ranked: dict[str, list[str]]) -> dict[str, Any]:
    p10, aps, context, ordered = [], [], 0, True
    for area, meters in sorted(ranked.items()):
        thefts = {t.meter for t in run.customers(area) if t.theft}
        if not thefts:
            continue
        hits, ap = 0, 0.0
        for k, m in enumerate(meters, start=1):
            if m in thefts:
                hits += 1
                ap += hits / k
        aps.append(ap / len(thefts))
        p10.append(sum(m in thefts for m in meters[:10]) / 10)
        context += sum(run.meters[m].kind in CONTEXT for m in meters[:10])
        honest = next((k for k, m in enumerate(meters) if m not in thefts), len(meters))
        ordered = ordered and thefts <= set(meters[:honest])
    return {"p10": p10, "map": statistics.mean(aps) if aps else 0.0, "context": context,
            "ordered": ordered}  # fmt: skip


def _seeds(name: str, default: str) -> list[int]:
    return [int(s) for s in os.environ.get(name, default).split(",")]


def suspects() -> None:
    # 3 and 8 were looked at while choosing the thresholds; BENCH_SUSPECTS_SEEDS for others
    for seed in _seeds("BENCH_SUSPECTS_SEEDS", "3,8"):
        _suspects(seed)


def _suspects(seed: int) -> None:
    from simulators.grid import GridConfig, simulate
    from tests.headend.analytics.grid_db import store_archive, store_readings

    cfg = GridConfig(areas=4, customers=200, days=7, seed=seed)
    run = simulate(cfg)
    last = cfg.start + timedelta(days=cfg.days - 1)
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        db = tmp / "s.db"
        engine = _engine(db)
        store_archive(engine, run)
        rows = store_readings(engine, run, interval_every=1)
        engine.dispose()
        old = _old_results(tmp, db, last, last)
        new = _results(db, last, last)
    thefts = sum(t.theft for t in run.customers())
    print(
        f"Suspects (seed {seed}): 4 areas × 200 customers, {thefts} thefts, 7 days of 15-minute "
        f"readings ({rows} rows); recompute of the last day"
    )
    for name, res in (("this tree", new), (f"baseline {BASE}", old)):
        r = _ranking(run, res["suspects"])
        listed = sum(len(v) for v in res["suspects"].values())
        print(f"  {name:16} P@10 per area {r['p10']}  MAP {r['map']:.3f}  listed {listed}  "
              f"context in top 10: {r['context']}  every theft above the first honest: "
              f"{r['ordered']}  recompute CPU {res['cpu_s']:.1f} s")  # fmt: skip


def peers() -> None:
    # BENCH_PEERS_SEEDS for other seeds; BENCH_PEERS_CURVE=1 only with the area meter's curve
    curves = (True,) if os.environ.get("BENCH_PEERS_CURVE") == "1" else (True, False)
    for seed in _seeds("BENCH_PEERS_SEEDS", "5,9"):
        for area_intervals in curves:
            _peers(seed, area_intervals)


def _peers(seed: int, area_intervals: bool) -> None:
    from sqlalchemy import delete

    from headend.db import writing
    from headend.db.tables import readings
    from simulators.grid import GridConfig, simulate
    from simulators.grid.model import DEFAULT_MIX
    from tests.headend.analytics.grid_db import store_archive, store_readings

    # the population (the default mix); with BENCH_PEERS_CIRCUIT=0.01 also 2 circuit
    # bypasses per area (the evening circuit fed from before the meter: the registered profile
    # loses its evening peak)
    mix = {**DEFAULT_MIX, "circuit_bypass": float(os.environ.get("BENCH_PEERS_CIRCUIT", "0"))}
    cfg = GridConfig(areas=4, customers=200, days=7, seed=seed, theft_area=1, mix=mix)
    run = simulate(cfg)
    last = cfg.start + timedelta(days=cfg.days - 1)
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        db = tmp / "p.db"
        engine = _engine(db)
        store_archive(engine, run)
        store_readings(engine, run, interval_every=1)
        if not area_intervals:
            with writing(engine) as conn:
                conn.execute(
                    delete(readings).where(
                        readings.c.meter.like("%-T"), readings.c.kind == "interval"
                    )
                )
        engine.dispose()
        old = _old_results(tmp, db, last, last, PEERS_BASE)
        new = _results(db, last, last)
    thefts = {a: sum(t.theft for t in run.customers(a)) for a in ("A1", "A2", "A3", "A4")}
    print(
        f"Peers (seed {seed}, circuit bypass share {mix['circuit_bypass']}): 4 areas × 200 "
        f"customers, thefts per area {thefts} (A2: 8 more "
        f"bypassing 50 % since before the data); area meter interval readings: "
        f"{'yes' if area_intervals else 'no (daily freezes only)'}"
    )
    for name, res in (("this tree", new), (f"before {PEERS_BASE}", old)):
        r = _ranking(run, res["suspects"])
        a2 = _ranking(run, {"A2": res["suspects"].get("A2", [])})
        print(f"  {name:16} P@10 per area {r['p10']}  MAP {r['map']:.3f} (A2 {a2['map']:.3f})  "
              f"context in top 10: {r['context']}  every theft above the first honest: "
              f"{r['ordered']}  recompute CPU {res['cpu_s']:.1f} s")  # fmt: skip


def membership() -> None:
    from headend.analytics.membership import check
    from simulators.grid import GridConfig, simulate

    for noise in (0.2, 0.5):
        cfg = GridConfig(areas=4, customers=200, days=7, mis_mapped=0.03, seed=4,
                         voltage_noise=noise)  # fmt: skip
        run = simulate(cfg)
        areas = {m: t.mapped_area for m, t in run.meters.items()}
        per_day = cfg.steps_per_day
        wrong = {m for m, t in run.meters.items() if t.mis_mapped}
        print(f"Membership: 4 areas × 201 meters, {len(wrong)} mis-mapped (3 % of customers), "
              f"voltage noise σ {noise} V before rounding to 0.1 V")  # fmt: skip
        for days in (7, 3):
            for every, label in ((1, "15-minute"), (4, "1-hour")):
                start = len(run.times) - 1 - days * per_day
                volts = {
                    m: {run.times[i]: s.voltage[i - 1]
                        for i in range(start + every, len(run.times), every)}
                    for m, s in run.series.items()
                }  # fmt: skip
                t0 = time.process_time()
                found = check(volts, areas, timedelta(minutes=15 * every))
                cpu = time.process_time() - t0
                flagged = {m.meter for m in found if m.flagged}
                hit = len(flagged & wrong) / len(wrong)
                false = len(flagged - wrong) / (len(areas) - len(wrong))
                print(f"  {days} days of {label:9} voltages: mis-mapped flagged {hit:6.1%}, "
                      f"correct flagged {false:6.2%} (CPU {cpu:.1f} s)")  # fmt: skip


def shapes() -> None:
    """Household archetypes (``simulators.grid.households``): the suspects population (seeds
    11 and 12, not used for tuning) and the peers population (theft area A2, with and without the
    area meter's 15-minute curve), each simulated with every home on the single daily template
    and with ``DEFAULT_HOUSEHOLDS`` (same kinds, thefts and mapping: only the homes' days differ).
    Per run: P@10 per area, MAP, context homes in the top 10, whether every theft ranks above the
    first honest home, and the honest homes in a top 10 or above a listed theft, by archetype,
    with the evidence that named them."""
    from simulators.grid import DEFAULT_HOUSEHOLDS

    for population in ("suspects", "peers"):
        for seed in (11, 12):
            for households in (None, DEFAULT_HOUSEHOLDS):
                _shapes(population, seed, households)
    for seed in (11, 12):
        _clusters(seed)


def _shapes(population: str, seed: int, households: Any) -> None:
    from sqlalchemy import delete

    from headend.db import writing
    from headend.db.tables import readings
    from simulators.grid import GridConfig, simulate
    from tests.headend.analytics.grid_db import store_archive, store_readings

    cfg = GridConfig(areas=4, customers=200, days=7, seed=seed, households=households,
                     theft_area=1 if population == "peers" else None)  # fmt: skip
    t0 = time.process_time()
    run = simulate(cfg)
    sim_cpu = time.process_time() - t0
    last = cfg.start + timedelta(days=cfg.days - 1)
    label = "single template" if households is None else "DEFAULT_HOUSEHOLDS"
    print(f"Shapes: {population} seed {seed}, {label}", flush=True)
    _peer_spread(run)
    with tempfile.TemporaryDirectory() as tmp_:
        tmp = Path(tmp_)
        db = tmp / "h.db"
        engine = _engine(db)
        store_archive(engine, run)
        store_readings(engine, run, interval_every=1)
        engine.dispose()
        variants = [("yes", db)]
        if population == "peers":
            bare = tmp / "bare.db"
            shutil.copy(db, bare)
            engine = _engine(bare)
            with writing(engine) as conn:
                conn.execute(
                    delete(readings).where(
                        readings.c.meter.like("%-T"), readings.c.kind == "interval"
                    )
                )
            engine.dispose()
            variants.append(("no", bare))
        for curve, path in variants:
            ranked = _scored(path, last)
            lists = {a: [m for m, _, _ in rows] for a, rows in ranked.items()}
            r = _ranking(run, lists)
            per_area = [round(_ranking(run, {a: v})["map"], 3) for a, v in sorted(lists.items())]
            print(f"Shapes: {population} seed {seed}, {label}, area meter curve {curve} "
                  f"(simulate CPU {sim_cpu:.1f} s): P@10 {r['p10']}  MAP {r['map']:.3f} "
                  f"(per area {per_area})  "
                  f"context in top 10: {r['context']}  every theft above the first honest: "
                  f"{r['ordered']}", flush=True)  # fmt: skip
            _honest_report(run, ranked)


def _scored(path: Path, last: date) -> dict[str, list[tuple[str, float, list[Any]]]]:
    """Recompute the last day; per area the ranked (meter, score, evidence)."""
    from headend.analytics import store
    from headend.analytics.service import recompute
    from headend.analytics.settings import AnalyticsSettings
    from headend.config import DatabaseSettings
    from headend.db import make_engine, reading

    engine = make_engine(DatabaseSettings(url=f"sqlite:///{path}"))
    summary = recompute(engine, AnalyticsSettings(), last, last, NOW)
    out = {}
    with reading(engine) as conn:
        for area in summary.areas:
            _, rows = store.suspect_rows(conn, area, last)
            out[area] = [(r["meter"], float(r["score"]), r["evidence"]) for r in rows]
    engine.dispose()
    return out


def _who(t: Any) -> str:
    """A home as the report names it: its archetype, its kind first when it is not healthy."""
    if t.kind == "healthy":
        return str(t.household)
    return f"{t.kind}/{t.household}" if t.household else str(t.kind)


def _honest_report(run: Any, ranked: dict[str, list[tuple[str, float, list[Any]]]]) -> None:
    """Honest homes in a top 10 or ranked above a listed theft, and thefts below the first
    honest home, by archetype; each honest one with its evidence (kind weight, and the peer
    comparison's z and r)."""
    top: dict[str, int] = {}
    above: dict[str, int] = {}
    late: dict[str, int] = {}
    lines = []
    for area, rows in sorted(ranked.items()):
        meters = [m for m, _, _ in rows]
        thefts = [k for k, m in enumerate(meters) if run.meters[m].theft]
        missing = sum(t.theft for t in run.customers(area)) - len(thefts)
        last_theft = thefts[-1] if thefts else -1
        first_honest = next((k for k, m in enumerate(meters) if not run.meters[m].theft), None)
        for k, (m, score, evidence) in enumerate(rows):
            t = run.meters[m]
            if t.theft:
                if first_honest is not None and k > first_honest:
                    late[_who(t)] = late.get(_who(t), 0) + 1
                continue
            if k >= 10 and k > last_theft:
                continue
            if k < 10:
                top[_who(t)] = top.get(_who(t), 0) + 1
            if k < last_theft:
                above[_who(t)] = above.get(_who(t), 0) + 1
            what = []
            for e in evidence:
                d = e.get("details") or {}
                z = ", ".join(f"{key} {d[key]}" for key in ("z_level", "z_shape", "rhythm")
                              if d.get(key) is not None)  # fmt: skip
                what.append(f"{e['kind']} {e['weight']}" + (f" ({z})" if z else ""))
            lines.append(f"      {area} #{k + 1} {m} {_who(t)} score {score:.1f}: "
                         + "; ".join(what))  # fmt: skip
        for t in run.customers(area):
            if t.theft and t.meter not in meters:
                late[_who(t)] = late.get(_who(t), 0) + 1
        if missing:
            lines.append(f"      {area}: {missing} thefts not listed")
    print(f"    honest in a top 10: {dict(sorted(top.items()))}; honest above a listed theft: "
          f"{dict(sorted(above.items()))}; thefts below the first honest or not listed: "
          f"{dict(sorted(late.items()))}")  # fmt: skip
    for line in lines:
        print(line)


def _peer_spread(run: Any) -> None:
    """The comparison with similar customers (``headend.analytics.peers.compare``) in process on
    the run's last 7 days, every area as if its loss were above its band: per archetype of honest
    homes, and for thefts, the median and extreme z_level, z_shape and rhythm, and how many
    would get ``low_vs_peers`` / ``shape_unlike_peers``."""
    from headend.analytics import peers
    from tests.headend.analytics.grid_fit import peer_inputs

    rows: dict[str, list[Any]] = {}
    for area in sorted({t.mapped_area for t in run.customers()}):
        facts, shapes = peer_inputs(run, area)
        for s in peers.compare(facts, shapes):
            t = run.meters[s.meter]
            key = f"theft:{t.kind}/{t.household}" if t.theft else _who(t)
            rows.setdefault(key, []).append(s)
    print(
        "    peers in process (every area as if above its band): "
        "group n | z_level med/min | z_shape med/max | rhythm min | low_vs_peers | shape_unlike"
    )
    for key, stats in sorted(rows.items()):
        zl = [s.z_level for s in stats]
        zs = [s.z_shape for s in stats if s.z_shape is not None]
        rh = [s.rhythm for s in stats if s.rhythm is not None]
        low = sum(s.z_level <= -peers.Z_LEVEL
                  and (s.rhythm is None or s.rhythm >= peers.RHYTHM or s.kin >= peers.KIN)
                  and not key.startswith("pv") for s in stats)  # fmt: skip
        unlike = sum(s.z_shape is not None and s.rhythm is not None and s.z_shape >= peers.Z_SHAPE
                     and s.rhythm < peers.RHYTHM and s.swing >= peers.MIN_SWING
                     and s.kin < peers.KIN and not key.startswith("pv") for s in stats)  # fmt: skip
        print(f"      {key:28} {len(stats):3} | {statistics.median(zl):5.1f} {min(zl):5.1f} | "
              f"{statistics.median(zs) if zs else float('nan'):5.1f} "
              f"{max(zs) if zs else float('nan'):5.1f} | "
              f"{min(rh) if rh else float('nan'):5.2f} | {low:3} | {unlike:3}")  # fmt: skip


def _clusters(seed: int) -> None:
    """A prototype of a fix, not the head-end's code: z_shape against the nearest cluster of
    hourly shapes (k-medoids on correlation distance over the 4 areas' lived-in non-PV homes, k
    2–7 by silhouette) against today's z_shape (the area's median shape), on the peers population
    with ``DEFAULT_HOUSEHOLDS`` and 2 circuit bypasses per area: per archetype or theft kind, the
    median z and how many reach Z_SHAPE."""
    from collections import Counter
    from decimal import Decimal

    import numpy as np

    from headend.analytics import peers
    from headend.analytics.suspects import MeterDays
    from simulators.grid import DEFAULT_HOUSEHOLDS, GridConfig, simulate
    from simulators.grid.model import DEFAULT_MIX

    cfg = GridConfig(areas=4, customers=200, days=7, seed=seed, theft_area=1,
                     households=DEFAULT_HOUSEHOLDS,
                     mix={**DEFAULT_MIX, "circuit_bypass": 0.01})  # fmt: skip
    run = simulate(cfg)
    n, step = cfg.steps_per_day, timedelta(minutes=cfg.step_minutes)
    facts: dict[str, list[Any]] = {}
    shapes: dict[str, tuple[float, ...]] = {}
    for t in run.customers():
        reg = run.series[t.meter].import_kwh
        energy = {cfg.start + timedelta(days=d): Decimal(f"{reg[(d + 1) * n] - reg[d * n]:.2f}")
                  for d in range(cfg.days)}  # fmt: skip
        off = frozenset(energy) if t.kind in ("disconnected", "relay_bypass") else frozenset()
        facts.setdefault(t.area, []).append(
            MeterDays(t.meter, t.meter, energy, pv=t.pv_kw > 0, relay_open=off)
        )
        slots = {run.times[i + 1]: reg[i + 1] - reg[i] for i in range(len(reg) - 1)}
        if not t.pv_kw and not off and (shape := peers.hourly_shape(slots, cfg.tz, step)):
            shapes[t.meter] = shape
    today: dict[str, list[float]] = {}
    for rows in facts.values():
        mine = {r.meter for r in rows}
        for s in peers.compare(rows, {m: v for m, v in shapes.items() if m in mine}):
            if s.z_shape is not None and s.meter in shapes:
                today.setdefault(_label(run.meters[s.meter]), []).append(s.z_shape)
    ids = sorted(shapes)
    x = np.array([shapes[m] for m in ids])
    z = (x - x.mean(1, keepdims=True)) / x.std(1, keepdims=True)
    dist = 1 - z @ z.T / 24

    def kmedoids(k: int) -> tuple[list[int], Any]:
        medoids = [int(np.argmin(dist.sum(1)))]
        while len(medoids) < k:  # farthest-first seeding: deterministic
            medoids.append(int(np.argmax(dist[:, medoids].min(1))))
        for _ in range(50):
            labels = np.argmin(dist[:, medoids], 1)
            new = []
            for c in range(k):
                members = np.where(labels == c)[0]
                sub = dist[np.ix_(members, members)].sum(1)
                new.append(int(members[np.argmin(sub)]) if len(members) else medoids[c])
            if new == medoids:
                break
            medoids = new
        return medoids, np.argmin(dist[:, medoids], 1)

    def silhouette(labels: Any) -> float:
        out = []
        for i in range(len(ids)):
            own = labels == labels[i]
            a = dist[i, own].sum() / max(int(own.sum()) - 1, 1)
            b = min(dist[i, labels == c].mean() for c in set(labels.tolist()) if c != labels[i])
            out.append((b - a) / max(a, b))
        return float(np.mean(out))

    k, medoids, labels = max(((k, *kmedoids(k)) for k in range(2, 8)),
                             key=lambda r: silhouette(r[2]))  # fmt: skip
    nearest: dict[str, list[float]] = {}
    sizes = []
    for c in range(k):
        members = np.where(labels == c)[0]
        d = dist[members, medoids[c]]
        med = float(np.median(d))
        mad = max(float(np.median(np.abs(d - med))) * peers.MAD_SCALE, peers.MIN_MAD_SHAPE)
        kinds = Counter(_label(run.meters[ids[i]]) for i in members).most_common(2)
        sizes.append(f"{len(members)} {kinds}")
        for i in members:
            nearest.setdefault(_label(run.meters[ids[i]]), []).append((dist[i, medoids[c]] - med)
                                                                      / mad)  # fmt: skip
    print(f"Shapes: clusters (prototype), peers population seed {seed}, DEFAULT_HOUSEHOLDS and "
          f"2 circuit bypasses per area: k = {k} by silhouette; clusters {sizes}")  # fmt: skip
    print(f"    z_shape: label n | today (area median) median, ≥ {peers.Z_SHAPE} | "
          "nearest cluster median, ≥ Z_SHAPE")  # fmt: skip
    for key in sorted(nearest):
        a, b = today.get(key, []), nearest[key]
        now = statistics.median(a) if a else float("nan")
        print(f"      {key:28} {len(b):3} | {now:5.1f} {sum(v >= peers.Z_SHAPE for v in a):3} | "
              f"{statistics.median(b):5.1f} {sum(v >= peers.Z_SHAPE for v in b):3}")  # fmt: skip


def _label(t: Any) -> str:
    return f"theft:{t.kind}" if t.theft else _who(t)


def main(argv: list[str]) -> None:
    if argv[:1] == ["--results"]:
        path, first, last = Path(argv[1]), date.fromisoformat(argv[2]), date.fromisoformat(argv[3])
        print(json.dumps(_results(path, first, last)))
        return
    parts = {"pv": pv, "suspects": suspects, "peers": peers, "membership": membership,
             "shapes": shapes}  # fmt: skip
    for name in argv or list(parts):
        parts[name]()


if __name__ == "__main__":
    main(sys.argv[1:])
