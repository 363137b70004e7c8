"""Benchmark and diagnostic: the area loss-curve fit alone, on simulated areas (no database).

Each area of a ``simulators.grid`` run is turned into what the recompute hands to
``headend.analytics.intervals.loss_followers``: per 15-minute slot the area meter's import less
its export, each customer's import and each PV customer's export, from registers rounded to
0.01 kWh as a gateway stores them (the first slot of the data has no earlier reading).

- ``cpu [SEED]``: CPU of ``loss_followers`` on the four areas of the suspects population, this
  tree against the code at ``BENCH_FIT_BASE`` (its ``intervals.py`` loaded from git), alternating
  over ``BENCH_FIT_ROUNDS`` rounds in one process; and whether the two name the same customers.
- ``sweep POPULATION SEEDS...``: per seed and area, every theft and honest customer the fit names
  (POPULATION ``suspects``: the default mix; ``peers``: the default mix with 8 more 50 %
  bypasses in area A2, as in ``bench/analytics_truth.py``).  A whole-home theft the fit does not
  name and an honest customer it names are listed with their statistics; the totals also under
  the rule before the t-statistic (the share alone, on the same fits).

With ``--voltages`` the fit is also given the meters' interval voltages (0.1 V).

Without arguments (``make bench``): ``cpu 3``, then ``sweep peers 9`` without and with voltages.

Usage: python bench/analytics_fit.py [cpu [SEED] | sweep suspects|peers SEED... [--voltages]]
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
import time
import types
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
BASE = os.environ.get("BENCH_FIT_BASE", "9773bed")  # before numpy
ROUNDS = int(os.environ.get("BENCH_FIT_ROUNDS", "5"))


def inputs(run: Any, area: str) -> Any:
    """What the recompute passes to the fit for ``area`` (all its days)."""
    from tests.headend.analytics.grid_fit import fit_inputs

    return fit_inputs(run, area)


def _simulate(population: str, seed: int) -> Any:
    from simulators.grid import GridConfig, simulate

    theft_area = 1 if population == "peers" else None
    return simulate(GridConfig(areas=4, customers=200, days=7, seed=seed, theft_area=theft_area))


def _old_module() -> types.ModuleType:
    source = subprocess.run(
        ["git", "show", f"{BASE}:headend/analytics/intervals.py"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    module = types.ModuleType("intervals_base")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{BASE}:intervals.py", "exec"), module.__dict__)
    return module


def cpu(seed: int) -> None:
    from headend.analytics import intervals

    old = _old_module()
    run = _simulate("suspects", seed)
    areas = [(g.area, g.loads, g.exports, g.pv) for a in ("A1", "A2", "A3", "A4")
             if (g := inputs(run, a))]  # fmt: skip
    times: dict[str, list[float]] = {"base": [], "this": []}
    names: dict[str, list[list[str]]] = {}
    coefficients: dict[str, list[float]] = {}
    for _ in range(ROUNDS):
        for label, fn in (("base", old.loss_followers), ("this", intervals.loss_followers)):
            t0 = time.process_time()
            found = [fn(*a) for a in areas]
            times[label].append(time.process_time() - t0)
            names[label] = [[f.meter for f in fits] for fits in found]
            coefficients[label] = [f.coefficient for fits in found for f in fits]
    b, n = statistics.median(times["base"]), statistics.median(times["this"])
    print(f"loss_followers, 4 areas × 200 customers × 671 slots (seed {seed}), CPU s, "
          f"median of {ROUNDS} rounds alternating")  # fmt: skip
    print(f"  base {BASE}: {b:.3f}  ({', '.join(f'{x:.3f}' for x in times['base'])})")
    print(f"  this tree:  {n:.3f}  ({', '.join(f'{x:.3f}' for x in times['this'])})  "
          f"ratio {n / b:.3f}")  # fmt: skip
    same = names["base"] == names["this"]
    print(f"  same customers named in the same order: {same}")
    # the same method: this tree's fits under the base's rule (share alone) name the same
    # customers with the same coefficients
    from headend.analytics.losscurve import fit_loss_curve

    rule = [
        [f for f in fit_loss_curve(a[0], a[1], a[2])
         if f.share >= (old.MIN_UNREGISTERED_PV if f.meter in a[3] else old.MIN_UNREGISTERED)]
        for a in areas
    ]  # fmt: skip
    same_rule = [[f.meter for f in fits] for fits in rule] == names["base"]
    mine = [f.coefficient for fits in rule for f in fits]
    diff = max((abs(x - y) for x, y in zip(coefficients["base"], mine, strict=False)), default=0.0)
    print(f"  under the base's rule (share alone): same customers {same_rule}, largest "
          f"coefficient difference {diff:.2e}")  # fmt: skip
    if not same:
        for a, (x, y) in enumerate(zip(names["base"], names["this"], strict=True), start=1):
            print(f"    A{a}: base {x}\n        this {y}")


def sweep(population: str, seeds: list[int], with_voltages: bool) -> None:
    from headend.analytics import intervals
    from headend.analytics.intervals import MIN_UNREGISTERED, MIN_UNREGISTERED_PV
    from headend.analytics.losscurve import fit_loss_curve

    whole = ("bypass", "cover_open")  # thefts the loss curve is the only interval signal for
    missed_total = honest_total = old_missed = old_honest = 0
    for seed in seeds:
        run = _simulate(population, seed)
        for area in ("A1", "A2", "A3", "A4"):
            got = inputs(run, area)
            volts = got.voltages if with_voltages else None
            fits = fit_loss_curve(got.area, got.loads, got.exports, volts)
            named = {
                f.meter
                for f in intervals.loss_followers(got.area, got.loads, got.exports, got.pv, volts)
            }
            by = {f.meter: f for f in fits}
            missed = [c for c in run.customers(area) if c.kind in whole and c.meter not in named]
            honest = [m for m in named if not run.meters[m].theft]
            missed_total += len(missed)
            honest_total += len(honest)
            # the rule before the t-statistic: the share alone, on the same fits
            shared = {
                f.meter for f in fits
                if f.share >= (MIN_UNREGISTERED_PV if f.meter in got.pv else MIN_UNREGISTERED)
            }  # fmt: skip
            old_missed += sum(
                c.kind in whole and c.meter not in shared for c in run.customers(area)
            )
            old_honest += sum(not run.meters[m].theft for m in shared)
            line = f"seed {seed} {area}: named {len(named)}"
            for c in missed:
                f = by.get(c.meter)
                stats = "not picked" if f is None else _stats(f)
                line += f"\n    missed {c.kind} {c.fraction:.3f} {c.meter}: {stats}"
            for m in honest:
                line += f"\n    HONEST {run.meters[m].kind} {m}: {_stats(by[m])}"
            weakest = min(
                (by[c.meter] for c in run.customers(area) if c.theft and c.meter in named),
                key=lambda f: f.t, default=None,
            )  # fmt: skip
            strongest_honest = max(
                (f for f in fits if not run.meters[f.meter].theft), key=lambda f: f.t, default=None
            )
            if weakest is not None:
                line += f"\n    weakest named theft: {_stats(weakest)}"
            if strongest_honest is not None:
                kind = run.meters[strongest_honest.meter].kind
                line += f"\n    most significant honest pick ({kind}): {_stats(strongest_honest)}"
            print(line, flush=True)
    print(f"{population} seeds {seeds}, voltages {with_voltages}: whole-home thefts (bypass, "
          f"cover open) not named {missed_total}, honest customers named {honest_total}; with "
          f"the share ≥ {MIN_UNREGISTERED} rule alone: {old_missed} and {old_honest}")  # fmt: skip


def _stats(f: Any) -> str:
    return f"r {f.corr:.3f} share {f.share:.3f} t {f.t:.1f}"


def main(argv: list[str]) -> None:
    if argv[:1] == ["cpu"]:
        cpu(int(argv[1]) if len(argv) > 1 else 3)
    elif argv[:1] == ["sweep"]:
        volts = "--voltages" in argv
        sweep(argv[1], [int(s) for s in argv[2:] if s != "--voltages"], volts)
    elif not argv:  # make bench: the CPU, and the seed-9 area curve without and with voltages
        cpu(3)
        sweep("peers", [9], False)
        sweep("peers", [9], True)
    else:
        print(__doc__)


if __name__ == "__main__":
    main(sys.argv[1:])
