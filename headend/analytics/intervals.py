"""Suspect evidence from interval readings (15-minute registers, voltage, currents, relay).

These signals need no history before the window, so a theft older than the head-end's data is
still found:

- ``energy_while_open``: the import register advances (or current flows) while the meter reports
  its relay open — a bridged relay after an arrears disconnection.
- ``lost_voltage``: voltage below ``LOST_VOLTAGE`` *at the same reading* as current or energy
  (a voltage circuit opened to slow the meter), not merely on the same day.
- ``neutral_imbalance``: on a single-phase meter, live and neutral current differ (a jumper on
  the live terminal or load returned elsewhere): the classic bypass signal.
- ``loss_follows_load``: the area's loss curve (area meter − Σ customers, per interval) follows
  this customer's own registered load once the technical loss is accounted for.  The loss curve
  is fitted on ``[1, S, S²]`` (S: Σ customers' registered load; I²R losses grow with its square),
  then customers are chosen greedily (orthogonal matching pursuit) by the correlation of their
  load, orthogonalised the same way, with what is left of the loss.  A customer whose meter
  registers ``1 − f`` of its use adds ``f/(1 − f)`` of its registered load to the loss curve, so
  the fitted coefficient ``b`` estimates the unregistered share ``f = b/(1 + b)``.

Statistics are in floats: evidence, not billing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from operator import mul

from headend.analytics.suspects import LOST_VOLTAGE, PLACES, WEIGHTS, Evidence

MIN_LOADED_A = 1.0  # a single-phase imbalance is judged only above this current
IMBALANCE = 0.2  # |In − IL| above this share of the larger (plus 0.3 A) is imbalanced
MIN_SHARE = 0.2  # of loaded readings, for the imbalance to count
MIN_CORR = 0.1  # pursuit stops below this correlation
MAX_PICKS = 30
MIN_UNREGISTERED = 0.12  # a fitted share below this is within the technical-loss model's error
# a PV customer's import is its use less its own generation: its curve is reshaped by the sun,
# as is the lines' loss, so its fit is less certain and must show a larger share
MIN_UNREGISTERED_PV = 0.25
MIN_SLOTS = 48


@dataclass(frozen=True)
class MeterIntervals:
    """One meter's interval readings, times aligned to the step (floats).  A reader may leave out
    what cannot be evidence (voltages above ``LOST_VOLTAGE``, relay states of a meter never
    reported open).  The recompute leaves the register empty and passes each meter's slot
    energies (``used``) and live/neutral counts (``NeutralCounts``) from the per-day aggregates
    (``headend.analytics.aggregates``); ``series.sparse_facts`` reads relay states and live
    currents only where a rule needs them."""

    meter: str
    energy: Mapping[datetime, float] = field(default_factory=dict)  # import register
    voltage: Mapping[datetime, float] = field(default_factory=dict)
    live: Mapping[datetime, float] = field(default_factory=dict)
    neutral: Mapping[datetime, float] = field(default_factory=dict)
    relay_open: Mapping[datetime, bool] = field(default_factory=dict)


def slot_energy(register: Mapping[datetime, float], step: timedelta) -> dict[datetime, float]:
    """Energy of each step ending at ``t`` (register differences one step apart, never < 0)."""
    out = {}
    for t, v in register.items():
        prev = register.get(t - step)
        if prev is not None and v >= prev:
            out[t] = v - prev
    return out


def _ev(kind: str, scale: float, at: datetime, summary: str, **details: object) -> Evidence:
    weight = (WEIGHTS[kind] * Decimal(str(round(min(max(scale, 0.0), 1.0), 3)))).quantize(PLACES)
    return Evidence(kind, weight, at, summary, details)


def energy_while_open(
    m: MeterIntervals, step: timedelta, used: Mapping[datetime, float] | None = None
) -> Evidence | None:
    """Energy or current while the relay reports open (both ends of the step open); ``used``:
    the meter's ``slot_energy`` if already computed."""
    if not m.relay_open:
        return None
    used = slot_energy(m.energy, step) if used is None else used
    hits = sorted(
        t
        for t, is_open in m.relay_open.items()
        if is_open
        and m.relay_open.get(t - step, False)
        and (used.get(t, 0.0) >= 0.01 or m.live.get(t, 0.0) >= 0.2)
    )
    if not hits:
        return None
    kwh = sum(used.get(t, 0.0) for t in hits)
    return _ev(
        "energy_while_open",
        1.0,
        hits[0],
        f"{kwh:.2f} kWh registered in {len(hits)} readings while the relay was open",
        readings=len(hits),
        kwh=f"{kwh:.2f}",
        first=hits[0].isoformat(),
    )


