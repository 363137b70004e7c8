"""Household archetypes: whose day a lived-in home's load follows (``GridConfig.households``).

Without them every home follows one daily template (``loads._shape``), so a home's hourly shape
says little about it except when something is wrong.  In a field a night-shift worker, a retiree
at home all day, a small shop on a residential meter and an electrically heated home each have a
shape of their own (see docs/simulators.md for the sources):

- ``commuter``: out by day on workdays (morning and evening peaks, the evening larger); at home on
  Saturday and Sunday (a later morning, a lunch peak, a daytime plateau).
- ``at_home``: a retiree or a carer: up early, a daytime plateau, a lunch and an early evening
  peak, early to bed.
- ``night_shift``: awake and active at night (22:00–06:00), asleep by day, a meal before leaving.
- ``shop``: a small shop on a residential meter: lights, display fridges and a till, flat from
  about 9:00 to 21:00 every day, little at night.
- ``electric_heating``: a commuter home heated (or cooled) by split air conditioners and electric
  heaters: a large component proportional to the day's heating (cooling) degrees of a temperature
  shared by the whole area, so it moves together across homes from day to day.

Every home keeps its own size (lognormal), base load, timing (its peaks shifted by its own lag,
and by a little more or less each day) and appliances switched on at random for a few steps.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from datetime import date, timedelta

ARCHETYPES = ("commuter", "at_home", "night_shift", "shop", "electric_heating")
# The share of each archetype among lived-in homes (docs/simulators.md says why these numbers).
DEFAULT_HOUSEHOLDS: Mapping[str, float] = {
    "commuter": 0.55,
    "at_home": 0.22,
    "night_shift": 0.05,
    "shop": 0.05,
    "electric_heating": 0.13,
}
# Approximate monthly mean temperatures (°C) of a Yangtze River Delta city (Shanghai-like).
MONTHLY_MEAN_C = (4.8, 6.6, 10.2, 15.6, 20.9, 24.7, 28.9, 28.6, 24.9, 19.7, 13.9, 7.4)
HEAT_BELOW_C, COOL_ABOVE_C = 18.0, 24.0  # degree-day bases (comfortable 18–24 °C)
DEGREES_FULL = 10.0  # degrees of heating or cooling at which a home runs its rated heating kW


def _bump(hour: float, mu: float, sd: float) -> float:
    d = (hour - mu + 12.0) % 24.0 - 12.0  # circular: a peak at 1:00 reaches back to 23:00
    return math.exp(-((d / sd) ** 2))


def _ramp(hour: float, on: float, off: float) -> float:
    """About 1 between ``on`` and ``off`` (hours), about 0 outside, quarter-hour edges."""
    up = 1.0 / (1.0 + math.exp(-(hour - on) / 0.12))
    down = 1.0 / (1.0 + math.exp((hour - off) / 0.12))
    return up * down


def activity(archetype: str, hour: float, weekend: bool) -> tuple[float, float]:
    """Relative activity at a local hour (about 1 on average over a day) and its evening part
    (the kitchen and heating circuit's peak: what a circuit bypass takes)."""
    if archetype in ("commuter", "electric_heating") and not weekend:
        night = 0.35 if hour < 6 or hour >= 23 else 0.55  # loads._shape, the single template
        evening = 1.4 * _bump(hour, 19.5, 1.8)
        return night + 0.8 * _bump(hour, 7.5, 1.2) + evening, evening
    if archetype in ("commuter", "electric_heating"):
        night = 0.35 if hour < 7 or hour >= 23.5 else 0.75
        evening = 1.3 * _bump(hour, 19.0, 2.0)
        return night + 0.6 * _bump(hour, 9.5, 1.5) + 0.6 * _bump(hour, 12.0, 1.0) + evening, evening
    if archetype == "at_home":
        night = 0.3 if hour < 6 or hour >= 22 else 0.5
        plateau = 0.55 * _ramp(hour, 8.5, 17.5)
        evening = 1.0 * _bump(hour, 18.0, 1.5)
        lunch = 0.8 * _bump(hour, 11.5, 1.0)
        return night + plateau + 0.6 * _bump(hour, 6.8, 1.0) + lunch + evening, evening
    if archetype == "night_shift":
        awake = 1.4 * _ramp((hour - 12.0) % 24.0, 10.0, 18.0)  # 22:00–06:00
        meal = 0.6 * _bump(hour, 1.5, 1.0)
        evening = 0.5 * _bump(hour, 18.5, 1.5)  # a meal before leaving
        asleep = 0.2 if 8 <= hour < 15 else 0.45
        return asleep + awake + meal + evening, evening
    if archetype == "shop":
        return 0.12 + 1.55 * _ramp(hour, 9.0, 21.0), 0.0
    raise ValueError(f"unknown household archetype {archetype!r}")


def heating_profile(hour: float, weekend: bool) -> float:
    """When an electrically heated commuter home runs its heating (share of its rated kW)."""
    if 6.5 <= hour < 8.5 or 17.5 <= hour < 23.5:
        return 1.0
    if hour >= 23.5 or hour < 6.5:
        return 0.45  # a bedroom unit through the night
    return 0.8 if weekend else 0.15  # out by day on workdays


def temperatures(rng: random.Random, start: date, days: int) -> list[float]:
    """Daily mean temperature (°C) of the whole fleet's town: the month's mean plus a persistent
    day-to-day anomaly (weather comes in spells)."""
    out, anomaly = [], rng.gauss(0.0, 2.5)
    for d in range(days):
        month = (start + timedelta(days=d)).month
        out.append(round(MONTHLY_MEAN_C[month - 1] + anomaly, 2))
        anomaly = 0.6 * anomaly + rng.gauss(0.0, 2.5)
    return out


def degrees(temperature: float) -> float:
    """Heating or cooling degrees of a day (0 inside the comfortable band)."""
    return max(HEAT_BELOW_C - temperature, 0.0) + max(temperature - COOL_ABOVE_C, 0.0)


def assign(
    rng: random.Random, lived_in: Sequence[str], shares: Mapping[str, float]
) -> dict[str, str]:
    """Each lived-in meter's archetype: ``round(share × n)`` of each other than commuters (in
    the order given while they fit), the rest commuters."""
    kinds = [
        k for k, s in shares.items() if k != "commuter" for _ in range(round(s * len(lived_in)))
    ]
    kinds = kinds[: len(lived_in)] + ["commuter"] * (len(lived_in) - len(kinds[: len(lived_in)]))
    rng.shuffle(kinds)
    return dict(zip(lived_in, kinds, strict=True))


def household_parts(
    rng: random.Random,
    archetype: str,
    steps: int,
    step_minutes: int,
    start: date,
    temps: Sequence[float],
) -> tuple[list[float], list[float]]:
    """A lived-in home of ``archetype``: its load (kW) at each step and the part of it on the
    evening kitchen and heating circuit (its evening peak, appliances switched on 17:00–23:00
    and, for an electrically heated home, the heating)."""
    size = math.exp(rng.gauss(0.0, 0.45))
    base = rng.uniform(0.06, 0.2) * size
    lag = rng.gauss(0.0, 0.6)  # this home's clock: its peaks come earlier or later
    heating_home = archetype == "electric_heating"
    heat_kw = rng.uniform(0.8, 2.0) * math.exp(rng.gauss(0.0, 0.25)) if heating_home else 0.0
    per_day = 1440 // step_minutes
    hours = [(k + 0.5) * step_minutes / 60.0 for k in range(per_day)]
    tables = {}
    for weekend in (False, True):
        parts = [activity(archetype, (h - lag) % 24.0, weekend) for h in hours]
        heat = [heating_profile((h - lag) % 24.0, weekend) * heat_kw for h in hours]
        tables[weekend] = (parts, heat)
    per_hour = 60 / step_minutes
    out, circuit = [], []
    busy = 0
    busy_kw = 0.0
    for d in range(-(-steps // per_day)):
        weekend = (start + timedelta(days=d)).weekday() >= 5
        parts, heat = tables[weekend]
        shift = round(rng.gauss(0.0, 0.3) * per_hour)  # today a little earlier or later
        need = degrees(temps[d]) / DEGREES_FULL if heat_kw else 0.0
        for k in range(min(per_day, steps - d * per_day)):
            shape, peak = parts[(k - shift) % per_day]
            hour = hours[k]
            if busy == 0 and rng.random() < 0.10 * shape / per_hour * 4:
                busy = rng.randint(1, 4)
                busy_kw = rng.uniform(0.6, 2.2) * size
            u = rng.uniform(0.7, 1.3)
            heating = heat[(k - shift) % per_day] * need * rng.uniform(0.8, 1.2)
            load = base + 0.35 * size * shape * u + heating
            evening = heating + (0.35 * size * peak * u if 17.0 <= hour < 23.0 else 0.0)
            if busy:
                load += busy_kw
                evening += busy_kw if 17.0 <= hour < 23.0 else 0.0
                busy -= 1
            out.append(load)
            circuit.append(evening)
    return out, circuit
