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
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

import numpy
from numpy.typing import NDArray

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
# with the meters' voltages the technical loss is known customer by customer (an honest home at
# the end of a long branch no longer looks like a thief), so a smaller share is significant
MIN_UNREGISTERED_V = 0.14
MIN_T = 3.0  # the fitted coefficient over its standard error …
MIN_T_V = 3.5  # … with voltages (chosen on seeds 3, 5, 8, 9, 11–14; bench/analytics_fit.py)
WHITEN = True  # generalised least squares for the registers' rounding noise …
ROUNDING_DOMINATES = -0.2  # … when the residual's lag-1 correlation is below this


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

Vector = NDArray[numpy.float64]


def _orthonormal(columns: Vector, basis: Vector | None = None) -> Vector:
    """An orthonormal basis of ``columns`` (n × k) orthogonal to ``basis``, by modified
    Gram–Schmidt in column order; a column whose remainder has norm below 1e-9 adds nothing."""
    out: list[Vector] = []
    prior = [] if basis is None else [basis[:, j] for j in range(basis.shape[1])]
    for j in range(columns.shape[1]):
        v = columns[:, j].copy()
        for q in (*prior, *out):
            v -= (q @ v) * q
        norm = float(numpy.linalg.norm(v))
        if norm >= 1e-9:
            out.append(v / norm)
    n = columns.shape[0]
    return numpy.column_stack(out) if out else numpy.zeros((n, 0))


def _remove(v: Vector, basis: Vector) -> Vector:
    """``v`` (a vector or the columns of a matrix) less its projection on ``basis``."""
    return v - basis @ (basis.T @ v)


@dataclass(frozen=True)
class LossFit:
    """A customer the area's loss curve follows."""

    meter: str
    corr: float  # correlation with the remaining loss when chosen
    coefficient: float  # loss per registered kWh (b)
    stolen_kwh_day: float
    t: float = math.inf  # b over its standard error (residual autocorrelation allowed for)

    @property
    def share(self) -> float:
        """The unregistered share of the customer's use, b/(1 + b)."""
        return self.coefficient / (1 + self.coefficient)


@dataclass(frozen=True)
class Voltages:
    """Interval voltages (V, at the end of each step) of the area meter and of the customers
    (a customer without a value at a step counts no line drop there)."""

    area: Mapping[datetime, float]
    customers: Mapping[str, Mapping[datetime, float]]


def _voltage_loss(
    v: Voltages,
    names: list[str],
    slots: list[datetime],
    loads: Vector,
    exports: Mapping[str, Mapping[datetime, float]],
) -> Vector:
    """The line loss the meters' voltages imply, per slot: Σ_j e_j (V_T − V_j)/V_j.

    In a radial network the power lost in the lines is Σ_j I_j (V_T − V_j) (I_j: the current
    drawn at customer j, V_T: the transformer's voltage at the area meter), and I_j dt = e_j/V_j
    for the customer's net energy e_j (import − export) of the step."""
    area_v = numpy.array([v.area[t] for t in slots], dtype=numpy.float64)
    out = numpy.zeros(len(slots))
    for j, m in enumerate(names):
        mine = v.customers.get(m)
        if not mine:
            continue
        volts = numpy.array([mine.get(t, math.nan) for t in slots], dtype=numpy.float64)
        e = loads[:, j].copy()
        if m in exports:
            e -= numpy.array([exports[m].get(t, 0.0) for t in slots], dtype=numpy.float64)
        seen = numpy.isfinite(volts) & (volts > 0)
        out[seen] += e[seen] * (area_v[seen] - volts[seen]) / volts[seen]
    return out


def voltage_line_loss(
    v: Voltages,
    customers: Mapping[str, Mapping[datetime, float]],
    exports: Mapping[str, Mapping[datetime, float]] | None = None,
) -> dict[datetime, float]:
    """The line loss (kWh per step) the meters' voltages imply, at the steps where the area
    meter has a voltage and every customer an energy (see ``_voltage_loss``)."""
    common = set(v.area)
    for c in customers.values():
        common &= c.keys()
    slots = sorted(common)
    names = list(customers)
    loads = numpy.array([[customers[m][t] for t in slots] for m in names], dtype=numpy.float64).T
    curve = _voltage_loss(v, names, slots, loads.reshape(len(slots), len(names)), exports or {})
    return dict(zip(slots, (float(x) for x in curve), strict=True))


