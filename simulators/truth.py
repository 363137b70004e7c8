"""Ground truth of what each meter lets a master read, per identifier and per quantity.

``readable(fleet, meter_id)`` asks the meter's own firmware path (``dlt645.reads.probe``, the
code that answers the wire, without counting a read) for every identifier of the table it could
be asked: current values, the last settlement period, the last daily freeze, the last event
record and the latest load record.  Outcomes: ``readable``, ``partial`` (fewer phases),
``filled`` (FF/EE members), ``refused`` (abnormal reply), ``silent`` (no reply) and ``no_data``
(an abnormal reply because the meter holds nothing there yet).  Per canonical quantity it tells
whether any identifier delivers a real value, and which; per read group a gateway schedules
(``GROUPS``: energy, reverse energy, voltage, status, clock, events, daily frozen, reverse daily
frozen, settlement, load profile) whether any of its identifiers does.  ``reads`` is what the
meter actually answered so far (identifier → outcome → count), for comparing with what a
gateway collected.
Modbus meters list their map's quantities with the personality's departures, and the block reads
``plan_reads`` makes from the map with what each gets (``readable`` or ``exception_02``).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from protocols.dlt645 import DATA_IDS, PATTERNS, Version
from protocols.dlt645.data_ids import specialize
from protocols.dlt645.layouts import Group, Stamp
from protocols.dlt645.load_profile import GIVEN_TIME
from protocols.modbus.registers import load_map, plan_reads
from simulators.dlt645.meter import Dlt645Listener, protocol_version
from simulators.dlt645.reads import dropped_member, probe

if TYPE_CHECKING:
    from simulators.fleet import Fleet
    from simulators.meter import Meter

_DELIVERING = ("readable", "partial", "filled")
# The read groups a gateway schedules, and the identifiers that can serve each (any one does).
GROUPS: dict[Version, dict[str, tuple[int, ...]]] = {
    Version.V2007: {
        "energy": (0x0001FF00, 0x00010000),
        "reverse_energy": (0x0002FF00, 0x00020000),
        "voltage": (0x0201FF00, 0x02010100),
        "status": (0x040005FF, 0x04000503),
        "clock": (0x0400010C, 0x04000101, 0x04000102),
        "events": (0x03300D00, 0x03300E00, 0x03110000),
        "daily_frozen": (0x05060101,),
        "reverse_daily_frozen": (0x05060201,),
        "settlement": (0x0001FF01, 0x00010001),
        "load_profile": (0x06040001,),
    },
    Version.V1997: {
        "energy": (0x901F, 0x9010),
        "reverse_energy": (0x902F, 0x9020),
        "voltage": (0xB61F, 0xB611),
        "clock": (0xC010, 0xC011),
        "settlement": (0x941F, 0x9410),
    },
}


def _listener(fleet: Fleet, meter: Meter) -> Dlt645Listener:
    bus = fleet.buses[fleet.meter_bus[meter.id]]
    for listener in bus.listeners:
        if isinstance(listener, Dlt645Listener) and meter in listener.meters():
            return listener
    raise LookupError(meter.id)  # pragma: no cover - every DL/T 645 meter has one


def _rows(version: Version) -> list[Any]:
    rows = [r for r in DATA_IDS[version].values() if r.period in ("current", "load_profile")]
    rows += [specialize(r, 1) for r in PATTERNS[version].values()]  # the last period/freeze/record
    rows += [r for r in DATA_IDS[version].values() if r.period == "settlement" and r.index == 1]
    return sorted({r.di: r for r in rows}.values(), key=lambda r: r.di)


def _params(meter: Meter, row: Any, ts: float) -> bytes:
    if row.period != "load_profile":
        return b""
    if row.di & 0xFF != GIVEN_TIME:
        return b"\x01"
    start = meter.meter_time(ts) - timedelta(hours=1)
    return b"\x01" + Stamp("YYMMDDhhmm").encode(start)


def readable(fleet: Fleet, meter_id: str, ts: float | None = None) -> dict[str, Any]:
    """What ``meter_id`` answers, per identifier and per quantity, at ``ts`` (default now)."""
    meter = fleet.meter(meter_id)
    ts = fleet.clock.now().timestamp() if ts is None else ts
    p = meter.spec.personality
    line = fleet.meter_line.get(meter.id) or fleet.buses[fleet.meter_bus[meter.id]].line
    out: dict[str, Any] = {
        "meter": meter.id,
        "personality": p.name,
        "protocol": meter.spec.protocol,
        "line": str(line),
        "reads": {di: dict(counts) for di, counts in meter.reads.items()},
    }
    if meter.spec.protocol == "modbus":
        meter_map = load_map(meter.spec.model)
        out["quantities"] = {
            q: {"outcome": "readable", "via": [f"{r.function}:{r.address}"]}
            for q, r in ((r.quantity, r) for r in meter_map.registers)
        }
        out["exception_on_gap"] = p.exception_on_gap
        out["word_order"] = p.word_order
        blocks = {}
        for block in plan_reads(meter_map):  # the block reads a planner makes from the map
            mapped = {
                a
                for r in meter_map.registers
                if r.function == block.function
                for a in range(r.address, r.end)
            }
            holes = any(a not in mapped for a in range(block.address, block.address + block.count))
            key = f"{block.function}:{block.address}+{block.count}"
            blocks[key] = "exception_02" if holes and p.exception_on_gap else "readable"
        out["blocks"] = blocks
        return out
    version = protocol_version(meter.spec.protocol)
    listener = _listener(fleet, meter)
    identifiers: dict[str, str] = {}
    quantities: dict[str, dict[str, Any]] = {}
    for row in _rows(version):
        outcome = probe(listener, meter, row.di, ts, _params(meter, row, ts))
        identifiers[row.hex] = outcome
        if row.period != "current":
            continue
        if isinstance(row.layout, Group):
            members = [n for n, _ in row.layout.fields if not dropped_member(p, n)]
            keys = [n for n in members if not p.lacks_key(n)]
        else:
            keys = [row.key]
        for key in keys:
            entry = quantities.setdefault(key, {"outcome": outcome, "via": []})
            if outcome in _DELIVERING:
                entry["outcome"] = "readable"
                entry["via"].append(row.hex)
    out["identifiers"] = identifiers
    out["quantities"] = quantities
    groups: dict[str, dict[str, Any]] = {}
    for group, dis in GROUPS[version].items():
        outcomes = {
            version.di_hex(di): identifiers.get(version.di_hex(di), "refused") for di in dis
        }
        via = [di for di, outcome in outcomes.items() if outcome in _DELIVERING]
        worst = next(iter(outcomes.values()))
        groups[group] = {"outcome": "readable" if via else worst, "via": via}
    out["groups"] = groups
    return out


__all__ = ["readable"]
