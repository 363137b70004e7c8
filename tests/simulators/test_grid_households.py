"""simulators.grid household archetypes: each shape is what it claims, the single template is
unchanged without them, and runs are seeded."""

from __future__ import annotations

import hashlib
import itertools
import statistics
from collections.abc import Iterable
from dataclasses import replace

import pytest

from simulators import SimConfigError
from simulators.grid import DEFAULT_HOUSEHOLDS, GridConfig, GridRun, simulate
from simulators.grid.households import degrees
from simulators.grid.model import DEFAULT_MIX, MeterTruth

# 2 areas × 150 homes, 14 days (2 weekends) at 30 minutes, no thefts or vacancy: shapes only
MIXED = GridConfig(areas=2, customers=150, days=14, step_minutes=30, seed=7, mix={},
                   households=DEFAULT_HOUSEHOLDS)  # fmt: skip


@pytest.fixture(scope="module")
def mixed() -> GridRun:
    return simulate(MIXED)


def _steps(run: GridRun, meter: str) -> list[float]:
    reg = run.series[meter].import_kwh
    return [b - a for a, b in itertools.pairwise(reg)]


def _hourly_share(run: GridRun, archetype: str, days: Iterable[int] | None = None) -> list[float]:
    """Share of the archetype's energy per local hour of day (all its homes, ``days`` only)."""
    n = run.config.steps_per_day
    keep = set(range(run.config.days) if days is None else days)
    hours = [0.0] * 24
    for t in run.customers():
        if t.household == archetype:
            for i, e in enumerate(_steps(run, t.meter)):
                if i // n in keep:
                    hours[(i % n) * 24 // n] += e
    total = sum(hours)
    return [h / total for h in hours]


def _daily(run: GridRun, meter: str) -> list[float]:
    n, reg = run.config.steps_per_day, run.series[meter].import_kwh
    return [reg[(d + 1) * n] - reg[d * n] for d in range(run.config.days)]


def test_every_lived_in_home_has_its_archetype_in_the_shares(mixed):
    for area in ("A1", "A2"):
        homes = mixed.customers(area, mapped=False)
        counts = {k: sum(t.household == k for t in homes) for k in DEFAULT_HOUSEHOLDS}
        for k, share in DEFAULT_HOUSEHOLDS.items():
            if k != "commuter":
                assert counts[k] == round(share * len(homes)), k
        assert sum(counts.values()) == len(homes)  # the rest are commuters
    assert all(t.household == "" for t in mixed.meters.values() if t.role == "area_total")


def test_night_shift_uses_most_of_its_energy_between_22_and_6(mixed):
    share = _hourly_share(mixed, "night_shift")
    assert sum(share[22:]) + sum(share[:6]) > 0.55
    assert sum(share[9:15]) < 0.12  # asleep by day
    commuter = _hourly_share(mixed, "commuter")
    assert sum(commuter[22:]) + sum(commuter[:6]) < 0.25


def test_shop_is_flat_while_open_and_quiet_at_night(mixed):
    share = _hourly_share(mixed, "shop")
    open_hours = share[10:20]
    assert max(open_hours) / min(open_hours) < 1.25
    assert sum(share[:7]) + sum(share[22:]) < 0.12
    assert sum(share[9:21]) > 0.8


def test_at_home_uses_more_of_its_day_by_day_than_a_commuter_on_a_workday(mixed):
    weekdays = [d for d in range(MIXED.days) if (MIXED.start.toordinal() + d) % 7 not in (0, 6)]
    at_home = _hourly_share(mixed, "at_home", weekdays)
    commuter = _hourly_share(mixed, "commuter", weekdays)
    assert sum(at_home[10:16]) > 1.4 * sum(commuter[10:16])


def test_commuters_are_home_by_day_at_the_weekend(mixed):
    weekend = [d for d in range(MIXED.days) if (MIXED.start.toordinal() + d) % 7 in (0, 6)]
    workdays = sorted(set(range(MIXED.days)) - set(weekend))
    assert len(weekend) == 4
    at_weekend = _hourly_share(mixed, "commuter", weekend)
    on_workdays = _hourly_share(mixed, "commuter", workdays)
    assert sum(at_weekend[10:16]) > 1.2 * sum(on_workdays[10:16])
    assert max(range(24), key=on_workdays.__getitem__) in (19, 20)  # the evening peak


def test_electric_heating_follows_the_shared_temperature_from_day_to_day(mixed):
    need = [degrees(t) for t in mixed.temperatures]
    assert len(need) == MIXED.days and statistics.pstdev(need) > 1.0
    heated = [t.meter for t in mixed.customers() if t.household == "electric_heating"]
    others = [t.meter for t in mixed.customers() if t.household == "at_home"]
    with_need = [statistics.correlation(_daily(mixed, m), need) for m in heated]
    assert statistics.median(with_need) > 0.5
    pairs = [statistics.correlation(_daily(mixed, a), _daily(mixed, b))
             for a, b in itertools.combinations(heated[:20], 2)]  # fmt: skip
    assert statistics.median(pairs) > 0.6
    assert statistics.median(statistics.correlation(_daily(mixed, m), need) for m in others) < 0.3
    level = statistics.median(statistics.mean(_daily(mixed, m)) for m in heated)
    assert level > 1.4 * statistics.median(statistics.mean(_daily(mixed, m)) for m in others)


def test_homes_of_one_archetype_keep_their_own_noise(mixed):
    shops = [t.meter for t in mixed.customers() if t.household == "shop"]
    a, b = _steps(mixed, shops[0]), _steps(mixed, shops[1])
    assert statistics.correlation(a, b) < 0.9  # same shape, not the same curve
    levels = [statistics.mean(_daily(mixed, m)) for m in shops]
    assert max(levels) > 1.5 * min(levels)  # sizes differ


def _who(t: MeterTruth) -> tuple[object, ...]:
    return (t.area, t.mapped_area, t.kind, t.fraction, t.pv_kw, t.role)


def test_archetypes_keep_the_kinds_thefts_and_mapping_of_the_single_template_run():
    cfg = GridConfig(areas=2, customers=40, days=2, step_minutes=60, seed=3, mis_mapped=0.05)
    single = simulate(cfg)
    mixed = simulate(replace(cfg, households=DEFAULT_HOUSEHOLDS))
    assert {m: _who(t) for m, t in single.meters.items()} == {
        m: _who(t) for m, t in mixed.meters.items()
    }
    assert {
        t.household for t in single.customers() if t.kind not in ("vacant", "disconnected")
    } == {"commuter"}
    assert len({t.household for t in mixed.customers()} - {""}) > 2
    assert single.temperatures == []


def _digest(run: GridRun) -> str:
    h = hashlib.sha256()
    for m, s in sorted(run.series.items()):
        t = run.meters[m]
        h.update(repr((m, t.area, t.mapped_area, t.kind, t.fraction, t.pv_kw)).encode())
        for reg in (s.import_kwh, s.export_kwh, s.current_live, s.current_neutral):
            h.update(repr([round(v, 6) for v in reg]).encode())
        h.update(repr((s.voltage, s.relay_open, s.cover_open_at)).encode())
    for d in run.days:
        h.update(repr((d.area, d.day, round(d.technical, 6), round(d.stolen, 6),
                       round(d.supply, 6))).encode())  # fmt: skip
    return h.hexdigest()


def test_without_households_the_run_is_the_single_template_bit_for_bit():
    """The digest was computed with the simulator before archetypes existed (commit 07abd6d)."""
    cfg = GridConfig(areas=2, customers=30, days=2, step_minutes=30, seed=21, theft_area=0,
                     theft_area_meters=3, mis_mapped=0.05,
                     mix={**DEFAULT_MIX, "circuit_bypass": 0.05})  # fmt: skip
    assert _digest(simulate(cfg)) == (
        "d9c3333f37ad74d5c11df89c8caa372b5dd397dc27cf20bb7093862ec5acf7aa"
    )


def test_a_seed_gives_the_same_mixed_run_and_another_seed_another():
    cfg = GridConfig(areas=1, customers=30, days=2, step_minutes=60, seed=4,
                     households=DEFAULT_HOUSEHOLDS)  # fmt: skip
    first, again = simulate(cfg), simulate(cfg)
    assert _digest(first) == _digest(again) and first.temperatures == again.temperatures
    assert first.meters == again.meters
    other = simulate(replace(cfg, seed=5))
    assert _digest(other) != _digest(first)


def test_mixed_runs_keep_the_energy_balance(mixed):
    for day in mixed.days:
        n = MIXED.steps_per_day
        i = (day.day - MIXED.start).days
        total = mixed.series[mixed.area_total(day.area)].import_kwh
        sales = sum(
            mixed.series[t.meter].import_kwh[(i + 1) * n] - mixed.series[t.meter].import_kwh[i * n]
            for t in mixed.customers(day.area, mapped=False)
        )
        supply = total[(i + 1) * n] - total[i * n]
        assert supply - sales == pytest.approx(day.technical + day.stolen, rel=1e-9)


@pytest.mark.parametrize(
    "households",
    [{"student": 0.1}, {"shop": 0.7, "at_home": 0.5}, {"shop": -0.1}],
)
def test_bad_household_shares_are_refused(households):
    with pytest.raises(SimConfigError, match="households"):
        GridConfig(households=households)
