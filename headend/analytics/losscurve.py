"""The area's loss curve against each customer's load: who does the loss follow?

The loss curve (area meter − Σ customers, per interval, both directions) is fitted on the
technical loss — ``[1, S, S²]`` (S: Σ customers' net registered load; I²R losses grow with its
square), and with the meters' voltages the line loss they imply customer by customer — then
customers are chosen greedily (orthogonal matching pursuit) by the correlation of their load,
orthogonalised the same way, with what is left of the loss.  A customer whose meter registers
``1 − f`` of its use adds ``f/(1 − f)`` of its registered load to the loss curve, so the fitted
coefficient ``b`` estimates the unregistered share ``f = b/(1 + b)``; its standard error comes
from the fit's residual (after whitening the registers' rounding noise when it dominates).
Formulas: docs/analytics.md, *The loss-curve fit*.  Statistics are in floats: evidence, not
billing.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime

import numpy
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

MIN_CORR = 0.1  # pursuit stops below this correlation
MAX_PICKS = 30
MIN_SLOTS = 48
WHITEN = True  # generalised least squares for the registers' rounding noise …
ROUNDING_DOMINATES = -0.2  # … when the residual's lag-1 correlation is below this

# V_j / V_T of a line drop or rise: below 70 % is a lost voltage (as ``LOST_VOLTAGE`` is 70 % of
# 220 V), above 110 % no LV line's rise
LINE_DROP = (0.7, 1.1)

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
    for the customer's net energy e_j (import − export) of the step.  A voltage outside
    ``LINE_DROP`` × V_T is no line drop (a voltage circuit opened to slow the meter — which
    ``lost_voltage`` judges — or a meter on another transformer) and counts none."""
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
        ratio = volts / area_v
        seen = numpy.isfinite(ratio) & (ratio >= LINE_DROP[0]) & (ratio <= LINE_DROP[1])
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
    t-statistic (``loss_followers`` keeps those that count; arguments as there).  One BLAS
    thread: the matrices are small, and idle OpenBLAS threads spin on the CPU."""
    with threadpool_limits(limits=1, user_api="blas"):
        return _fit(area, customers, exports, voltages)


def _fit(
    area: Mapping[datetime, float],
    customers: Mapping[str, Mapping[datetime, float]],
    exports: Mapping[str, Mapping[datetime, float]] | None,
    voltages: Voltages | None,
) -> list[LossFit]:
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
