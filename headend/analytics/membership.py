"""Area membership check (户变关系) from interval voltages.

Meters behind one transformer see its voltage: the transformer's tap, its load-dependent drop and
the slow moves of its medium-voltage supply, plus their own line drops and measurement noise.  So
the step-to-step *changes* of a meter's voltage correlate best with the other meters of its own
area.  The check (after Blakely & Reno's voltage-correlation phase identification, Sandia):

1. per meter, the change of voltage from one interval to the next (only adjacent intervals);
2. minus the fleet's median change at that interval (what every area shares: the MV level);
3. each area's reference is the median change of the meters the archive maps to it (a median,
   so a few mis-mapped meters do not move it; a meter is left out of its own area's reference);
4. a meter's correlation with every area's reference; it is *flagged* when another area's
   correlation exceeds its own area's by ``margin`` (the evidence lists every correlation, the
   intervals and days used).

Voltages are floats (V); the result is evidence for an operator, who confirms a move in the
archive (effective-dated), never an automatic change.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from statistics import median
from typing import Any

MARGIN = 0.05
MIN_INTERVALS = 24
# Evidence, not noise.  Archive areas on one transformer bus (two areas of one transformer, a
# closed bus-tie in a distribution room) move alike: taking out the fleet's common move leaves
# their meters only their own service drops, correlations near 0, and a margin of 0.05 is crossed
# by chance (the old rule flagged 17 % of such meters at 7 days of 15-minute voltages, 42 % at 3
# days of hourly ones).  So a move needs (a) an area reference that its own members follow
# (*coherence*: the median of the members' correlations with their own area ≥ 0.3) for the best
# area, and for the archived one unless it has none, and (b) a best correlation significantly
# above 0 (≥ Z_BEST / √n over n intervals).
COHERENT = 0.3
SUPPLIED_V = 154.0  # below: no supply or a lost phase (失压, 0.7 × 220 V), not a voltage level
MAX_STEP_V = 20.0  # a larger step between two intervals is an outage edge or a fault
Z_BEST = 1.5
# a meter whose voltage barely moves (behind a voltage regulator, at the transformer's terminals
# with 0.1 V resolution) says nothing about its area: after the fleet's common move is taken
# out it would only echo that move and correlate with whichever area dominates it
FLAT_V = 0.05  # standard deviation of the interval-to-interval change, volts


@dataclass(frozen=True)
class Membership:
    """One meter's correlations with every area's voltage changes."""

    meter: str
    area: str  # where the archive has it
    best: str | None  # the area it correlates with best
    correlations: Mapping[str, float]
    intervals: int
    days: float
    coherence: Mapping[str, float] = field(default_factory=dict)  # per area, see COHERENT

    @property
    def own(self) -> float | None:
        return self.correlations.get(self.area)

    @property
    def flagged(self) -> bool:
        return self._flag(MARGIN)

    def _flag(self, margin: float) -> bool:
        own = self.own
        if self.best is None or self.best == self.area:
            return False
        best = self.correlations[self.best]
        if best < Z_BEST / math.sqrt(self.intervals):  # follows no area clearly
            return False
        if self.coherence.get(self.best, -1.0) < COHERENT:  # its members do not follow it
            return False
        if self.coherence.get(self.area, COHERENT) < COHERENT:  # cannot tell (one bus)
            return False
        return own is None or best - own > margin

    def as_dict(self) -> dict[str, Any]:
        return {
            "meter": self.meter,
            "area": self.area,
            "best_area": self.best,
            "own_correlation": None if self.own is None else round(self.own, 4),
            "best_correlation": None
            if self.best is None
            else round(self.correlations[self.best], 4),
            "correlations": {a: round(c, 4) for a, c in sorted(self.correlations.items())},
            "intervals": self.intervals,
            "days": round(self.days, 2),
            "area_coherence": {a: round(c, 4) for a, c in sorted(self.coherence.items())},
            "flagged": self.flagged,
        }


def _changes(series: Mapping[datetime, float], step: timedelta) -> dict[datetime, float]:
    """Changes between adjacent intervals, outages and their edges left out: a reading below
    ``SUPPLIED_V`` (an outage, a lost phase) and a step above ``MAX_STEP_V`` are events, not the
    transformer's movement, and one shared outage would swamp a week of it."""
    ok = {t: v for t, v in series.items() if v >= SUPPLIED_V}
    return {
        t: v - p
        for t, v in ok.items()
        if (p := ok.get(t - step)) is not None and abs(v - p) <= MAX_STEP_V
    }


