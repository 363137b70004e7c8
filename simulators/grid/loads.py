"""Household load and rooftop PV per step (kW), seeded: each customer has its own habits.

A household is a base load, a daily shape with a morning and an evening peak, and appliances
switched on at random for a few steps — so at a 15-minute step every home's curve is its own (the
idiosyncratic part is what the analytics use to tell customers apart).  A vacant home draws a few
watts; a seasonal one is vacant on some days; PV follows the sun under an area-wide cloud cover.
"""

from __future__ import annotations

import math
import random


def _hour(i: int, step_minutes: int) -> float:
    return (i * step_minutes / 60.0) % 24.0


def _shape(hour: float) -> float:
    morning = math.exp(-(((hour - 7.5) / 1.2) ** 2))
    evening = math.exp(-(((hour - 19.5) / 1.8) ** 2))
    night = 0.35 if hour < 6 or hour >= 23 else 0.55
    return night + 0.8 * morning + 1.4 * evening


def household(rng: random.Random, steps: int, step_minutes: int) -> list[float]:
    """A lived-in home's load (kW) at each step."""
    return household_parts(rng, steps, step_minutes)[0]


def _evening(hour: float) -> bool:
    return 17.0 <= hour < 23.0


def household_parts(
    rng: random.Random, steps: int, step_minutes: int
) -> tuple[list[float], list[float]]:
    """A lived-in home's load (kW) at each step, and the part of it on the evening circuit (the
    kitchen and heating circuit: the evening peak and the appliances switched on 17:00–23:00)."""
    size = math.exp(rng.gauss(0.0, 0.45))
    base = rng.uniform(0.06, 0.2) * size
    out, circuit = [], []
    busy = 0
    busy_kw = 0.0
    per_hour = 60 / step_minutes
    for i in range(steps):
        hour = _hour(i, step_minutes)
        if busy == 0 and rng.random() < 0.10 * _shape(hour) / per_hour * 4:
            busy = rng.randint(1, 4)
            busy_kw = rng.uniform(0.6, 2.2) * size
        u = rng.uniform(0.7, 1.3)
        load = base + 0.35 * size * _shape(hour) * u
        peak = 0.35 * size * 1.4 * math.exp(-(((hour - 19.5) / 1.8) ** 2)) * u
        evening = peak if _evening(hour) else 0.0
        if busy:
            load += busy_kw
            evening += busy_kw if _evening(hour) else 0.0
            busy -= 1
        out.append(load)
        circuit.append(evening)
    return out, circuit


def vacant(rng: random.Random, steps: int) -> list[float]:
    """An empty home: a few watts (standby), no activity."""
    level = rng.uniform(0.0, 0.02)
    return [level * rng.uniform(0.8, 1.2) for _ in range(steps)]


def seasonal(rng: random.Random, steps: int, step_minutes: int, away: set[int]) -> list[float]:
    """A home lived in except on the days in ``away`` (day indexes)."""
    lived = household(rng, steps, step_minutes)
    empty = vacant(rng, steps)
    per_day = 1440 // step_minutes
    return [empty[i] if i // per_day in away else lived[i] for i in range(steps)]


def clouds(rng: random.Random, days: int) -> list[float]:
    """An area's clear-sky share per day (0.25 overcast … 1 clear)."""
    return [rng.uniform(0.25, 1.0) for _ in range(days)]


def pv(
    rng: random.Random, kwp: float, steps: int, step_minutes: int, cover: list[float]
) -> list[float]:
    """Rooftop PV output (kW) at each step under the area's cloud cover."""
    per_day = 1440 // step_minutes
    out = []
    for i in range(steps):
        hour = _hour(i, step_minutes) + step_minutes / 120.0
        sun = math.sin(math.pi * (hour - 6.0) / 12.0) if 6.0 < hour < 18.0 else 0.0
        out.append(kwp * 0.8 * sun * cover[i // per_day] * rng.uniform(0.85, 1.0))
    return out
