"""Consumption and load shape against similar customers (``headend.analytics.peers``)."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal as D
from zoneinfo import ZoneInfo

from headend.analytics.peers import compare, hourly_shape, peer_evidence
from headend.analytics.suspects import MeterDays
from simulators.grid import GridConfig, simulate
from tests.headend.analytics.grid_fit import peer_inputs

ZONE = ZoneInfo("Asia/Shanghai")
DAY = date(2026, 3, 1)
STEP = timedelta(hours=1)


def _days(kwh: float, n: int = 7) -> dict[date, D]:
    return {DAY + timedelta(days=i): D(str(kwh)) for i in range(n)}


def _shape(evening: float) -> tuple[float, ...]:
    raw = [0.3 + (evening if 17 <= h < 23 else 0.0) + (0.5 if 6 <= h < 9 else 0.0)
           for h in range(24)]  # fmt: skip
    return tuple(v / sum(raw) for v in raw)


def test_hourly_shape_uses_local_hours_and_leaves_idle_days_out():
    t0 = datetime(2026, 3, 1, tzinfo=ZONE).astimezone(UTC)
    slots = {}
    for i in range(1, 24 * 4 + 1):
        t = t0 + i * STEP
        local_hour = (t - STEP / 2).astimezone(ZONE).hour
        slots[t] = 2.0 if local_hour == 19 else 0.5
        if i > 24 * 3:
            slots[t] = 0.001  # an idle day (away): not part of the shape
    shape = hourly_shape(slots, ZONE, STEP)
    assert shape is not None and math.isclose(sum(shape), 1.0)
    assert max(range(24), key=lambda h: shape[h]) == 19
    assert math.isclose(shape[19] / shape[3], 4.0)
    assert hourly_shape(dict(list(slots.items())[:30]), ZONE, STEP) is None  # < 2 days


def test_level_and_shape_against_robust_peers():
    peers = [MeterDays(f"p{i}", f"p{i}", _days(8 + i % 5)) for i in range(20)]
    shapes = {m.meter: _shape(1.0 + 0.05 * (i % 3)) for i, m in enumerate(peers)}
    half = MeterDays("half", "half", _days(5))  # a 50 % bypass: half the level, same shape
    shapes["half"] = _shape(1.0)
    circuit = MeterDays("circuit", "circuit", _days(7))  # the evening circuit fed elsewhere
    shapes["circuit"] = _shape(0.0)
    empty = MeterDays("empty", "empty", _days(0.9))  # a flat standby load: no rhythm
    shapes["empty"] = tuple([1 / 24] * 24)
    pv = MeterDays("pv", "pv", _days(3), pv=True)
    shapes["pv"] = _shape(1.0)
    off = MeterDays("off", "off", _days(0.0), relay_open=frozenset(_days(0)))
    meters = [*peers, half, circuit, empty, pv, off]
    stats = {s.meter: s for s in compare(meters, shapes)}
    assert stats["half"].ratio < 0.6 and stats["half"].z_level < -2
    assert stats["half"].rhythm is not None and stats["half"].rhythm > 0.95
    assert stats["circuit"].z_shape is not None and stats["circuit"].z_shape > 6
    assert "off" not in stats  # a disconnected home is not compared
    found = {m: {e.kind for e in ev} for m, ev in peer_evidence(meters, shapes).items()}
    assert found["half"] == {"low_vs_peers"}
    assert "shape_unlike_peers" in found["circuit"]
    assert "empty" not in found  # low, but no daily rhythm: an empty home, not a thief
    assert "pv" not in found
    for m, kinds in found.items():  # an ordinary home is named only for a level well below
        if m.startswith("p") and m != "pv":
            assert kinds == {"low_vs_peers"} and stats[m].z_level <= -0.5


def test_similar_customers_are_the_same_category_and_model_when_there_are_enough():
    small = [MeterDays(f"s{i}", f"s{i}", _days(3 + 0.1 * i)) for i in range(10)]
    large = [MeterDays(f"l{i}", f"l{i}", _days(30 + i)) for i in range(10)]
    groups = {m.meter: ("residential", "5(60)A") for m in small}
    groups |= {m.meter: ("commercial", "10(100)A") for m in large}
    stats = {s.meter: s for s in compare([*small, *large], {}, groups)}
    assert stats["s0"].group == "residential/5(60)A" and stats["s0"].peers == 9
    assert abs(stats["s0"].z_level) < 2  # small among the small, not among everyone
    few = {**groups, "l0": ("commercial", "other")}  # alone with its model: falls back
    assert {s.meter: s for s in compare([*small, *large], {}, few)}["l0"].group == "commercial"


def test_a_circuit_bypass_in_the_simulator_is_found_by_its_shape():
    cfg = GridConfig(areas=1, customers=120, days=5, step_minutes=60, seed=7,
                     mix={"circuit_bypass": 0.04, "pv": 0.1, "vacant": 0.05, "seasonal": 0.03})  # fmt: skip
    run = simulate(cfg)
    per = cfg.steps_per_day
    meters, shapes = [], {}
    for t in run.customers():
        reg = run.series[t.meter].import_kwh
        daily = {cfg.start + timedelta(days=d): D(f"{reg[(d + 1) * per] - reg[d * per]:.2f}")
                 for d in range(cfg.days)}  # fmt: skip
        meters.append(MeterDays(t.meter, t.meter, daily, pv=t.pv_kw > 0))
        slots = {run.times[i]: reg[i] - reg[i - 1] for i in range(1, len(run.times))}
        if (shape := hourly_shape(slots, ZoneInfo(cfg.zone), STEP)) is not None:
            shapes[t.meter] = shape
    found = peer_evidence(meters, shapes)
    unlike = {m for m, ev in found.items() if any(e.kind == "shape_unlike_peers" for e in ev)}
    assert unlike == {t.meter for t in run.customers() if t.kind == "circuit_bypass"}
    assert all(0.1 < t.fraction < 0.5 for t in run.customers() if t.kind == "circuit_bypass")


def test_a_shape_several_homes_share_is_a_way_of_living_not_a_missing_circuit():
    """Night-shift homes' profiles are unlike the median commuter home's, but like each other's:
    no ``shape_unlike_peers`` for them (the code before named every one), while a commuter home
    missing its evening circuit, whose shape is its own, still gets it.  (A night-shift home
    missing a circuit still lives like its kin: not found by shape, a documented limit.)"""
    mix = {"circuit_bypass": 0.03, "pv": 0.05}
    run = simulate(GridConfig(areas=1, customers=120, days=7, seed=21, mix=mix,
                              households={"commuter": 0.85, "night_shift": 0.15}))  # fmt: skip
    facts, shapes = peer_inputs(run, "A1")
    found = peer_evidence(facts, shapes)
    unlike = {m for m, ev in found.items() if any(e.kind == "shape_unlike_peers" for e in ev)}
    night = {t.meter for t in run.customers("A1") if t.household == "night_shift" and not t.theft}
    circuit = {t.meter for t in run.customers("A1")
               if t.kind == "circuit_bypass" and t.household == "commuter"}  # fmt: skip
    assert len(night) >= 8 and circuit
    assert not unlike & night, sorted(unlike & night)
    assert circuit <= unlike
    kin = {s.meter: s.kin for s in compare(facts, shapes)}
    assert all(kin[m] >= 3 for m in night if m in kin)
