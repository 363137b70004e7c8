"""Seeded load profiles and time-of-use tables.

A load is piecewise constant over 15-minute slots of the meter's local day::

    P(day, slot) = mean_kw × shape[kind][hour(slot)] × jitter[pattern][slot] × day_factor(seed, day)

``shape`` is a normalised daily curve per kind (residential: morning and evening peaks;
commercial: office hours, weekends at a third; flat), ``jitter`` one of 64 fixed seeded patterns
(so 10,000 meters share 64 precomputed tables) and ``day_factor`` a per-meter, per-day draw from a
counter-based hash of (seed, day).  Everything is a pure function of the seed: a run, its
ground truth and a test agree exactly, and the integral over a day is O(1) (per-tariff sums of
the day's slots are precomputed per (kind, pattern, TOU table)).

TOU table: tariff 1–4 = sharp / peak / flat / valley, switching at quarter-hour boundaries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from functools import lru_cache
from typing import Literal

from simulators.errors import SimConfigError

SLOT_SECONDS = 900
SLOTS_PER_DAY = 96
SLOT_HOURS = SLOT_SECONDS / 3600
PATTERNS = 64

ProfileKind = Literal["residential", "commercial", "flat"]

# Relative hourly demand (any scale; normalised to a daily mean of 1 below).
_HOURLY: dict[str, tuple[float, ...]] = {
    "residential": (
        0.45, 0.40, 0.38, 0.37, 0.38, 0.45, 0.75, 1.10, 1.05, 0.80, 0.70, 0.75,
        0.90, 0.80, 0.70, 0.70, 0.85, 1.20, 1.80, 2.10, 2.00, 1.70, 1.20, 0.70,
    ),
    "commercial": (
        0.20, 0.20, 0.20, 0.20, 0.20, 0.25, 0.40, 0.80, 1.50, 1.90, 2.00, 2.00,
        1.70, 1.90, 2.00, 2.00, 1.90, 1.60, 1.00, 0.60, 0.40, 0.30, 0.25, 0.20,
    ),
    "flat": (1.0,) * 24,
}  # fmt: skip
_WEEKEND = {"residential": 1.1, "commercial": 0.35, "flat": 1.0}

_MASK = (1 << 64) - 1


def mix(*values: int) -> int:
    """A counter-based 64-bit hash (splitmix64 over the values): same input, same draw."""
    x = 0x9E3779B97F4A7C15
    for v in values:
        x = (x ^ (v & _MASK)) & _MASK
        x = (x + 0x9E3779B97F4A7C15) & _MASK
        x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
        x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
        x ^= x >> 31
    return x


def uniform(*values: int) -> float:
    """A uniform draw in [0, 1) from ``mix``."""
    return (mix(*values) >> 11) / float(1 << 53)


@dataclass(frozen=True)
class TouTable:
    """Time-of-use switch points ``((minute_of_day, tariff), …)``; the first starts at 00:00."""

    switches: tuple[tuple[int, int], ...] = (
        (0, 4),  # 00:00 valley
        (8 * 60, 3),  # 08:00 flat
        (10 * 60, 2),  # 10:00 peak
        (12 * 60, 3),  # 12:00 flat
        (17 * 60, 2),  # 17:00 peak
        (19 * 60, 1),  # 19:00 sharp
        (21 * 60, 2),  # 21:00 peak
        (22 * 60, 3),  # 22:00 flat
        (23 * 60, 4),  # 23:00 valley
    )
    slot_tariffs: tuple[int, ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.switches or self.switches[0][0] != 0:
            raise SimConfigError("tou: the first period must start at 00:00")
        minutes = [m for m, _ in self.switches]
        if minutes != sorted(set(minutes)) or minutes[-1] >= 1440:
            raise SimConfigError("tou: switch times must increase within one day")
        for minute, tariff in self.switches:
            if minute % 15:
                raise SimConfigError(
                    f"tou: {minute // 60:02d}:{minute % 60:02d} is not on a 15-min boundary"
                )
            if tariff not in (1, 2, 3, 4):
                raise SimConfigError(f"tou: tariff {tariff} is not 1–4 (sharp/peak/flat/valley)")
        slots: list[int] = []
        for slot in range(SLOTS_PER_DAY):
            minute = slot * 15
            slots.append([t for m, t in self.switches if m <= minute][-1])
        object.__setattr__(self, "slot_tariffs", tuple(slots))

    @classmethod
    def parse(cls, spec: dict[str, int]) -> TouTable:
        """From ``{"HH:MM": tariff, …}`` (a TOML table)."""
        try:
            pairs = []
            for hhmm, tariff in spec.items():
                hh, mm = hhmm.split(":")
                pairs.append((int(hh) * 60 + int(mm), int(tariff)))
        except (ValueError, TypeError) as exc:
            raise SimConfigError(f"tou: expected {{'HH:MM' = tariff}}, got {spec!r}") from exc
        return cls(tuple(sorted(pairs)))

    def tariff_at_slot(self, slot: int) -> int:
        """The tariff (1–4) of a slot of the local day."""
        return self.slot_tariffs[min(slot, SLOTS_PER_DAY - 1)]


DEFAULT_TOU = TouTable()


@dataclass(frozen=True)
class DayShape:
    """Per-slot relative power (mean 1 over a day) and per-tariff prefix sums of it."""

    slots: tuple[float, ...]
    # prefix[k][t] = Σ slots[0:k] whose tariff is t+1
    prefix: tuple[tuple[float, float, float, float], ...]
    tariffs: tuple[int, ...]


@lru_cache(maxsize=1024)
def day_shape(kind: str, noise: float, pattern: int, tou: TouTable) -> DayShape:
    """The shared shape table of one (kind, noise, pattern, TOU) combination."""
    hourly = _HOURLY[kind]
    mean = sum(hourly) / 24
    slots = []
    for slot in range(SLOTS_PER_DAY):
        jitter = 1.0 + noise * (2.0 * uniform(0x5107, pattern, slot) - 1.0)
        slots.append(hourly[slot // 4] / mean * jitter)
    scale = SLOTS_PER_DAY / sum(slots)
    slots = [s * scale for s in slots]
    prefix = [(0.0, 0.0, 0.0, 0.0)]
    for slot, value in enumerate(slots):
        acc = list(prefix[-1])
        acc[tou.tariff_at_slot(slot) - 1] += value
        prefix.append((acc[0], acc[1], acc[2], acc[3]))
    return DayShape(tuple(slots), tuple(prefix), tou.slot_tariffs)


@dataclass(frozen=True)
class LoadProfile:
    """A customer's load: kind, mean power and seed (reproducible noise)."""

    kind: ProfileKind = "residential"
    mean_kw: float = 0.8
    seed: int = 0
    noise: float = 0.2
    power_factor: float = 0.95
    tou: TouTable = DEFAULT_TOU

    def __post_init__(self) -> None:
        if self.kind not in _HOURLY:
            raise SimConfigError(
                f"profile: unknown kind {self.kind!r} (residential|commercial|flat)"
            )
        if self.mean_kw < 0 or not 0 <= self.noise < 1:
            raise SimConfigError("profile: mean_kw must be ≥ 0 and noise in [0, 1)")
        if not 0 < self.power_factor <= 1:
            raise SimConfigError("profile: power_factor must be in (0, 1]")

    @property
    def shape(self) -> DayShape:
        """The shared shape table for this profile."""
        noise = 0.0 if self.kind == "flat" else self.noise
        return day_shape(self.kind, noise, self.seed % PATTERNS, self.tou)

    def day_factor(self, day: date) -> float:
        """The seeded factor scaling one whole local day."""
        base = _WEEKEND[self.kind] if day.weekday() >= 5 else 1.0
        if self.kind == "flat":
            return base
        return base * (1.0 + self.noise * (2.0 * uniform(self.seed, day.toordinal()) - 1.0))

    def day_kwh(self, day: date) -> tuple[float, float, float, float]:
        """Energy per tariff over a whole 96-slot local day."""
        k = self.mean_kw * self.day_factor(day) * SLOT_HOURS
        full = self.shape.prefix[SLOTS_PER_DAY]
        return (full[0] * k, full[1] * k, full[2] * k, full[3] * k)

    def partial_kwh(self, day: date, seconds: float) -> tuple[float, float, float, float]:
        """Energy per tariff from local midnight of ``day`` to ``seconds`` later."""
        shape = self.shape
        k = self.mean_kw * self.day_factor(day) * SLOT_HOURS
        slot = int(seconds // SLOT_SECONDS)
        if slot >= SLOTS_PER_DAY:  # a 25-hour DST day: the extra hour repeats the last slot
            extra = (seconds - SLOTS_PER_DAY * SLOT_SECONDS) / SLOT_SECONDS
            full = list(shape.prefix[SLOTS_PER_DAY])
            full[shape.tariffs[-1] - 1] += shape.slots[-1] * extra
            return (full[0] * k, full[1] * k, full[2] * k, full[3] * k)
        acc = list(shape.prefix[slot])
        frac = (seconds - slot * SLOT_SECONDS) / SLOT_SECONDS
        acc[shape.tariffs[slot] - 1] += shape.slots[slot] * frac
        return (acc[0] * k, acc[1] * k, acc[2] * k, acc[3] * k)

    def power_kw(self, day: date, seconds: float) -> float:
        """Instantaneous power at ``seconds`` after local midnight of ``day``."""
        slot = min(int(seconds // SLOT_SECONDS), SLOTS_PER_DAY - 1)
        return self.mean_kw * self.day_factor(day) * self.shape.slots[slot]

    def tariff_at(self, seconds: float) -> int:
        """The tariff in force ``seconds`` after local midnight."""
        return self.tou.tariff_at_slot(int(seconds // SLOT_SECONDS))