def lost_voltage(
    m: MeterIntervals, step: timedelta, used: Mapping[datetime, float] | None = None
) -> Evidence | None:
    """Voltage lost at the same reading as current or energy flows."""
    limit = float(LOST_VOLTAGE)
    if not any(v < limit for v in m.voltage.values()):
        return None
    used = slot_energy(m.energy, step) if used is None else used
    hits = sorted(
        t
        for t, v in m.voltage.items()
        if v < limit and (m.live.get(t, 0.0) >= 0.2 or used.get(t, 0.0) >= 0.01)
    )
    if len(hits) < 2:
        return None
    low = min(m.voltage[t] for t in hits)
    return _ev(
        "lost_voltage",
        min(1.0, len(hits) / 8),
        hits[0],
        f"{len(hits)} readings with voltage below {limit:.0f} V while registering "
        f"(lowest {low:.1f} V)",
        readings=len(hits),
        lowest=f"{low:.1f}",
    )


@dataclass(frozen=True)
class NeutralCounts:
    """A meter's paired live/neutral readings: how many were loaded (either ≥ ``MIN_LOADED_A``),
    how many of those imbalanced, the sums of live and neutral current over the imbalanced ones
    and the first imbalanced time (the database computes these as aggregates)."""

    loaded: int
    off: int = 0
    live_off: float = 0.0
    neutral_off: float = 0.0
    first_off: datetime | None = None


def neutral_counts(m: MeterIntervals) -> NeutralCounts:
    """``NeutralCounts`` of a meter's interval readings (live and neutral of the same slot)."""
    loaded = [t for t in m.live if t in m.neutral and max(m.live[t], m.neutral[t]) >= MIN_LOADED_A]
    off = [
        t
        for t in loaded
        if abs(m.neutral[t] - m.live[t]) > IMBALANCE * max(m.live[t], m.neutral[t]) + 0.3
    ]
    return NeutralCounts(
        len(loaded),
        len(off),
        math.fsum(m.live[t] for t in off),
        math.fsum(m.neutral[t] for t in off),
        min(off, default=None),
    )


def neutral_evidence(c: NeutralCounts) -> Evidence | None:
    """``neutral_imbalance`` evidence from a meter's counts (≥ 4 loaded readings, ≥ MIN_SHARE of
    them imbalanced)."""
    if c.loaded < 4 or c.first_off is None:
        return None
    share = c.off / c.loaded
    if share < MIN_SHARE:
        return None
    ratio = c.live_off / max(c.neutral_off, 1e-9)
    return _ev(
        "neutral_imbalance",
        min(1.0, share * 2),
        c.first_off,
        f"live and neutral current differ in {share:.0%} of {c.loaded} loaded readings "
        f"(live/neutral {ratio:.2f})",
        share=f"{share:.2f}",
        live_over_neutral=f"{ratio:.2f}",
        readings=c.loaded,
    )


def neutral_imbalance(m: MeterIntervals) -> Evidence | None:
    """Live and neutral current differ on a loaded single-phase meter."""
    return neutral_evidence(neutral_counts(m))


# --- the area's loss curve against each customer's load ----------------------------------------


def _dot(a: Sequence[float], b: Sequence[float]) -> float:
    return float(sum(map(mul, a, b)))


def _orthogonalise(v: list[float], basis: Sequence[list[float]]) -> list[float]:
    out = list(v)
    for q in basis:
        c = _dot(out, q)
        out = [x - c * y for x, y in zip(out, q, strict=True)]
    return out


def _unit(v: list[float]) -> list[float] | None:
    n = math.sqrt(_dot(v, v))
    return None if n < 1e-9 else [x / n for x in v]


@dataclass(frozen=True)
class LossFit:
    """A customer the area's loss curve follows."""

    meter: str
    corr: float  # correlation with the remaining loss when chosen
    coefficient: float  # loss per registered kWh (b)
    stolen_kwh_day: float


