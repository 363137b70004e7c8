"""A meter's state as canonical quantities (``protocols.quantities`` names), for any protocol.

Three-phase meters split the load evenly over phases A, B, C; energies are the registers the
meter shows (bypass, reversal and stopping included), instantaneous values what it measures.
Reactive energy and power follow the profile's power factor (Q = P · tan φ).
"""

from __future__ import annotations

import math

from simulators.meter import Meter, total

Values = dict[str, float]


def energy_values(meter: Meter, ts: float) -> Values:
    """Energy registers (kWh / kvarh) at ``ts``."""
    imp, exp = meter.registered(ts)
    tan_phi = math.tan(math.acos(meter.spec.profile.power_factor))
    out: Values = {
        "energy.active.import.total": total(imp),
        "energy.active.export.total": total(exp),
        "energy.active.combined.total": total(imp) + total(exp),
        "energy.reactive.import.total": total(imp) * tan_phi,
        "energy.reactive.export.total": total(exp) * tan_phi,
        "energy.reactive.combined1.total": total(imp) * tan_phi,
        "energy.reactive.combined2.total": total(exp) * tan_phi,
        "energy.apparent.import.total": total(imp) / meter.spec.profile.power_factor,
    }
    for n in range(4):
        out[f"energy.active.import.t{n + 1}"] = imp[n]
        out[f"energy.active.export.t{n + 1}"] = exp[n]
        out[f"energy.active.combined.t{n + 1}"] = imp[n] + exp[n]
    return out


def instant_values(meter: Meter, ts: float, phases: int = 1) -> Values:
    """Voltages, currents, powers, power factors and frequency at ``ts``."""
    voltage = meter.voltage(ts)
    power = meter.power_kw(ts)
    pf = meter.power_factor(ts)
    tan_phi = math.tan(math.acos(abs(pf)))
    current = meter.current(ts) / phases
    out: Values = {
        "power.active.total": power,
        "power.reactive.total": power * tan_phi,
        "power.apparent.total": abs(power) / abs(pf) if pf else 0.0,
        "power_factor.total": pf,
        "frequency": meter.frequency(ts) if voltage else 0.0,
        "current.n": meter.neutral_current(ts) if phases == 1 else 0.0,
    }
    phase_names = "abc"[:phases] if phases > 1 else "a"
    for p in "abc":
        on = p in phase_names
        out[f"voltage.{p}"] = voltage if on else 0.0
        out[f"current.{p}"] = current if on else 0.0
        out[f"power.active.{p}"] = power / phases if on else 0.0
        out[f"power.reactive.{p}"] = power * tan_phi / phases if on else 0.0
        out[f"power.apparent.{p}"] = abs(power) / abs(pf) / phases if on and pf else 0.0
        out[f"power_factor.{p}"] = pf if on else 0.0
    return out


def all_values(meter: Meter, ts: float, phases: int = 1) -> Values:
    """Energies and instantaneous values together."""
    return {**energy_values(meter, ts), **instant_values(meter, ts, phases)}
