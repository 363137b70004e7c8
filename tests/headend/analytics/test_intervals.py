"""Interval evidence (pure): relay, simultaneous lost voltage, neutral imbalance, loss curve."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from headend.analytics.intervals import (
    MeterIntervals,
    energy_while_open,
    loss_followers,
    lost_voltage,
    neutral_imbalance,
    slot_energy,
)

T0 = datetime(2026, 3, 1, tzinfo=UTC)
STEP = timedelta(minutes=15)
TIMES = [T0 + i * STEP for i in range(8)]


def register(*kwh: float) -> dict[datetime, float]:
    total, out = 100.0, {}
    for t, k in zip(TIMES, (0.0, *kwh), strict=False):
        total += k
        out[t] = total
    return out


def test_slot_energy_needs_adjacent_readings_and_never_goes_negative():
    reg = {TIMES[0]: 1.0, TIMES[1]: 1.5, TIMES[3]: 2.0, TIMES[4]: 1.9}
    assert slot_energy(reg, STEP) == {TIMES[1]: 0.5}


def test_energy_while_the_relay_is_open_but_not_across_the_switching_step():
    relay = {t: i >= 2 for i, t in enumerate(TIMES)}
    m = MeterIntervals("m", register(0.2, 0.2, 0.0, 0.0, 0.3), relay_open=relay)
    e = energy_while_open(m, STEP)
    assert e is not None and e.details["readings"] == 1 and e.at == TIMES[5]
    idle = MeterIntervals("m", register(0.2, 0.2, 0.0, 0.0, 0.0, 0.0), relay_open=relay)
    assert energy_while_open(idle, STEP) is None  # a disconnected home: no evidence


def test_lost_voltage_counts_only_at_the_same_reading_as_current():
    volts = {t: (120.0 if i % 2 else 230.0) for i, t in enumerate(TIMES)}
    same = {t: (5.0 if i % 2 else 0.0) for i, t in enumerate(TIMES)}
    apart = {t: (0.0 if i % 2 else 5.0) for i, t in enumerate(TIMES)}
    assert lost_voltage(MeterIntervals("m", voltage=volts, live=same), STEP) is not None
    assert lost_voltage(MeterIntervals("m", voltage=volts, live=apart), STEP) is None


def test_neutral_imbalance_on_loaded_readings_only():
    live = {t: 3.0 for t in TIMES}
    assert (
        neutral_imbalance(MeterIntervals("m", live=live, neutral={t: 3.1 for t in TIMES})) is None
    )
    e = neutral_imbalance(MeterIntervals("m", live=live, neutral={t: 6.0 for t in TIMES}))
    assert e is not None and e.details["live_over_neutral"] == "0.50"
    tiny = {t: 0.2 for t in TIMES}  # standby: differences under 1 A are not judged
    assert (
        neutral_imbalance(MeterIntervals("m", live=tiny, neutral={t: 0.6 for t in TIMES})) is None
    )


def test_the_loss_curve_names_the_customer_it_follows_and_its_share():
    rng = random.Random(1)
    slots = [T0 + i * STEP for i in range(400)]
    loads = {f"c{k}": {t: rng.uniform(0.05, 0.6) for t in slots} for k in range(30)}
    stolen = 0.4  # c7 registers 60 % of its use
    area = {t: sum(c[t] for c in loads.values()) * 1.03 + 0.01 for t in slots}
    for t in slots:
        area[t] += loads["c7"][t] * stolen / (1 - stolen)
    fits = loss_followers(area, loads)
    assert [f.meter for f in fits] == ["c7"]
    assert abs(fits[0].coefficient / (1 + fits[0].coefficient) - stolen) < 0.02
    assert loss_followers({t: v for t, v in list(area.items())[:20]}, loads) == []  # too short


def _long_branches(seed):
    """One area of 80 homes on two long branches (6 mΩ between neighbours: drops up to ~20 % at
    the far ends, whose honest homes lose several per cent of their load in the lines, in step
    with it) and one home bypassing a fifth of its use."""
    from simulators.grid import GridConfig, simulate

    run = simulate(GridConfig(areas=1, customers=80, days=3, seed=seed, mix={}, theft_area=0,
                              theft_area_meters=1, theft_area_fraction=0.2, segment_ohm=0.006,
                              branches=2))  # fmt: skip
    (thief,) = [c.meter for c in run.customers("A1") if c.theft]
    return run, thief


def test_a_fifth_stolen_is_told_from_honest_homes_down_long_branches_by_their_voltages():
    """The loss curve alone names honest homes at the far ends of long branches (their line loss
    follows their load); with the meters' voltages their line loss is known home by home and
    only the bypass is named, with its share."""
    from headend.analytics.intervals import loss_evidence, loss_followers
    from tests.headend.analytics.grid_fit import fit_inputs

    for seed in (2, 5):
        run, thief = _long_branches(seed)
        got = fit_inputs(run, "A1")
        alone = {f.meter for f in loss_followers(got.area, got.loads)}
        assert alone - {thief}, seed  # honest homes named without the voltages
        fits = loss_followers(got.area, got.loads, voltages=got.voltages)
        assert [f.meter for f in fits] == [thief], (seed, fits)
        assert abs(fits[0].share - 0.2) < 0.05 and fits[0].t >= 3.5
        evidence = loss_evidence(fits[0], T0)
        assert float(evidence.details["t"]) == round(fits[0].t, 1)
        assert evidence.details["unregistered_share"] == f"{fits[0].share:.2f}"