def loss_followers(
    area: Mapping[datetime, float],
    customers: Mapping[str, Mapping[datetime, float]],
    exports: Mapping[str, Mapping[datetime, float]] | None = None,
    pv: frozenset[str] = frozenset(),
) -> list[LossFit]:
    """Customers whose registered load the area's loss curve follows (strongest first).

    ``area`` and ``customers``: energy per step (import; ``exports`` the customers' export per
    step; ``pv``: customers with PV).  Steps where the area meter or any customer has no value
    are left out."""
    common = set(area)
    for c in customers.values():
        common &= c.keys()
    slots = sorted(common)
    if len(slots) < MIN_SLOTS or not customers:
        return []
    exports = exports or {}
    loads = {m: [c[t] for t in slots] for m, c in customers.items()}
    out_of = {m: [e.get(t, 0.0) for t in slots] for m, e in exports.items()}
    total = [math.fsum(column) for column in zip(*loads.values(), strict=True)]
    back = [math.fsum(column) for column in zip(*out_of.values(), strict=True)]
    back = back or [0.0] * len(slots)
    loss = [area[t] + back[i] - total[i] for i, t in enumerate(slots)]
    net = [s - b for s, b in zip(total, back, strict=True)]
    basis: list[list[float]] = []
    # the technical loss: I²R of the net flow, and of import and export apart (PV feeds the
    # lines in other places than the homes draw)
    shapes = [[1.0] * len(slots), net, [x * x for x in net]]
    if any(back):
        shapes += [back, [x * x for x in back], [x * x for x in total]]
    for v in shapes:
        q = _unit(_orthogonalise(v, basis))
        if q is not None:
            basis.append(q)
    residual = _orthogonalise(loss, basis)
    cand = {}
    for m, v in loads.items():
        q = _orthogonalise(v, basis)
        norm = math.sqrt(_dot(q, q))
        if norm > 1e-6:
            cand[m] = (q, norm)
    projected = {m: q for m, (q, _) in cand.items()}  # each load with the technical loss removed
    picks: list[tuple[str, float]] = []
    chosen: list[list[float]] = []
    for _ in range(MAX_PICKS):
        r_norm = math.sqrt(_dot(residual, residual))
        if r_norm < 1e-9:
            break
        best, best_corr = None, MIN_CORR
        for m, (q, norm) in cand.items():
            corr = _dot(q, residual) / (norm * r_norm)
            if corr > best_corr:
                best, best_corr = m, corr
        if best is None:
            break
        q, _ = cand.pop(best)
        u = _unit(_orthogonalise(q, chosen))
        if u is None:
            continue
        chosen.append(u)
        residual = _orthogonalise(residual, [u])
        picks.append((best, best_corr))
    if not picks:
        return []
    columns = [projected[m] for m, _ in picks]
    coefficients = _least_squares(columns, loss, basis)
    out = []
    span_days = max((slots[-1] - slots[0]).total_seconds() / 86400, 1e-6)
    for (m, corr), b in zip(picks, coefficients, strict=True):
        if b / (1 + b) < (MIN_UNREGISTERED_PV if m in pv else MIN_UNREGISTERED):
            continue
        stolen = b * math.fsum(loads[m]) / span_days
        out.append(LossFit(m, corr, b, stolen))
    return out


def _least_squares(
    columns: list[list[float]], y: list[float], basis: Sequence[list[float]]
) -> list[float]:
    """Coefficients of ``y`` (orthogonalised) on ``columns`` by the normal equations."""
    yy = _orthogonalise(y, basis)
    k = len(columns)
    a = [[_dot(columns[i], columns[j]) for j in range(k)] for i in range(k)]
    b = [_dot(columns[i], yy) for i in range(k)]
    for i in range(k):  # Gauss-Jordan with partial pivoting
        p = max(range(i, k), key=lambda r: abs(a[r][i]))
        a[i], a[p], b[i], b[p] = a[p], a[i], b[p], b[i]
        if abs(a[i][i]) < 1e-12:
            continue
        for r in range(k):
            if r != i and a[r][i]:
                f = a[r][i] / a[i][i]
                a[r] = [x - f * y for x, y in zip(a[r], a[i], strict=True)]
                b[r] -= f * b[i]
    return [b[i] / a[i][i] if abs(a[i][i]) >= 1e-12 else 0.0 for i in range(k)]


def loss_evidence(fit: LossFit, at: datetime) -> Evidence:
    """``loss_follows_load`` evidence of one fitted customer."""
    share = fit.coefficient / (1 + fit.coefficient)
    scale = min(1.0, 0.5 + fit.corr) * (0.5 + min(share, 0.5))
    return _ev(
        "loss_follows_load",
        scale,
        at,
        f"the area's loss follows this meter's load (r = {fit.corr:.2f}): about "
        f"{fit.stolen_kwh_day:.1f} kWh/day unregistered ({share:.0%} of its use)",
        corr=f"{fit.corr:.3f}",
        unregistered_share=f"{share:.2f}",
        kwh_day=f"{fit.stolen_kwh_day:.2f}",
    )
