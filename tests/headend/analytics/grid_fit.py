"""What the recompute hands the loss-curve fit and the comparison with similar customers, from a
simulated area (``simulators.grid``).

Slot energies are differences of registers stored at 0.01 kWh (the first slot of the data has
no earlier reading); voltages are stored at 0.1 V, read at each step's end.  Used by the fit's
and the peers' tests and by bench/analytics_fit.py and bench/analytics_truth.py.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from headend.analytics.losscurve import Voltages
from headend.analytics.peers import hourly_shape
from headend.analytics.suspects import MeterDays
from simulators.grid import GridRun


@dataclass(frozen=True)
class FitInputs:
    area: dict[datetime, float]  # area meter import less its export, per slot
    loads: dict[str, dict[datetime, float]]  # customers' import per slot
    exports: dict[str, dict[datetime, float]]  # PV customers' export per slot
    pv: frozenset[str]
    voltages: Voltages


def _slots(register: list[float], times: list[datetime]) -> dict[datetime, float]:
    stored = [round(v, 2) for v in register]
    return {times[i]: stored[i] - stored[i - 1] for i in range(2, len(times))}


def fit_inputs(run: GridRun, area: str) -> FitInputs:
    """The fit's inputs for ``area`` over all the run's days."""

    def volts(meter: str) -> dict[datetime, float]:
        v = run.series[meter].voltage
        return {run.times[i]: round(v[i - 1], 1) for i in range(1, len(run.times))}

    total = run.series[run.area_total(area)]
    exported = _slots(total.export_kwh, run.times)
    area_load = {t: e - exported[t] for t, e in _slots(total.import_kwh, run.times).items()}
    members = run.customers(area)
    loads = {c.meter: _slots(run.series[c.meter].import_kwh, run.times) for c in members}
    pv = frozenset(c.meter for c in members if c.pv_kw > 0)
    exports = {m: _slots(run.series[m].export_kwh, run.times) for m in pv}
    voltages = Voltages(volts(run.area_total(area)), {m: volts(m) for m in loads})
    return FitInputs(area_load, loads, exports, pv, voltages)


def peer_inputs(
    run: GridRun, area: str, days: int = 7
) -> tuple[list[MeterDays], dict[str, tuple[float, ...]]]:
    """Each customer's daily facts (relay open all along for the disconnected and the bridged
    relays) and hourly shape over the last ``days`` days, as ``peers.compare`` takes them."""
    cfg = run.config
    n, step = cfg.steps_per_day, timedelta(minutes=cfg.step_minutes)
    facts, shapes = [], {}
    for t in run.customers(area):
        reg = run.series[t.meter].import_kwh
        energy = {cfg.start + timedelta(days=d): Decimal(f"{reg[(d + 1) * n] - reg[d * n]:.2f}")
                  for d in range(cfg.days)}  # fmt: skip
        off = frozenset(energy) if t.kind in ("disconnected", "relay_bypass") else frozenset()
        facts.append(MeterDays(t.meter, t.meter, energy, pv=t.pv_kw > 0, relay_open=off))
        first = max(0, (cfg.days - days) * n)
        slots = {run.times[i + 1]: reg[i + 1] - reg[i] for i in range(first, len(reg) - 1)}
        if shape := hourly_shape(slots, cfg.tz, step):
            shapes[t.meter] = shape
    return facts, shapes
