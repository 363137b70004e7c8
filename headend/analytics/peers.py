"""Consumption and load shape against similar customers: evidence for a theft older than the data.

A theft that started before the head-end's history has no change point.  What remains is how the
meter compares with customers like it (same area, same tariff category, same meter model) and
how its own daily profile compares with theirs.  A whole-home bypass at 50 % keeps the shape of
the profile and halves its level; a bypass of one circuit changes its shape.

Per customer ``m`` over the window (robust statistics: medians and MADs, so a few thieves among
the peers do not move the reference)::

    E_m        mean registered daily energy over its lived-in days (valid, ≥ IDLE_KWH: a home
               away for some days is not compared on those)
    s_m(h)     hourly load shape over the same kind of days: mean energy of local hour h as a
               share of the day (24 values, Σ = 1)
    peers P    lived-in (E ≥ IDLE_KWH), supplied (relay never open), non-PV customers of the
               same group, m itself left out; group = (tariff category, model), falling back to
               the tariff category, then the whole area, while it has < MIN_PEERS members
    level      ℓ = ln E;  z_level = (ℓ_m − med_P ℓ) / (1.4826 · MAD_P ℓ);  ratio = E_m / e^{med_P ℓ}
    rhythm     ŝ(h) = median over the group of s_p(h) (renormalised);  r_m = corr(s_m, ŝ)
               (ŝ and the median and MAD of d once per group, m included)
    shape      d = 1 − r;  z_shape = (d_m − med_P d) / (1.4826 · MAD_P d)

    kin        k_m = how many peers' shapes correlate with s_m at ≥ KIN_R (for a home whose
               r_m < RHYTHM: one that does not live like the median home)

Evidence, only while the area's loss is above its band (excess loss to explain):

- ``low_vs_peers``: z_level ≤ −Z_LEVEL for a home that lives like its peers (r_m ≥ RHYTHM when its
  shape is known, or k_m ≥ KIN: it lives like several other homes — night shift, a shop — while
  an empty home has no daily rhythm at all); weight grows with −z_level.
- ``shape_unlike_peers``: z_shape ≥ Z_SHAPE and r_m < RHYTHM for a home that still has a daily
  swing (24 · max s_m ≥ MIN_SWING: not a flat fridge-only holiday home) and whose shape is its
  own (k_m < KIN: a shape several homes share is a way of living — night-shift workers, a small
  shop — not a missing circuit) — part of the day's use is missing, as when one circuit is fed
  from before the meter; never for a PV customer (its import is reshaped by the sun).  Weight
  grows with z_shape.

Statistics are in floats: evidence, not billing.
"""

from __future__ import annotations

import functools
import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from headend.analytics.suspects import IDLE_KWH, PLACES, WEIGHTS, Evidence, MeterDays

MIN_PEERS = 8  # a group smaller than this falls back to a wider one
Z_LEVEL = 0.5  # below −this the level counts (weight reaches its maximum at −Z_LEVEL − 2)
RHYTHM = 0.5  # a lived-in home's shape correlates at least this much with its peers'
Z_SHAPE = 6.0  # seasonal homes' few lived-in days reach ~5 in the simulated populations
MIN_SWING = 1.6  # the busiest hour at least 1.6 × the day's mean hour: a home with a rhythm
MAD_SCALE = 1.4826  # MAD → σ of a normal distribution
MIN_MAD_LEVEL = 0.1  # floors: a very uniform group does not make small differences significant
MIN_MAD_SHAPE = 0.02
MIN_SHAPE_DAYS = 2.0  # days of interval data for a shape
# a home living like at least KIN peers (shape correlation ≥ KIN_R) has a rhythm of its own: on
# simulated night-shift homes the third-closest peer correlates at 0.75–0.95; a circuit bypass's
# (a home missing its evening circuit) at 0.2–0.6 (bench/analytics_truth.py shapes)
KIN = 3
KIN_R = 0.7


@dataclass(frozen=True)
class PeerStats:
    """One customer against its peers (for the evidence's details and for tests)."""

    meter: str
    group: str
    peers: int
    kwh_day: float
    ratio: float
    z_level: float
    rhythm: float | None
    z_shape: float | None
    swing: float = 0.0  # 24 · max s_m(h): 1 for a flat day
    kin: int = 0  # peers whose shape correlates with this one at ≥ KIN_R (if r_m < RHYTHM)


