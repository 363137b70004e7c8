"""The loss-curve fit (``headend.analytics.losscurve``): numerics and the voltages' line loss."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import numpy

from headend.analytics.losscurve import fit_loss_curve, voltage_line_loss
from simulators.grid import GridConfig, simulate
from tests.headend.analytics.grid_fit import fit_inputs

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)


def test_the_meters_voltages_give_the_line_loss_of_a_radial_area():
    """Σ_j e_j (V_T − V_j)/V_j against the simulated I²R of the lines and service cables: a
    little above it, as the simulator draws each home's current at the nominal 230 V while its
    meter sees less (I = P/V is the physics; the simulator's is a simplification)."""
    run = simulate(GridConfig(areas=1, customers=200, days=3, seed=2, mix={}))
    got = fit_inputs(run, "A1")
    curve = voltage_line_loss(got.voltages, got.loads)
    assert len(curve) == len(got.area)
    per_day = run.config.steps_per_day
    meters_own = (len(got.loads) + 1) * run.config.meter_watts / 1000 * 24
    for d, day in enumerate(run.days[1:], start=1):  # day 0 lacks its first two slots
        lines = day.technical - meters_own  # the truth, kWh
        found = sum(curve[t] for t in run.times[d * per_day + 1 : (d + 1) * per_day + 1])
        assert lines < found < 1.15 * lines, (day, lines, found)


def test_whitening_the_register_rounding_sharpens_the_fit():
    """With every meter's register rounded to 0.01 kWh (noise with lag-1 correlation −½) and no
    other model error, the t-statistic of a 30 % theft grows once the noise is whitened
    (generalised least squares), and its share stays within 0.03 either way."""
    rng = random.Random(3)
    slots = [T0 + i * STEP for i in range(672)]
    use = {f"c{k}": [rng.uniform(0.05, 0.6) * (1 + 3 * (rng.random() < 0.1)) for _ in slots]
           for k in range(40)}  # fmt: skip
    f = 0.3
    seen = {m: [u * (1 - f) if m == "c5" else u for u in v] for m, v in use.items()}
    truth = [sum(v[i] for v in use.values()) * 1.01 for i in range(len(slots))]

    def stored(series):
        register = numpy.round(numpy.cumsum([100.0, *series]), 2)
        return dict(zip(slots, numpy.diff(register).tolist(), strict=True))

    area, loads = stored(truth), {m: stored(v) for m, v in seen.items()}
    from headend.analytics import losscurve

    (fit,) = [x for x in fit_loss_curve(area, loads) if x.meter == "c5"]
    try:
        losscurve.WHITEN = False
        (plain,) = [x for x in fit_loss_curve(area, loads) if x.meter == "c5"]
    finally:
        losscurve.WHITEN = True
    assert abs(fit.share - f) < 0.03 and abs(plain.share - f) < 0.03
    assert fit.t > 1.3 * plain.t, (fit.t, plain.t)


def test_a_lost_voltage_is_no_line_drop():
    """A meter whose voltage circuit is opened (60 V) would add its whole load to the technical
    loss and hide its own theft from the fit: such a reading counts no drop."""
    from dataclasses import replace

    run = simulate(GridConfig(areas=1, customers=20, days=1, seed=2, mix={}))
    got = fit_inputs(run, "A1")
    victim = next(iter(got.loads))
    base = voltage_line_loss(
        replace(got.voltages, customers={**got.voltages.customers, victim: {}}), got.loads
    )
    opened = {t: 60.0 for t in got.voltages.customers[victim]}
    tampered = voltage_line_loss(
        replace(got.voltages, customers={**got.voltages.customers, victim: opened}), got.loads
    )
    assert tampered == base
    honest = voltage_line_loss(got.voltages, got.loads)
    assert sum(honest.values()) > sum(base.values())  # its real drop does count
