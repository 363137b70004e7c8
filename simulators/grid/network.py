"""The low-voltage network of each area, step by step, and what every meter registers.

Each area is a transformer feeding ``branches`` radial lines; customers hang off a branch one
after another (a segment of ``segment_ohm`` between neighbours) through a service cable of their
own.  At every step the true net power of each customer (load − PV; nothing while the relay is
open, unless it is bridged) sets the segment currents, hence the I²R loss and the voltage along
the branch; the transformer adds its own load-dependent drop and the medium-voltage level, shared
by every area, moves slowly.  Single-phase equivalent at 230 V nominal, unity power factor.

Theft: ``bypass`` taps the supply before the meter (both wires), ``cover_open`` slows the meter
inside after opening its cover, ``neutral_bypass`` jumpers the live terminal (the meter's neutral
still carries the whole current), ``relay_bypass`` bridges a relay opened for arrears (registered,
but energy flows while the relay reports open), ``circuit_bypass`` feeds one circuit of the home
(the evening kitchen and heating circuit) from before the meter: the registered profile loses its
evening peak (its ``fraction`` is the share of the home's energy that circuit took).
"""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import timedelta

from simulators.grid import households, loads
from simulators.grid.model import THEFTS, AreaDay, GridConfig, GridRun, MeterSeries, MeterTruth

NOMINAL_V = 230.0
FRACTIONS = {
    "bypass": (0.2, 0.8),
    "cover_open": (0.3, 0.6),
    "neutral_bypass": (0.3, 0.8),
    "relay_bypass": (0.0, 0.0),
}


AREA_THEFT = "area_bypass"  # marks the theft area's extra bypasses (a bypass of a set fraction)


def _kinds(cfg: GridConfig, rng: random.Random, pv_area: bool, theft_area: bool) -> list[str]:
    n = cfg.customers
    if pv_area:
        counts = {"pv": round(0.5 * n)}
    else:
        counts = {k: round(share * n) for k, share in cfg.mix.items()}
    kinds = [AREA_THEFT] * (cfg.theft_area_meters if theft_area else 0)
    kinds += [k for k, c in counts.items() for _ in range(c)]
    kinds = kinds[:n] + ["healthy"] * (n - len(kinds[:n]))
    rng.shuffle(kinds)
    return kinds


def _truths(cfg: GridConfig, rng: random.Random) -> list[MeterTruth]:
    out = []
    serial = 0
    for a in range(cfg.areas):
        area = f"A{a + 1}"
        out.append(MeterTruth(f"{area}-T", area, area, "healthy", role="area_total"))
        for kind in _kinds(cfg, rng, a == cfg.pv_area, a == cfg.theft_area):
            serial += 1
            lo, hi = FRACTIONS.get(kind, (0.0, 0.0))
            fraction = round(rng.uniform(lo, hi), 3) if hi else 0.0
            if kind == AREA_THEFT:
                kind, fraction = "bypass", cfg.theft_area_fraction
            out.append(
                MeterTruth(
                    f"M{serial:05d}",
                    area,
                    area,
                    kind,
                    fraction=fraction,
                    pv_kw=round(rng.uniform(2.0, 5.0), 1) if kind == "pv" else 0.0,
                )
            )
    customers = [i for i, t in enumerate(out) if t.role == "customer"]
    if cfg.areas > 1:
        for i in rng.sample(customers, round(cfg.mis_mapped * len(customers))):
            t = out[i]
            others = [f"A{a + 1}" for a in range(cfg.areas) if f"A{a + 1}" != t.area]
            out[i] = replace(t, mapped_area=rng.choice(others))
    return out


EMPTY = ("vacant", "disconnected")  # kinds without a household's load


def _households(cfg: GridConfig, truths: list[MeterTruth]) -> list[float]:
    """Each lived-in home's archetype (in place; commuters without ``cfg.households``) and the
    town's daily mean temperatures (none without ``cfg.households``).  A generator of its own,
    so the customers' kinds, thefts and mapping are those of the single-template run."""
    if cfg.households is None:
        for n, t in enumerate(truths):
            if t.role == "customer" and t.kind not in EMPTY:
                truths[n] = replace(t, household="commuter")
        return []
    rng = random.Random(f"households/{cfg.seed}")
    temps = households.temperatures(rng, cfg.start, cfg.days)
    for area in sorted({t.area for t in truths}):
        lived = [t.meter for t in truths if t.area == area and t.role == "customer"
                 and t.kind not in EMPTY]  # fmt: skip
        chosen = households.assign(rng, lived, cfg.households)
        for n, t in enumerate(truths):
            if t.meter in chosen:
                truths[n] = replace(t, household=chosen[t.meter])
    return temps


