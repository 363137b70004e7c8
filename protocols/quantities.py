"""Canonical quantities: one name and unit for each thing a meter measures.

Names are shared by DL/T 645 and Modbus codecs, the MQTT payloads and the head-end.  Tariffs
``t1``…``t4`` are sharp / peak / flat / valley (尖 峰 平 谷).  Values are register values as the
meter reports them: multipliers (CT × PT) are applied only by the head-end.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Kind(StrEnum):
    """How a quantity behaves over time (the head-end aggregates by kind)."""

    CUMULATIVE = "cumulative"  # a register that only grows (energy); differences are consumption
    INSTANT = "instant"  # a momentary value (voltage, power)
    STATE = "state"  # a discrete state (relay open/closed, status word)
    COUNTER = "counter"  # an event counter kept by the meter
    MONEY = "money"  # prepay balances kept by the meter


@dataclass(frozen=True)
class Quantity:
    """A canonical quantity: dotted name, unit (UCUM-like, '' for none), kind."""

    name: str
    unit: str
    kind: Kind
    description: str


TARIFF_NAMES = {1: "sharp", 2: "peak", 3: "flat", 4: "valley"}
TARIFF_NAMES_ZH = {1: "尖", 2: "峰", 3: "平", 4: "谷"}


def _energy(prefix: str, unit: str, what: str) -> list[Quantity]:
    rows = [Quantity(f"{prefix}.total", unit, Kind.CUMULATIVE, f"{what}, total")]
    rows += [
        Quantity(f"{prefix}.t{n}", unit, Kind.CUMULATIVE, f"{what}, tariff {n} ({TARIFF_NAMES[n]})")
        for n in range(1, 5)
    ]
    return rows


def _phases(prefix: str, unit: str, kind: Kind, what: str, total: bool) -> list[Quantity]:
    rows = [Quantity(f"{prefix}.total", unit, kind, f"{what}, total")] if total else []
    rows += [Quantity(f"{prefix}.{p}", unit, kind, f"{what}, phase {p.upper()}") for p in "abc"]
    return rows


_TABLE: list[Quantity] = [
    *_energy("energy.active.import", "kWh", "Forward (import) active energy"),
    *_energy("energy.active.export", "kWh", "Reverse (export) active energy"),
    *_energy("energy.active.combined", "kWh", "Combined active energy"),
    *_energy("energy.reactive.combined1", "kvarh", "Combined reactive energy 1"),
    *_energy("energy.reactive.combined2", "kvarh", "Combined reactive energy 2"),
    *_energy("energy.reactive.import", "kvarh", "Import reactive energy"),
    *_energy("energy.reactive.export", "kvarh", "Export reactive energy"),
    *_energy("energy.apparent.import", "kVAh", "Import apparent energy"),
    *_phases("voltage", "V", Kind.INSTANT, "Voltage", total=False),
    *_phases("current", "A", Kind.INSTANT, "Current", total=False),
    Quantity("current.n", "A", Kind.INSTANT, "Neutral current"),
    *_phases("power.active", "kW", Kind.INSTANT, "Active power", total=True),
    *_phases("power.reactive", "kvar", Kind.INSTANT, "Reactive power", total=True),
    *_phases("power.apparent", "kVA", Kind.INSTANT, "Apparent power", total=True),
    *_phases("power_factor", "", Kind.INSTANT, "Power factor", total=True),
    Quantity("frequency", "Hz", Kind.INSTANT, "Grid frequency"),
    Quantity("temperature.meter", "Cel", Kind.INSTANT, "Meter internal temperature"),
    Quantity("demand.active.import.max", "kW", Kind.INSTANT, "Maximum forward active demand"),
    Quantity("relay.state", "", Kind.STATE, "Relay: 'closed' or 'open'"),
    Quantity("keep_power.state", "", Kind.STATE, "Keep-power (保电) held: 'on' or 'off'"),
    *[
        Quantity(f"status.word{n}", "", Kind.STATE, f"DL/T 645 status word {n}")
        for n in range(1, 8)
    ],
    Quantity("meter.clock", "", Kind.STATE, "The meter's own clock (ISO 8601, meter local time)"),
    Quantity("meter.address", "", Kind.STATE, "Communication address (12 digits)"),
    Quantity("meter.number", "", Kind.STATE, "Meter number (12 digits)"),
    Quantity("events.meter_cover.count", "", Kind.COUNTER, "Meter-cover open count"),
    Quantity("events.terminal_cover.count", "", Kind.COUNTER, "Terminal-cover open count"),
    Quantity("events.power_down.count", "", Kind.COUNTER, "Power-down count"),
    Quantity("prepay.balance.money", "CNY", Kind.MONEY, "Prepay remaining money (meter-local)"),
    Quantity("prepay.overdraft.money", "CNY", Kind.MONEY, "Prepay overdraft money (meter-local)"),
    Quantity("prepay.balance.energy", "kWh", Kind.MONEY, "Prepay remaining energy (meter-local)"),
    Quantity("prepay.overdraft.energy", "kWh", Kind.MONEY, "Prepay overdraft energy (meter-local)"),
]

QUANTITIES: dict[str, Quantity] = {q.name: q for q in _TABLE}

ENERGY_TOTAL = "energy.active.import.total"
ENERGY_TARIFFS = tuple(f"energy.active.import.t{n}" for n in range(1, 5))
ENERGY_EXPORT_TOTAL = "energy.active.export.total"
RELAY_STATE = "relay.state"


def get(name: str) -> Quantity:
    """The quantity called ``name``; ``KeyError`` names the unknown quantity."""
    try:
        return QUANTITIES[name]
    except KeyError:
        raise KeyError(f"unknown quantity {name!r}") from None


def is_known(name: str) -> bool:
    """Whether ``name`` is a canonical quantity."""
    return name in QUANTITIES