def _corr(a: Mapping[datetime, float], b: Mapping[datetime, float]) -> tuple[float | None, int]:
    keys = [t for t in a if t in b]
    n = len(keys)
    if n < MIN_INTERVALS:
        return None, n
    xs = [a[t] for t in keys]
    ys = [b[t] for t in keys]
    mx, my = math.fsum(xs) / n, math.fsum(ys) / n
    sxy = math.fsum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
    sxx = math.fsum((x - mx) ** 2 for x in xs)
    syy = math.fsum((y - my) ** 2 for y in ys)
    if sxx <= 0 or syy <= 0:
        return None, n
    return sxy / math.sqrt(sxx * syy), n


def _median_by_time(series: Iterable[Mapping[datetime, float]]) -> dict[datetime, float]:
    values: dict[datetime, list[float]] = {}
    for s in series:
        for t, v in s.items():
            values.setdefault(t, []).append(v)
    return {t: median(vs) for t, vs in values.items() if len(vs) >= 3}


def check(
    voltages: Mapping[str, Mapping[datetime, float]],
    areas: Mapping[str, str],
    step: timedelta,
) -> list[Membership]:
    """Every meter of ``areas`` (meter → archived area) with voltages, scored (sorted by meter)."""
    every = {m: _changes(v, step) for m, v in voltages.items() if m in areas}
    changes = {m: c for m, c in every.items() if not _flat(c)}
    common = _median_by_time(changes.values())
    local = {m: {t: d - common[t] for t, d in c.items() if t in common} for m, c in changes.items()}
    members: dict[str, list[str]] = {}
    for m in local:
        members.setdefault(areas[m], []).append(m)
    ordered: dict[str, dict[datetime, list[float]]] = {}
    for a, ms in members.items():
        by_t: dict[datetime, list[float]] = {}
        for m in ms:
            for t, v in local[m].items():
                by_t.setdefault(t, []).append(v)
        ordered[a] = {t: sorted(vs) for t, vs in by_t.items() if len(vs) >= 3}
    refs = {a: {t: median(vs) for t, vs in by_t.items()} for a, by_t in ordered.items()}
    out = [Membership(m, areas[m], None, {}, 0, 0.0) for m in every if m not in changes]
    for m in sorted(local):
        own = areas[m]
        corrs: dict[str, float] = {}
        used = 0
        for a, ref in refs.items():
            if a == own:  # leave the meter out of its own area's reference
                ref = _without(ordered[a], local[m])
            c, n = _corr(local[m], ref)
            if c is not None:
                corrs[a] = c
                used = max(used, n)
        best = max(corrs, key=lambda a: corrs[a]) if corrs else None
        out.append(Membership(m, own, best, corrs, used, used * step.total_seconds() / 86400))
    own_corrs: dict[str, list[float]] = {}
    for r in out:
        if r.own is not None:
            own_corrs.setdefault(r.area, []).append(r.own)
    coherence = {a: median(cs) for a, cs in own_corrs.items()}
    return sorted((replace(r, coherence=coherence) for r in out), key=lambda x: x.meter)


def _flat(changes: Mapping[datetime, float]) -> bool:
    n = len(changes)
    if n < MIN_INTERVALS:
        return False  # too few to judge; scored (and left unscored) as any other
    mean = math.fsum(changes.values()) / n
    return math.fsum((d - mean) ** 2 for d in changes.values()) / n < FLAT_V**2


def _without(
    ordered: Mapping[datetime, list[float]], mine: Mapping[datetime, float]
) -> dict[datetime, float]:
    """Medians of the sorted values per time with ``mine`` left out (where it is in)."""
    out = {}
    for t, vs in ordered.items():
        x = mine.get(t)
        if x is None or len(vs) < 3:  # never the meter itself in its own reference
            out[t] = median(vs)
            continue
        i = bisect_left(vs, x)
        n = len(vs) - 1
        k = n // 2

        def rest(j: int, i: int = i, vs: list[float] = vs) -> float:
            return vs[j] if j < i else vs[j + 1]

        out[t] = rest(k) if n % 2 else (rest(k - 1) + rest(k)) / 2
    return out