def _load(
    t: MeterTruth,
    cfg: GridConfig,
    rng: random.Random,
    cover: list[float],
    hidden: dict[str, list[float]],
    temps: list[float],
) -> list[float]:
    steps = cfg.days * cfg.steps_per_day
    if cfg.households is not None and t.kind not in EMPTY:
        use, circuit = households.household_parts(
            rng, t.household, steps, cfg.step_minutes, cfg.start, temps
        )
        if t.kind == "circuit_bypass":
            hidden[t.meter] = circuit
        elif t.kind == "seasonal":
            empty = loads.vacant(rng, steps)
            away = _away(cfg.days)
            use = [empty[i] if i // cfg.steps_per_day in away else u for i, u in enumerate(use)]
        elif t.kind == "pv":
            gen = loads.pv(rng, t.pv_kw, steps, cfg.step_minutes, cover)
            use = [u - g for u, g in zip(use, gen, strict=True)]
        return use
    if t.kind == "circuit_bypass":
        use, hidden[t.meter] = loads.household_parts(rng, steps, cfg.step_minutes)
        return use
    if t.kind in ("vacant", "disconnected"):
        return loads.vacant(rng, steps) if t.kind == "vacant" else [0.0] * steps
    if t.kind == "seasonal":
        return loads.seasonal(rng, steps, cfg.step_minutes, _away(cfg.days))
    use = loads.household(rng, steps, cfg.step_minutes)
    if t.kind == "pv":
        gen = loads.pv(rng, t.pv_kw, steps, cfg.step_minutes, cover)
        return [u - g for u, g in zip(use, gen, strict=True)]
    return use


def _away(d: int) -> set[int]:
    """A seasonal home's days away: the first quarter and the last third of the run."""
    return set(range(max(1, d // 4))) | set(range(d - max(2, d // 3), d))


def simulate(cfg: GridConfig) -> GridRun:
    """Run the fleet over its days (pure and seeded: the same configuration, the same run)."""
    rng = random.Random(cfg.seed)
    truths = _truths(cfg, rng)
    temps = _households(cfg, truths)
    steps = cfg.days * cfg.steps_per_day
    dt = cfg.step_minutes / 60.0
    series: dict[str, MeterSeries] = {}
    net: dict[str, list[float]] = {}
    for t in truths:
        start = rng.uniform(10_000, 90_000) if t.role == "area_total" else rng.uniform(500, 20_000)
        series[t.meter] = MeterSeries(
            [start],
            [rng.uniform(0, 50) * (t.kind == "pv")],
            [],
            [],
            [],
            [t.kind in ("disconnected", "relay_bypass")] * steps,
        )
    areas = sorted({t.area for t in truths})
    covers = {a: loads.clouds(rng, cfg.days) for a in areas}
    hidden: dict[str, list[float]] = {}  # a circuit fed from before the meter (kW per step)
    for t in truths:
        if t.role == "customer":
            net[t.meter] = _load(t, cfg, rng, covers[t.area], hidden, temps)
            if t.kind == "cover_open":
                series[t.meter].cover_open_at.append(rng.randrange(steps))
    for n, t in enumerate(truths):
        if t.meter in hidden:
            share = sum(hidden[t.meter]) / max(sum(net[t.meter]), 1e-9)
            truths[n] = replace(t, fraction=round(share, 3))
    # the network: branches of customers in order, each with its service cable
    layout: dict[str, list[list[tuple[MeterTruth, float]]]] = {}
    for a in areas:
        members = [t for t in truths if t.area == a and t.role == "customer"]
        rng.shuffle(members)
        layout[a] = [
            [(t, rng.uniform(0.03, 0.15)) for t in members[b :: cfg.branches]]
            for b in range(cfg.branches)
        ]
    taps = {a: rng.uniform(-3.0, 5.0) for a in areas}
    walks = dict.fromkeys(areas, 0.0)
    mv = 0.0
    per_day = cfg.steps_per_day
    days: list[AreaDay] = []
    technical = dict.fromkeys(areas, 0.0)
    stolen = dict.fromkeys(areas, 0.0)
    meter_kw = cfg.meter_watts / 1000.0
    for i in range(steps):
        mv = 0.97 * mv + rng.gauss(0.0, 0.5)
        for a in areas:
            walks[a] = 0.95 * walks[a] + rng.gauss(0.0, 0.35)
            _step(
                cfg,
                i,
                a,
                layout[a],
                net,
                hidden,
                series,
                truths,
                taps[a] + walks[a] + mv,
                rng,
                technical,
                stolen,
                dt,
                meter_kw,
            )
        if (i + 1) % per_day == 0:
            day = cfg.start + timedelta(days=i // per_day)
            lo, hi = i + 1 - per_day, i + 1
            for a in areas:
                total = series[f"{a}-T"]
                supply = total.import_kwh[hi] - total.import_kwh[lo]
                supply += sum(
                    series[t.meter].export_kwh[hi] - series[t.meter].export_kwh[lo]
                    for t in truths
                    if t.area == a and t.role == "customer"
                )
                days.append(AreaDay(a, day, technical[a], stolen[a], supply))
                technical[a] = stolen[a] = 0.0
    return GridRun(cfg, cfg.boundaries(), {t.meter: t for t in truths}, series, days, temps)


def _step(
    cfg: GridConfig,
    i: int,
    area: str,
    branches: list[list[tuple[MeterTruth, float]]],
    net: dict[str, list[float]],
    hidden: dict[str, list[float]],
    series: dict[str, MeterSeries],
    truths: list[MeterTruth],
    offset: float,
    rng: random.Random,
    technical: dict[str, float],
    stolen: dict[str, float],
    dt: float,
    meter_kw: float,
) -> None:
    loss_w = 0.0
    total_kw = 0.0
    drops: list[list[float]] = []
    for branch in branches:
        amps = [net[t.meter][i] * 1000.0 / NOMINAL_V for t, _ in branch]
        seg = sum(amps)
        drop = 0.0
        here = []
        for (_t, r_service), current in zip(branch, amps, strict=True):
            drop += cfg.segment_ohm * seg
            loss_w += cfg.segment_ohm * seg * seg + r_service * current * current
            here.append(drop + r_service * current)
            seg -= current
        drops.append(here)
        total_kw += sum(net[t.meter][i] for t, _ in branch)
    n_meters = sum(len(b) for b in branches) + 1
    loss_kw = loss_w / 1000.0 + n_meters * meter_kw
    area_kw = total_kw + loss_kw
    v_tx = NOMINAL_V + offset - cfg.transformer_ohm * area_kw * 1000.0 / NOMINAL_V
    technical[area] += loss_kw * dt
    noise = cfg.voltage_noise
    total = series[f"{area}-T"]
    _register(total, area_kw, dt)
    total.voltage.append(round(v_tx + rng.gauss(0.0, noise), 1))
    amps_total = abs(area_kw) * 1000.0 / NOMINAL_V
    total.current_live.append(round(amps_total, 2))
    total.current_neutral.append(0.0)
    for branch, here in zip(branches, drops, strict=True):
        for (t, _), drop in zip(branch, here, strict=True):
            s = series[t.meter]
            kw = net[t.meter][i]
            true_a = abs(kw) * 1000.0 / NOMINAL_V
            seen = 1.0 - t.fraction if kw > 0 else 1.0
            if t.meter in hidden:
                seen = 1.0 - hidden[t.meter][i] / kw if kw > 0 else 1.0
            if t.kind in THEFTS and kw > 0:
                stolen[area] += kw * (1.0 - seen) * dt
            _register(s, kw * seen, dt)
            s.voltage.append(round(v_tx - drop + rng.gauss(0.0, noise), 1))
            live = true_a * seen
            neutral = true_a if t.kind == "neutral_bypass" else live
            s.current_live.append(round(live, 2))
            s.current_neutral.append(round(neutral * rng.uniform(0.99, 1.01), 2))


def _register(s: MeterSeries, kw: float, dt: float) -> None:
    s.import_kwh.append(s.import_kwh[-1] + max(kw, 0.0) * dt)
    s.export_kwh.append(s.export_kwh[-1] + max(-kw, 0.0) * dt)
