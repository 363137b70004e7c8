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
  this customer's own registered load once the technical loss is accounted for (the fit is in
  ``headend.analytics.losscurve``; here, which fits count).

Statistics are in floats: evidence, not billing.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal

from headend.analytics.losscurve import LossFit, Voltages, fit_loss_curve
from headend.analytics.suspects import LOST_VOLTAGE, PLACES, WEIGHTS, Evidence

MIN_LOADED_A = 1.0  # a single-phase imbalance is judged only above this current
IMBALANCE = 0.2  # |In − IL| above this share of the larger (plus 0.3 A) is imbalanced
MIN_SHARE = 0.2  # of loaded readings, for the imbalance to count
MIN_UNREGISTERED = 0.12  # a fitted share below this is within the technical-loss model's error
# a PV customer's import is its use less its own generation: its curve is reshaped by the sun,
# as is the lines' loss, so its fit is less certain and must show a larger share
MIN_UNREGISTERED_PV = 0.25
# with the meters' voltages the technical loss is known customer by customer (an honest home at
# the end of a long branch no longer looks like a thief), so a smaller share is significant
MIN_UNREGISTERED_V = 0.14
MIN_T = 3.0  # the fitted coefficient over its standard error …
PRESENT_SHARE = 0.5  # interval data on at least this share of the area meter's intervals
MIN_T_V = 3.5  # … with voltages (chosen on seeds 3, 5, 8, 9, 11–14; bench/analytics_fit.py)


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


def loss_evidence(fit: LossFit, at: datetime) -> Evidence:
    """``loss_follows_load`` evidence of one fitted customer."""
    share = fit.coefficient / (1 + fit.coefficient)
    scale = min(1.0, 0.5 + fit.corr) * (0.5 + min(share, 0.5))
    return _ev(
        "loss_follows_load",
        scale,
        at,
        f"the area's loss follows this meter's load (r = {fit.corr:.2f}, t = {fit.t:.1f}): "
        f"about {fit.stolen_kwh_day:.1f} kWh/day unregistered ({share:.0%} of its use)",
        corr=f"{fit.corr:.3f}",
        t=f"{fit.t:.1f}",
        unregistered_share=f"{share:.2f}",
        kwh_day=f"{fit.stolen_kwh_day:.2f}",
    )


def interval_evidence(
    intervals: Mapping[str, MeterIntervals],
    exports: Mapping[str, Mapping[datetime, float]],
    customers: Sequence[str],
    totals: Sequence[str],
    step: timedelta,
    at: datetime,
    pv: frozenset[str] = frozenset(),
    *,
    neutral: Mapping[str, NeutralCounts] | None = None,
    loads: Mapping[str, Mapping[datetime, float]] | None = None,
    area_load: Mapping[datetime, float] | None = None,
    export_loads: Mapping[str, Mapping[datetime, float]] | None = None,
    voltages: Voltages | None = None,
) -> dict[str, list[Evidence]]:
    """Evidence from interval readings per customer meter (headend.analytics.intervals).

    ``neutral``: live/neutral counts per meter (default: from ``intervals``); ``loads``, the
    area meter's ``area_load`` and ``export_loads``: ``slot_energy`` of the customers' and the
    area meter's import and of ``exports`` if already computed; ``voltages``: every slot's
    voltage of the area meter and the customers, for the loss-curve fit's line drops (the fit
    runs without them if None or if the area meter's voltage covers less than
    ``PRESENT_SHARE`` of its load's slots)."""
    if loads is None:
        loads = {m: slot_energy(intervals[m].energy, step) for m in customers if m in intervals}
    if export_loads is None:
        export_loads = {m: slot_energy(r, step) for m, r in exports.items()}
    if area_load is None and len(totals) == 1 and totals[0] in intervals:
        area_load = slot_energy(intervals[totals[0]].energy, step)
    out: dict[str, list[Evidence]] = {}
    for m in customers:
        iv = intervals.get(m)
        if neutral is not None:
            counts = neutral.get(m)
        else:
            counts = neutral_counts(iv) if iv is not None else None
        found = [neutral_evidence(counts) if counts is not None else None]
        if iv is not None:
            used = loads.get(m, {})
            found += [energy_while_open(iv, step, used), lost_voltage(iv, step, used)]
        for e in found:
            if e is not None:
                out.setdefault(m, []).append(e)
    if len(totals) == 1 and area_load is not None:
        area = dict(area_load)
        if totals[0] in export_loads:  # energy sent back upstream is not supply
            back_up = export_loads[totals[0]]
            area = {t: v - back_up.get(t, 0.0) for t, v in area.items()}
        # a meter silent for most of the window is left out of the fit (its use then shows as
        # loss, as it does in the daily balance) rather than voiding every interval
        present = {m: v for m, v in loads.items() if len(v) >= PRESENT_SHARE * len(area)}
        if area and len(present) >= PRESENT_SHARE * len(customers):
            back = {m: export_loads[m] for m in present if m in export_loads}
            # the line drops only if the area meter's voltage covers its load, as for the loads
            if voltages is not None and len(voltages.area.keys() & area.keys()) < (
                PRESENT_SHARE * len(area)
            ):
                voltages = None
            for fit in loss_followers(area, present, back, pv, voltages):
                out.setdefault(fit.meter, []).append(loss_evidence(fit, at))
    return out