def fit_loss_curve(
    area: Mapping[datetime, float],
    customers: Mapping[str, Mapping[datetime, float]],
    exports: Mapping[str, Mapping[datetime, float]] | None = None,
    voltages: Voltages | None = None,
) -> list[LossFit]:
    """Every customer the pursuit picks, in the order picked, with its fitted coefficient and
    t-statistic (``loss_followers`` keeps those that count; arguments as there)."""
    common = set(area)
    for c in customers.values():
        common &= c.keys()
    if voltages is not None:
        common &= voltages.area.keys()
    slots = sorted(common)
    if len(slots) < MIN_SLOTS or not customers:
        return []
    exports = exports or {}
    names = list(customers)
    loads = numpy.array([[customers[m][t] for t in slots] for m in names], dtype=numpy.float64).T
    back = numpy.zeros(len(slots))
    for e in exports.values():
        back += numpy.array([e.get(t, 0.0) for t in slots], dtype=numpy.float64)
    total = loads.sum(axis=1)
    loss = numpy.array([area[t] for t in slots], dtype=numpy.float64) + back - total
    net = total - back
    # the technical loss: I²R of the net flow, and of import and export apart (PV feeds the
    # lines in other places than the homes draw)
    shapes = [numpy.ones(len(slots)), net, net * net]
    if back.any():
        shapes += [back, back * back, total * total]
    if voltages is not None:
        shapes.append(_voltage_loss(voltages, names, slots, loads, exports))
    fitted = _pursue(loss, loads, numpy.column_stack(shapes))
    if WHITEN and fitted is not None:
        whiten = _whitener(fitted[3], slots)
        if whiten is not None:
            fitted = _pursue(whiten(loss), whiten(loads), whiten(numpy.column_stack(shapes)))
    if fitted is None:
        return []
    picks, coefficients, errors, _ = fitted
    span_days = max((slots[-1] - slots[0]).total_seconds() / 86400, 1e-6)
    return [
        LossFit(
            names[j], corr, b, b * float(loads[:, j].sum()) / span_days, b / se if se else math.inf
        )
        for (j, corr), b, se in zip(picks, coefficients, errors, strict=True)
    ]


def _pursue(
    loss: Vector, loads: Vector, shapes: Vector
) -> tuple[list[tuple[int, float]], list[float], list[float], Vector] | None:
    """Orthogonal matching pursuit of ``loss`` over the columns of ``loads`` once ``shapes`` (the
    technical loss) are removed: the picks (column, correlation when picked), their least-squares
    coefficients and standard errors, and the residual; None when nothing is picked."""
    n = len(loss)
    basis = _orthonormal(shapes)
    residual = _remove(loss, basis)
    projected = _remove(loads, basis)  # each load with the technical loss removed
    norms = numpy.linalg.norm(projected, axis=0)
    open_ = norms > 1e-6  # candidates not yet chosen
    picks: list[tuple[int, float]] = []
    chosen = numpy.zeros((n, 0))
    for _ in range(MAX_PICKS):
        r_norm = float(numpy.linalg.norm(residual))
        if r_norm < 1e-9 or not open_.any():
            break
        score = numpy.where(open_, (residual @ projected) / (norms * r_norm + 1e-300), -numpy.inf)
        best = int(numpy.argmax(score))  # the first of equals, as in the archive's order
        if score[best] <= MIN_CORR:
            break
        open_[best] = False
        u = _orthonormal(projected[:, [best]], chosen)
        if u.shape[1] == 0:
            continue
        chosen = numpy.column_stack((chosen, u))
        residual = _remove(residual, u)
        picks.append((best, float(score[best])))
    if not picks:
        return None
    columns = projected[:, [j for j, _ in picks]]
    coefficients, errors = _least_squares(columns, loss, basis)
    return picks, coefficients, errors, residual


