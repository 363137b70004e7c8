"""simulators.grid: the area truth is consistent (energy balance), seeded and configurable."""

from __future__ import annotations

import pytest

from simulators import SimConfigError
from simulators.grid import GridConfig, simulate

SMALL = GridConfig(areas=2, customers=40, days=2, step_minutes=30, mis_mapped=0.05, seed=9,
                   mix={"pv": 0.2, "vacant": 0.1, "disconnected": 0.1, "bypass": 0.1,
                        "neutral_bypass": 0.05, "relay_bypass": 0.05, "cover_open": 0.05})  # fmt: skip


@pytest.fixture(scope="module")
def run():
    return simulate(SMALL)


def test_supply_minus_registered_sales_is_technical_loss_plus_theft(run):
    n = run.config.steps_per_day
    for day in run.days:
        i = (day.day - run.config.start).days
        lo, hi = i * n, (i + 1) * n

        def delta(meter, export=False, lo=lo, hi=hi):
            reg = run.series[meter].export_kwh if export else run.series[meter].import_kwh
            return reg[hi] - reg[lo]

        total = run.area_total(day.area)
        here = run.customers(day.area, mapped=False)  # where they are, not where the archive says
        supply = delta(total) + sum(delta(t.meter, True) for t in here)
        sales = sum(delta(t.meter) for t in here) + delta(total, True)
        assert supply == pytest.approx(day.supply)
        assert supply - sales == pytest.approx(day.technical + day.stolen, rel=1e-9)
        assert 0.002 < day.technical / supply < 0.10 and day.stolen > 0


def test_the_same_configuration_gives_the_same_run(run):
    again = simulate(SMALL)
    assert again.meters == run.meters
    assert again.series["M00007"].voltage == run.series["M00007"].voltage


def test_kinds_shares_and_mis_mapping(run):
    kinds = [t.kind for t in run.customers()]
    assert len(kinds) == 80 and kinds.count("pv") == 16 and kinds.count("bypass") == 8
    assert sum(t.mis_mapped for t in run.customers()) == 4
    assert all(0.2 <= t.fraction <= 0.8 for t in run.customers() if t.kind == "bypass")


def test_what_meters_see_follows_their_kind(run):
    for t in run.customers():
        s = run.series[t.meter]
        exported = s.export_kwh[-1] - s.export_kwh[0]
        assert (exported > 0) == (t.kind == "pv")
        if t.kind == "disconnected":
            assert all(s.relay_open) and max(s.current_live) == 0
            assert s.import_kwh[-1] == s.import_kwh[0]
        if t.kind == "relay_bypass":  # relay reported open, energy still registered
            assert all(s.relay_open) and s.import_kwh[-1] > s.import_kwh[0]
        if t.kind == "neutral_bypass":
            loaded = [
                (a, n) for a, n in zip(s.current_live, s.current_neutral, strict=True) if n > 2
            ]
            assert loaded and all(a < 0.85 * n for a, n in loaded)
        if t.kind == "cover_open":
            assert len(s.cover_open_at) == 1
        assert min(s.voltage) > 150 and max(s.voltage) < 260


@pytest.mark.parametrize(
    "bad",
    [{"areas": 0}, {"customers": 1}, {"step_minutes": 7}, {"mix": {"arson": 0.1}},
     {"mix": {"pv": 0.7, "vacant": 0.5}}, {"mis_mapped": 0.6}],
)  # fmt: skip
def test_impossible_configurations_are_refused(bad):
    with pytest.raises(SimConfigError):
        GridConfig(**bad)