@functools.lru_cache(maxsize=16384)
def _local(t: datetime, zone: ZoneInfo, step: timedelta) -> tuple[date, int]:
    """Local day and hour of the middle of the step ending at ``t`` (every meter of an area has
    the same slots: each is converted once)."""
    middle = (t - step / 2).astimezone(zone)
    return middle.date(), middle.hour


def hourly_shape(
    slots: Mapping[datetime, float], zone: ZoneInfo, step: timedelta
) -> tuple[float, ...] | None:
    """Share of energy per local hour of day from interval energies (``slots``: energy of the
    step ending at t), idle days left out; None with less than ``MIN_SHAPE_DAYS`` of data."""
    local = {t: _local(t, zone, step) for t in slots}  # the step's middle: (day, hour)
    day_total: dict[object, float] = {}
    for t, e in slots.items():
        day_total[local[t][0]] = day_total.get(local[t][0], 0.0) + e
    idle = float(IDLE_KWH)
    used = [t for t in slots if day_total[local[t][0]] >= idle]
    if len(used) * step < timedelta(days=MIN_SHAPE_DAYS):
        return None
    per_hour = [0.0] * 24
    count = [0] * 24
    for t in used:
        h = local[t][1]
        per_hour[h] += slots[t]
        count[h] += 1
    means = [per_hour[h] / count[h] if count[h] else 0.0 for h in range(24)]
    total = math.fsum(means)
    if total <= 0 or not all(count):
        return None
    return tuple(v / total for v in means)


def _corr(a: Sequence[float], b: Sequence[float]) -> float:
    ma, mb = math.fsum(a) / len(a), math.fsum(b) / len(b)
    da, db = [x - ma for x in a], [y - mb for y in b]
    den = math.sqrt(math.fsum(x * x for x in da) * math.fsum(y * y for y in db))
    return math.fsum(x * y for x, y in zip(da, db, strict=True)) / den if den > 0 else 0.0


def _robust(values: Sequence[float], floor: float) -> tuple[float, float]:
    med = statistics.median(values)
    mad = statistics.median(abs(v - med) for v in values) * MAD_SCALE
    return med, max(mad, floor)


def _mean_day(m: MeterDays) -> float | None:
    values = [float(v) for v in m.energy.values() if v >= IDLE_KWH]
    return math.fsum(values) / len(values) if values else None


def compare(
    meters: Sequence[MeterDays],
    shapes: Mapping[str, tuple[float, ...]],
    groups: Mapping[str, tuple[str, str]] | None = None,
) -> list[PeerStats]:
    """Each lived-in customer's level and shape against its peers (see the module docstring).

    ``shapes``: hourly shapes of the meters that have interval data; ``groups``: per meter its
    (tariff category, model)."""
    groups = groups or {}
    level = {m.meter: e for m in meters if (e := _mean_day(m)) is not None}
    eligible = [
        m.meter
        for m in meters
        if not m.pv and not m.relay_open and level.get(m.meter, 0.0) >= float(IDLE_KWH)
    ]

    def members(key: tuple[str, str], depth: int) -> list[str]:
        return [p for p in eligible if groups.get(p, ("", ""))[:depth] == key[:depth]]

    references: dict[tuple[str, ...], tuple[list[float], float, float] | None] = {}

    def reference(group: tuple[str, ...], peers: list[str]) -> tuple[list[float], float, float]:
        """The group's median shape and the median and MAD of its members' distance to it,
        once per group (the meter itself included: one member moves a median by one rank)."""
        if group not in references:
            shaped = [shapes[p] for p in peers if p in shapes]
            ref = [statistics.median(s[h] for s in shaped) for h in range(24)]
            total = math.fsum(ref)
            ref = [v / total for v in ref]
            d_med, d_mad = _robust([1 - _corr(s, ref) for s in shaped], MIN_MAD_SHAPE)
            references[group] = (ref, d_med, d_mad)
        cached = references[group]
        assert cached is not None
        return cached

    out = []
    for m in meters:
        mine = level.get(m.meter)
        if mine is None or mine < float(IDLE_KWH) or m.relay_open:
            continue
        key = groups.get(m.meter, ("", ""))
        found = next(
            (
                (label, depth, peers)
                for depth, label in ((2, f"{key[0]}/{key[1]}"), (1, key[0]), (0, "area"))
                if len(peers := [p for p in members(key, depth) if p != m.meter]) >= MIN_PEERS
            ),
            None,
        )
        if found is None:
            continue
        label, depth, peers = found
        med, mad = _robust([math.log(level[p]) for p in peers], MIN_MAD_LEVEL)
        z_level = (math.log(mine) - med) / mad
        rhythm = z_shape = None
        swing, kin = 0.0, 0
        if m.meter in shapes and sum(p in shapes for p in peers) >= MIN_PEERS:
            ref, d_med, d_mad = reference(key[:depth], members(key, depth))
            rhythm = _corr(shapes[m.meter], ref)
            z_shape = (1 - rhythm - d_med) / d_mad
            swing = 24 * max(shapes[m.meter])
            if rhythm < RHYTHM:
                mine_s = shapes[m.meter]
                kin = sum(1 for p in peers if p in shapes and _corr(mine_s, shapes[p]) >= KIN_R)
        out.append(
            PeerStats(m.meter, label, len(peers), mine, mine / math.exp(med), z_level, rhythm,
                      z_shape, swing, kin)
        )  # fmt: skip
    return out


