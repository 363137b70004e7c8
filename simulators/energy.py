"""The lazy energy integral and the timeline of state changes that gates it.

``LoadIntegral.cumulative(ts)`` is ∫ load dt from local midnight of the origin day to ``ts``,
per tariff, computed from cached per-day prefix sums plus the partial day: O(1) after the first
call, O(days) once.  A ``Timeline`` holds dated changes of a meter's state (relay, supply,
registering factor, reversal, installation); any integral of the load times a function of that
state is then a sum over its segments::

    ∫_a^b load(t) · m(state(t)) dt = Σ_segments m(state_k) · (C(min(b, e_k)) − C(max(a, s_k)))

Changes can be dated in the future (scheduled scenarios) or now (commands); the past never
changes, so a reading taken at ``t`` is the same whenever it is computed.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any, Protocol
from zoneinfo import ZoneInfo

from simulators.profiles import LoadProfile

Vec4 = tuple[float, float, float, float]
ZERO4: Vec4 = (0.0, 0.0, 0.0, 0.0)
NEVER = float("inf")


def add4(a: Vec4, b: Vec4) -> Vec4:
    """Element-wise sum."""
    return (a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3])


def sub4(a: Vec4, b: Vec4) -> Vec4:
    """Element-wise difference."""
    return (a[0] - b[0], a[1] - b[1], a[2] - b[2], a[3] - b[3])


def scale4(a: Vec4, k: float) -> Vec4:
    """Scalar multiple."""
    return (a[0] * k, a[1] * k, a[2] * k, a[3] * k)


class EnergySource(Protocol):
    """What flows through a meter: a cumulative energy per tariff and a power."""

    def cumulative(self, ts: float) -> Vec4:
        """Energy per tariff (kWh) from a fixed origin to ``ts``."""
        ...

    def power_kw(self, ts: float) -> float:
        """Instantaneous power at ``ts``."""
        ...


class LoadIntegral:
    """∫ load dt per tariff for one profile in one zone, cached per local day."""

    __slots__ = ("_midnights", "_origin", "_prefix", "profile", "zone")

    def __init__(self, profile: LoadProfile, zone: ZoneInfo, origin: date) -> None:
        self.profile = profile
        self.zone = zone
        self._origin = origin
        self._prefix: list[Vec4] = [ZERO4]  # cumulative at local midnight of origin + i days
        self._midnights: dict[date, float] = {}

    def midnight(self, day: date) -> float:
        """The epoch seconds of local midnight starting ``day``."""
        ts = self._midnights.get(day)
        if ts is None:
            ts = datetime.combine(day, time(), self.zone).timestamp()
            if len(self._midnights) > 512:
                self._midnights.clear()
            self._midnights[day] = ts
        return ts

    def local_day(self, ts: float) -> tuple[date, float]:
        """The local day containing ``ts`` and the seconds since its midnight."""
        day = datetime.fromtimestamp(ts, self.zone).date()
        return day, ts - self.midnight(day)

    def cumulative(self, ts: float) -> Vec4:
        """Energy per tariff (kWh) from the origin day's local midnight to ``ts``."""
        day, seconds = self.local_day(ts)
        index = (day - self._origin).days
        if index < 0:
            return ZERO4
        prefix = self._prefix
        while len(prefix) <= index:
            prior = self._origin + timedelta(days=len(prefix) - 1)
            prefix.append(add4(prefix[-1], self.profile.day_kwh(prior)))
        return add4(prefix[index], self.profile.partial_kwh(day, seconds))

    def power_kw(self, ts: float) -> float:
        """The load's instantaneous power at ``ts``."""
        day, seconds = self.local_day(ts)
        return self.profile.power_kw(day, seconds)

    def tariff_at(self, ts: float) -> int:
        """The tariff in force at ``ts``."""
        return self.profile.tariff_at(self.local_day(ts)[1])


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch ``[start, end)`` of constant state."""

    start: float
    end: float
    state: dict[str, Any]


class Timeline:
    """Dated changes of named state fields; ``segments()`` folds them in time order."""

    __slots__ = ("_changes", "_initial", "_segments", "_seq")

    def __init__(self, **initial: Any) -> None:
        self._initial = dict(initial)
        self._changes: list[tuple[float, int, str, Any]] = []
        self._segments: list[Segment] | None = None
        self._seq = 0

    def set(self, ts: float, **fields: Any) -> None:
        """Change ``fields`` from ``ts`` on (changes at equal times apply in call order)."""
        for name, value in fields.items():
            if name not in self._initial:
                raise KeyError(f"unknown timeline field {name!r}")
            self._seq += 1
            bisect.insort(self._changes, (ts, self._seq, name, value))
        self._segments = None

    def cancel(self, when: float, name: str) -> None:
        """Withdraw the changes of ``name`` dated ``when`` (a pending command cancelled)."""
        self._changes = [c for c in self._changes if not (c[2] == name and c[0] == when)]
        self._segments = None

    def at(self, ts: float) -> dict[str, Any]:
        """The state in force at ``ts``."""
        segments = self.segments()
        starts = [s.start for s in segments]
        return segments[max(0, bisect.bisect_right(starts, ts) - 1)].state

    def changes(self, name: str) -> list[tuple[float, Any]]:
        """The dated values a field took, in time order."""
        return [(ts, value) for ts, _, field_name, value in self._changes if field_name == name]

    def segments(self) -> list[Segment]:
        """Stretches of constant state from −∞ to +∞."""
        if self._segments is None:
            out: list[Segment] = []
            state = dict(self._initial)
            start = -NEVER
            for ts, _, name, value in self._changes:
                if ts > start:
                    out.append(Segment(start, ts, dict(state)))
                    start = ts
                state[name] = value
            out.append(Segment(start, NEVER, dict(state)))
            self._segments = out
        return self._segments

    def integrate(
        self,
        cumulative: Callable[[float], Vec4],
        weight: Callable[[dict[str, Any]], float],
        a: float,
        b: float,
    ) -> Vec4:
        """∫_a^b load · weight(state) dt per tariff."""
        total = ZERO4
        if b <= a:
            return total
        for seg in self.segments():
            lo, hi = max(a, seg.start), min(b, seg.end)
            if hi <= lo:
                continue
            w = weight(seg.state)
            if w:
                total = add4(total, scale4(sub4(cumulative(hi), cumulative(lo)), w))
        return total
