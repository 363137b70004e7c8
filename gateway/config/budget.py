"""Warnings about a configuration that works but will not serve well: bus time and line settings.

``bus_utilisation`` predicts, per bus, the share of every hour its scheduled groups keep the line
busy: for each group (energy, events, instantaneous, export, daily frozen) meters × transactions
per visit × the time of a typical transaction (request and a 48-byte reply on the wire at the
meter's line, a typical response delay of ``TYPICAL_DELAY`` s, the inter-frame gap) × visits per
hour.  Load profile reads (``history_seconds``) cost their real reply length: the records due per
run (run minutes / record interval) per category, a frame's worth per read; settlement values
one read per meter and day (the newest period; older ones only once).  Above
``WARN_UTILISATION`` on-demand reads and commands wait and a slow meter pushes the sweep past
its slot: ``check-config`` and the daemon say so at start.  Warnings never stop the
daemon (``checks`` holds the errors).
"""

from __future__ import annotations

from collections.abc import Iterable

from gateway.bus.timing import TYPICAL_REPLY, TYPICAL_REQUEST, LineTiming
from gateway.config.models import BusConfig, GatewayConfig, MeterConfig, ScheduleConfig
from gateway.events import SWEEP_IDENTIFIERS

WARN_UTILISATION = 0.70
TYPICAL_DELAY = 0.1  # s: meters answer within 20–500 ms (DL/T 645); most in well under 100

# transactions per visit by group and protocol (records read after a counter rises are extra)
_ITEMS = {
    "dlt645-2007": {
        "energy": 1,
        "events": len(SWEEP_IDENTIFIERS),
        "instant": 5,
        "frozen": 2,
        "export": 1,
    },
    "dlt645-1997": {"energy": 1, "events": 0, "instant": 3, "frozen": 0, "export": 1},
    # one GET (NormalList / Record) per group; frozen export is a column of the same row
    "dlt698": {"energy": 1, "events": 1, "instant": 1, "frozen": 1, "export": 1},
}


def _modbus_items(model: str, group: str) -> int:
    from protocols.modbus.registers import load_map, plan_reads

    prefixes = {
        "energy": ("energy.active.import.", "energy.active.export.total"),
        "instant": ("voltage.", "current.", "power.", "power_factor.", "frequency"),
        "export": ("energy.active.export.",),
    }.get(group)
    if not prefixes:
        return 0
    try:
        offered = load_map(model).quantities
    except Exception:  # an unknown model is an error of its own (checks.check_meters)
        return 0
    wanted = [q for q in offered if q.startswith(prefixes)]
    return len(plan_reads(model, wanted)) if wanted else 0


def items_per_visit(meter: MeterConfig, group: str, frozen_export: bool = False) -> int:
    """Transactions one visit of ``group`` costs ``meter``."""
    if meter.is_modbus:
        return _modbus_items(meter.model, group)
    n = _ITEMS[meter.protocol][group]
    if group == "frozen" and meter.protocol == "dlt645-2007" and frozen_export:
        n += 1
    return n + 1 if group == "energy" and meter.role == "area_total" else n


def transaction_seconds(bus: BusConfig, meter: MeterConfig) -> float:
    """A typical transaction with ``meter`` at its own line (or the bus's)."""
    timing = _timing(bus, meter)
    return (
        timing.theoretical(TYPICAL_REQUEST, TYPICAL_REPLY, TYPICAL_DELAY) + timing.inter_frame_gap()
    )