def _weight(kind: str, scale: float) -> Decimal:
    return (WEIGHTS[kind] * Decimal(str(round(min(max(scale, 0.0), 1.0), 3)))).quantize(PLACES)


def peer_evidence(
    meters: Sequence[MeterDays],
    shapes: Mapping[str, tuple[float, ...]],
    groups: Mapping[str, tuple[str, str]] | None = None,
) -> dict[str, list[Evidence]]:
    """``low_vs_peers`` and ``shape_unlike_peers`` evidence per meter (call it only while the
    area's loss is above its band)."""
    pv = {m.meter for m in meters if m.pv}
    out: dict[str, list[Evidence]] = {}
    for s in compare(meters, shapes, groups):
        details = {
            "group": s.group,
            "peers": s.peers,
            "kwh_day": f"{s.kwh_day:.2f}",
            "ratio": f"{s.ratio:.2f}",
            "z_level": f"{s.z_level:.2f}",
            "rhythm": None if s.rhythm is None else f"{s.rhythm:.2f}",
            "z_shape": None if s.z_shape is None else f"{s.z_shape:.2f}",
            "kin": s.kin,
        }
        lived_in = s.rhythm is None or s.rhythm >= RHYTHM or s.kin >= KIN
        if s.z_level <= -Z_LEVEL and lived_in and s.meter not in pv:
            how = (
                ""
                if s.rhythm is None
                else f" with a lived-in daily rhythm (r = {s.rhythm:.2f})"
                if s.rhythm >= RHYTHM
                else f" living like {s.kin} other homes (r = {s.rhythm:.2f} with the median)"
            )
            out.setdefault(s.meter, []).append(
                Evidence(
                    "low_vs_peers",
                    _weight("low_vs_peers", (-s.z_level - Z_LEVEL) / 2),
                    None,
                    f"registers {s.ratio:.0%} of the median of {s.peers} similar homes "
                    f"({s.group}; z = {s.z_level:.1f}){how}",
                    details,
                )
            )
        if (
            s.z_shape is not None
            and s.rhythm is not None
            and s.z_shape >= Z_SHAPE
            and s.rhythm < RHYTHM
            and s.swing >= MIN_SWING
            and s.kin < KIN
            and s.meter not in pv
        ):
            out.setdefault(s.meter, []).append(
                Evidence(
                    "shape_unlike_peers",
                    _weight("shape_unlike_peers", s.z_shape / (2 * Z_SHAPE)),
                    None,
                    f"its daily load shape is unlike {s.peers} similar homes' (r = {s.rhythm:.2f}, "
                    f"z = {s.z_shape:.1f}): part of the day's use is missing?",
                    details,
                )
            )
    return out
