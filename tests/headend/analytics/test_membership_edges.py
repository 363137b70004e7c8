"""Area membership where real voltages break the happy path: archive areas on one transformer,
an area whose own reference is missing, flat and gappy voltages, a 3-meter area."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from headend.analytics.membership import COHERENT, check

STEP = timedelta(minutes=15)
T0 = datetime(2026, 3, 1, tzinfo=UTC)


def _ar(rng: random.Random, n: int, sigma: float, phi: float = 0.9) -> list[float]:
    x, out = 0.0, []
    for _ in range(n):
        x = phi * x + rng.gauss(0, sigma)
        out.append(x)
    return out


def fleet(spec, *, days=7, seed=1, same=None):
    """Voltages at 0.1 V resolution: the MV level (every area), each transformer's load drop
    (``spec``: area → (meters, drop σ); ``same``: area → area it shares a transformer with), each
    meter's own service drop and noise.  Returns (voltages, archive mapping)."""
    rng = random.Random(seed)
    n = days * 96
    mv = _ar(rng, n, 0.5, 0.99)
    drops = {a: _ar(rng, n, s) for a, (_, s) in spec.items()}
    for a, b in (same or {}).items():
        drops[a] = drops[b]
    volts, areas = {}, {}
    for a, (k, _) in spec.items():
        for i in range(k):
            own = _ar(rng, n, 0.3)
            volts[f"{a}-{i}"] = {
                T0 + STEP * j: round(230 + mv[j] + drops[a][j] + own[j] + rng.gauss(0, 0.05), 1)
                for j in range(n)
            }
            areas[f"{a}-{i}"] = a
    return volts, areas


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(
    ("spec", "same"),
    [({"X": (20, 1.0), "Y": (20, 1.0)}, {"Y": "X"}),  # two archive areas, one transformer
     ({"X": (20, 1.0), "Y": (20, 1.0), "Z": (20, 1.0)}, {"Y": "X", "Z": "X"}),
     ({"X": (40, 1.0), "Y": (40, 1.0), "Z": (5, 1.0)}, {"Y": "X"})],
)  # fmt: skip
def test_areas_on_one_transformer_bus_flag_nobody(spec, same, seed):
    """Identical voltage profiles leave correlations at noise level: no evidence, no flag (the
    old check flagged 4–27 of these correct meters on noise alone)."""
    volts, areas = fleet(spec, same=same, seed=seed)
    flagged = [m for m in check(volts, areas, STEP) if m.flagged]
    assert flagged == []


def test_distinct_areas_still_flag_a_mis_mapped_meter_with_identical_neighbours():
    volts, areas = fleet({"X": (20, 1.0), "Y": (20, 1.0), "Z": (20, 1.0), "W": (20, 1.0)},
                         same={"Y": "X"})  # fmt: skip
    areas["Z-3"] = "W"  # on Z's transformer, mapped to W
    found = {m.meter: m for m in check(volts, areas, STEP)}
    assert [m for m in found if found[m].flagged] == ["Z-3"]
    assert found["Z-3"].best == "Z" and found["Z-3"].coherence["Z"] >= COHERENT


def test_no_own_reference_is_not_evidence_of_another_area():
    """Area X: three meters, two of them old ones without interval voltages: the third has no
    reference of its own and does not follow any other area: not flagged."""
    volts, areas = fleet({"X": (3, 1.0), "Z": (20, 1.0), "W": (20, 1.0)})
    del volts["X-1"], volts["X-2"]
    (x0,) = [m for m in check(volts, areas, STEP) if m.meter == "X-0"]
    assert x0.own is None and not x0.flagged


def test_flat_and_gappy_voltages_are_left_unscored():
    volts, areas = fleet({"X": (10, 1.0), "Z": (10, 1.0)}, days=3)
    volts["X-0"] = dict.fromkeys(volts["X-0"], 229.0)  # a meter behind a voltage regulator
    volts["X-1"] = {t: v for i, (t, v) in enumerate(sorted(volts["X-1"].items())) if i % 3 == 0}
    found = {m.meter: m for m in check(volts, areas, STEP)}
    for meter in ("X-0", "X-1"):  # flat: no variance; every third reading: no adjacent pairs
        assert found[meter].correlations == {} and not found[meter].flagged
    assert found["X-2"].best == "X"


def test_a_three_meter_area_flags_its_stranger():
    volts, areas = fleet({"X": (2, 1.0), "Z": (20, 1.0), "W": (20, 1.0)})
    areas["Z-0"] = "X"  # X's archive: and Z-0
    found = {m.meter: m for m in check(volts, areas, STEP) if areas[m.meter] == "X"}
    assert {m for m, r in found.items() if r.flagged} == {"Z-0"}
    assert found["Z-0"].best == "Z"


def test_a_meter_is_never_part_of_its_own_reference():
    """In a 3-meter area the old reference was the median of all three, the meter included, so
    a meter correlated with itself.  One whose voltage follows nothing at all (noise) must show
    no correlation with its own area."""
    volts, areas = fleet({"X": (3, 1.0), "Z": (20, 1.0), "W": (20, 1.0)}, seed=3)
    rng = random.Random(9)
    volts["X-0"] = {t: round(230 + rng.gauss(0, 1.0), 1) for t in volts["X-0"]}
    (x0,) = [m for m in check(volts, areas, STEP) if m.meter == "X-0"]
    assert x0.own is not None and abs(x0.own) < 0.15, x0.own


def test_an_outage_shared_by_two_areas_does_not_hide_a_stranger():
    """A 2-hour MV feeder trip takes areas X and Y to 0 V (readings of 0, then back): those steps
    of 230 V swamped a week of load-dependent changes (Y-3, mapped to X, showed 0.975 with X
    against 0.999 with Y: not flagged).  Outages and their edges are left out."""
    volts, areas = fleet({"X": (20, 1.0), "Y": (20, 1.0), "Z": (20, 1.0), "W": (20, 1.0)}, seed=2)
    areas["Y-3"] = "X"
    for m in volts:
        if m[0] in "XY":
            for j in range(300, 308):
                volts[m][T0 + STEP * j] = 0.0
    found = {m.meter: m for m in check(volts, areas, STEP)}
    assert [m for m in found if found[m].flagged] == ["Y-3"] and found["Y-3"].best == "Y"