def history_seconds(bus: BusConfig, meter: MeterConfig, s: ScheduleConfig) -> float:
    """Bus seconds per hour of ``meter``'s load profile and settlement reads."""
    from protocols.dlt645.load_profile import CATEGORIES

    if meter.protocol == "dlt645-2007":
        settle_items = 2 if s.frozen_export else 1
    elif meter.protocol == "dlt645-1997":
        settle_items = 1
    else:
        return 0.0  # Modbus and DL/T 698.45 meters: neither is read (gateway.polling.history)
    t = transaction_seconds(bus, meter)
    busy = settle_items * t / 24 if s.settlement_periods else 0.0
    if not s.load_profile_minutes or meter.protocol != "dlt645-2007":
        return busy
    timing = _timing(bus, meter)
    due = max(1, s.load_profile_minutes // s.load_profile_interval_min)
    for category in s.load_profile_categories:
        record = 5 + sum(layout.length for _, layout in CATEGORIES[category][1])
        per_read = max(1, 196 // record)
        reads, rest = divmod(due, per_read)
        for records in [per_read] * reads + ([rest] if rest else []):
            reply = TYPICAL_REPLY - 20 + records * record
            seconds = timing.theoretical(TYPICAL_REQUEST + 6, reply, TYPICAL_DELAY)
            busy += (seconds + timing.inter_frame_gap()) * 60 / s.load_profile_minutes
    return busy


def _timing(bus: BusConfig, meter: MeterConfig) -> LineTiming:
    line = meter.line_settings
    timing = bus.timing
    if line is not None:
        timing = LineTiming(line.baud, line.bits_per_char, timing.response_timeout, timing.gap)
    return timing


def bus_utilisation(
    cfg: GatewayConfig, meters: Iterable[MeterConfig] | None = None
) -> dict[str, float]:
    """Predicted busy share of each bus for the configured schedule (see the module docstring)."""
    meters = list(cfg.meters if meters is None else meters)
    s = cfg.schedule
    per_hour = {
        "energy": 60 / s.energy_minutes,
        "events": 60 / s.events_minutes if s.events_minutes else 0.0,
        "instant": 60 / s.instant_minutes if s.instant_minutes else 0.0,
        "export": 60 / s.export_minutes if s.export_minutes else 0.0,
        "frozen": 1 / 24,
    }
    out: dict[str, float] = {}
    for bus in cfg.buses:
        busy = 0.0
        for m in meters:
            if m.bus != bus.name:
                continue
            t = transaction_seconds(bus, m)
            busy += sum(
                items_per_visit(m, g, s.frozen_export) * t * visits
                for g, visits in per_hour.items()
            )
            busy += history_seconds(bus, m, s)
        out[bus.name] = busy / 3600
    return out


def budget_warnings(
    cfg: GatewayConfig, meters: Iterable[MeterConfig] | None = None, *, where: str = ""
) -> list[str]:
    """One line per bus predicted above ``WARN_UTILISATION``."""
    out = []
    for i, bus in enumerate(cfg.buses):
        share = bus_utilisation(cfg, meters).get(bus.name, 0.0)
        if share > WARN_UTILISATION:
            out.append(
                f"{where or 'gateway.toml'}: buses[{i}] ({bus.name}): the schedule keeps the bus "
                f"busy {share:.0%} of the time (warning above {WARN_UTILISATION:.0%}): on-demand "
                "reads and commands will wait; lengthen events_minutes, instant_minutes or "
                "load_profile_minutes, raise the baud rate, or split the bus"
            )
    return out


def line_warnings(
    cfg: GatewayConfig, meters: Iterable[MeterConfig] | None = None, *, where: str = ""
) -> list[str]:
    """Modbus meters read at a line other than their model's factory settings."""
    modbus = [(i, m) for i, m in enumerate(cfg.meters if meters is None else meters) if m.is_modbus]
    if not modbus:
        return []  # the Modbus register maps are not imported for a gateway without Modbus meters
    from protocols.modbus.registers import load_map

    out = []
    for i, m in modbus:
        try:
            factory = load_map(m.model).serial
        except Exception:
            continue
        try:
            line = m.line_settings or cfg.bus(m.bus).line.line
        except KeyError:  # an undeclared bus is an error of its own
            continue
        if (line.baud, line.parity) != (factory.baud, factory.parity):
            out.append(
                f"{where or 'gateway.toml'}: meters[{i}] ({m.id}, {m.model}): read at {line} but "
                f"the model leaves the factory at {factory.baud} baud parity {factory.parity}: "
                f'set line = "{factory.baud} {factory.data_bits}{factory.parity}'
                f'{factory.stop_bits}" on the meter unless it was '
                "re-configured on site"
            )
    return out


def config_warnings(cfg: GatewayConfig, *, where: str = "") -> list[str]:
    """Everything worth a warning in ``cfg``."""
    return budget_warnings(cfg, where=where) + line_warnings(cfg, where=where)