def _whitener(e: Vector, slots: list[datetime]) -> Callable[[Vector], Vector] | None:
    """A map that whitens the loss curve's noise, estimated from a first fit's residual ``e``.

    Each slot's energy is the difference of two register readings rounded to the register's
    resolution, so the rounding of all the area's meters adds noise of variance 2q to a slot and
    −q to its covariance with the next (an MA(1) with correlation −½); the rest (the technical
    model's error) is taken as white, of variance w.  From the residual's lag-0 and lag-1
    covariances ``c0``, ``c1``: q = max(−c1, 0), w = c0 − 2q.  Slots not adjacent share no
    reading.  Generalised least squares: every column is multiplied by L⁻¹, L Lᵀ = Σ."""
    n = len(e)
    gaps = numpy.diff(numpy.array([t.timestamp() for t in slots]))
    adjacent = gaps <= gaps.min() + 1e-6  # one step apart
    c0 = float(e @ e) / n
    c1 = float((e[1:] * e[:-1])[adjacent].sum()) / max(int(adjacent.sum()), 1)
    if c1 > ROUNDING_DOMINATES * c0:  # the model's error, not the rounding, dominates
        return None
    q = -c1
    w = max(c0 - 2 * q, 0.05 * c0)
    sigma: Vector = numpy.diag(numpy.full(n, w + 2 * q))
    off = numpy.where(adjacent, -q, 0.0)
    sigma += numpy.diag(off, 1) + numpy.diag(off, -1)
    factor = numpy.linalg.cholesky(sigma)

    def whiten(v: Vector) -> Vector:
        out: Vector = numpy.linalg.solve(factor, v)
        return out

    return whiten


def loss_followers(
    area: Mapping[datetime, float],
    customers: Mapping[str, Mapping[datetime, float]],
    exports: Mapping[str, Mapping[datetime, float]] | None = None,
    pv: frozenset[str] = frozenset(),
    voltages: Voltages | None = None,
) -> list[LossFit]:
    """Customers whose registered load the area's loss curve follows (strongest first).

    ``area`` and ``customers``: energy per step (import; ``exports`` the customers' export per
    step; ``pv``: customers with PV; ``voltages``: the meters' interval voltages, which give
    the technical loss customer by customer).  Steps where the area meter (or its voltage) or
    any customer has no energy are left out.  A fit counts with a t-statistic of at least
    ``MIN_T`` and a share of at least ``MIN_UNREGISTERED`` (with voltages ``MIN_T_V`` and
    ``MIN_UNREGISTERED_V``; a PV customer's share at least ``MIN_UNREGISTERED_PV``)."""
    floor, t_min = (MIN_UNREGISTERED, MIN_T) if voltages is None else (MIN_UNREGISTERED_V, MIN_T_V)
    return [
        f
        for f in fit_loss_curve(area, customers, exports, voltages)
        if f.t >= t_min and f.share >= (MIN_UNREGISTERED_PV if f.meter in pv else floor)
    ]


def _least_squares(columns: Vector, y: Vector, basis: Vector) -> tuple[list[float], list[float]]:
    """Coefficients of ``y`` (orthogonalised on ``basis``) on ``columns`` by least squares, and
    their standard errors from the residual, its variance scaled by (1 + ρ)/(1 − ρ) for a lag-1
    autocorrelation ρ > 0 of the residual (fewer independent slots than slots)."""
    yy = _remove(y, basis)
    b, *_ = numpy.linalg.lstsq(columns, yy, rcond=None)
    e = yy - columns @ b
    dof = len(y) - basis.shape[1] - columns.shape[1]
    if dof <= 0:
        return [float(x) for x in b], [0.0] * len(b)
    rho = float(e[1:] @ e[:-1] / max(float(e @ e), 1e-300))
    rho = min(max(rho, 0.0), 0.9)
    var = float(e @ e) / dof * (1 + rho) / (1 - rho)
    inverse = numpy.linalg.pinv(columns.T @ columns)
    se = numpy.sqrt(numpy.maximum(numpy.diag(inverse), 0.0) * var)
    return [float(x) for x in b], [float(x) for x in se]


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
