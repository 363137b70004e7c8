"""The interface objects Taiqu reads, as data, mapped to canonical quantities.

One row per object identifier (OI): its interface class, the type of attribute 2 (or of its
elements), how the elements are laid out, the scaler and unit the standard fixes for it and the
canonical quantity (``protocols.quantities``) it feeds.  A raw integer ``r`` means
``r × 10^scaler`` in the standard's unit, then ``× factor`` into the canonical unit (power is
W in 698.45, kW in Taiqu).  Sources (see docs/dlt698.md): DL/T 698.45-2017 annex E tables E.1
(energy), E.3 (variables), E.5 (parameters), E.6 (freezes), 7.3.7 (event class 7) — scalers,
types and layouts cross-checked against the PyPI ``dlt698`` catalogue in the peer tests.

Layouts: ``scalar`` (attribute 2 is the value), ``total_tariffs`` (array: total, tariff 1…4),
``phases`` (A, B, C), ``total_phases`` (total, A, B, C), ``status`` (seven bit-strings),
``record`` (a record table read with GET-Record).  Element ``n`` of an array (OAD index n) is
``keys[n - 1]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal

from protocols.dlt698.descriptors import OAD, OMD, DataType

T = DataType
TARIFF_KEYS = ("total", "t1", "t2", "t3", "t4")
PHASE_KEYS = ("a", "b", "c")
TOTAL_PHASE_KEYS = ("total", "a", "b", "c")


@dataclass(frozen=True, slots=True)
class ObjectRow:
    """One interface object and how its attribute 2 maps to canonical quantities."""

    oi: int
    name: str
    class_id: int
    type: DataType  # of attribute 2, or of its elements for array layouts
    layout: str
    prefix: str  # canonical quantity (scalar) or prefix of ``prefix.key`` (arrays)
    scaler: int = 0
    unit: str = ""  # the canonical unit (after ``factor``)
    factor: Decimal = Decimal(1)
    certainty: str = "V"  # V: several sources agree; 1: one source; ?: uncertain (docs)
    unit_code: int | None = None  # the standard's unit enum in attribute 3 (Scaler_Unit)

    @property
    def keys(self) -> tuple[str, ...]:
        """Element keys of an array layout, in wire order."""
        return {
            "total_tariffs": TARIFF_KEYS,
            "phases": PHASE_KEYS,
            "total_phases": TOTAL_PHASE_KEYS,
            "status": tuple(f"word{n}" for n in range(1, 8)),
        }.get(self.layout, ())

    def key_of(self, index: int) -> str:
        """The value key of OAD element ``index`` (0 = the whole attribute: scalar key)."""
        if self.layout == "scalar" or index == 0:
            return self.prefix
        return f"{self.prefix}.{self.keys[index - 1]}"

    @property
    def oad(self) -> OAD:
        """Attribute 2, the whole value."""
        return OAD(self.oi, 2)


UNIT_CODES = {"kWh": 33, "kVAh": 34, "kvarh": 35, "A": 36, "V": 38, "W": 27, "var": 31, "VA": 29}
UNIT_CODES |= {"Hz": 47, "": 255}
"""The unit enums of Scaler_Unit Taiqu meets (as the PyPI ``dlt698`` catalogue gives them)."""


def _energy(oi: int, prefix: str, name: str, signed: bool, unit: str = "kWh") -> ObjectRow:
    kind = T.DOUBLE_LONG if signed else T.DOUBLE_LONG_UNSIGNED
    return ObjectRow(
        oi, name, 1, kind, "total_tariffs", prefix, -2, unit, unit_code=UNIT_CODES[unit]
    )


_KW = Decimal("0.001")

OBJECTS: dict[int, ObjectRow] = {
    row.oi: row
    for row in (
        _energy(0x0000, "energy.active.combined", "combined active energy", True),
        _energy(0x0010, "energy.active.import", "forward active energy", False),
        _energy(0x0020, "energy.active.export", "reverse active energy", False),
        _energy(0x0030, "energy.reactive.combined1", "combined reactive energy 1", True, "kvarh"),
        _energy(0x0040, "energy.reactive.combined2", "combined reactive energy 2", True, "kvarh"),
        _energy(0x0050, "energy.reactive.q1", "quadrant I reactive energy", False, "kvarh"),
        _energy(0x0060, "energy.reactive.q2", "quadrant II reactive energy", False, "kvarh"),
        _energy(0x0070, "energy.reactive.q3", "quadrant III reactive energy", False, "kvarh"),
        _energy(0x0080, "energy.reactive.q4", "quadrant IV reactive energy", False, "kvarh"),
        _energy(0x0090, "energy.apparent.import", "forward apparent energy", False, "kVAh"),
        _energy(0x00A0, "energy.apparent.export", "reverse apparent energy", False, "kVAh"),
        ObjectRow(
            0x2000, "voltage", 3, T.LONG_UNSIGNED, "phases", "voltage", -1, "V", unit_code=38
        ),
        ObjectRow(0x2001, "current", 3, T.DOUBLE_LONG, "phases", "current", -3, "A", unit_code=36),
        ObjectRow(
            0x2004,
            "active power",
            4,
            T.DOUBLE_LONG,
            "total_phases",
            "power.active",
            -1,
            "kW",
            _KW,
            unit_code=27,
        ),
        ObjectRow(
            0x2005,
            "reactive power",
            4,
            T.DOUBLE_LONG,
            "total_phases",
            "power.reactive",
            -1,
            "kvar",
            _KW,
            unit_code=31,
        ),
        ObjectRow(
            0x2006,
            "apparent power",
            4,
            T.DOUBLE_LONG,
            "total_phases",
            "power.apparent",
            -1,
            "kVA",
            _KW,
            unit_code=29,
        ),
        ObjectRow(
            0x200A, "power factor", 4, T.LONG, "total_phases", "power_factor", -3, unit_code=255
        ),
        ObjectRow(
            0x200F,
            "grid frequency",
            6,
            T.LONG_UNSIGNED,
            "scalar",
            "frequency",
            -2,
            "Hz",
            unit_code=47,
        ),
        ObjectRow(
            0x2014, "meter status words", 6, T.BIT_STRING, "status", "status", 0, "", certainty="?"
        ),
        ObjectRow(0x4000, "date and time", 8, T.DATE_TIME_S, "scalar", "meter.clock"),
        ObjectRow(0x4001, "communication address", 8, T.OCTET_STRING, "scalar", "meter.address"),
        ObjectRow(0x4002, "meter number", 8, T.OCTET_STRING, "scalar", "meter.number"),
        ObjectRow(0x2021, "data freeze time", 8, T.DATE_TIME_S, "scalar", "freeze.time"),
        ObjectRow(0x201E, "event start time", 8, T.DATE_TIME_S, "scalar", "event.start"),
        ObjectRow(0x2020, "event end time", 8, T.DATE_TIME_S, "scalar", "event.end"),
        ObjectRow(
            0x2022, "event record number", 8, T.DOUBLE_LONG_UNSIGNED, "scalar", "event.record_no"
        ),
        ObjectRow(0x5004, "daily freeze", 9, T.STRUCTURE, "record", "daily_frozen"),
        ObjectRow(0x3011, "power-down event", 7, T.STRUCTURE, "record", "events.power_down"),
        ObjectRow(
            0x301B,
            "meter-cover open event",
            7,
            T.STRUCTURE,
            "record",
            "events.meter_cover",
            certainty="1",
        ),
        ObjectRow(
            0x301C,
            "terminal-cover open event",
            7,
            T.STRUCTURE,
            "record",
            "events.terminal_cover",
            certainty="1",
        ),
    )
}

EVENT_OBJECTS = {0x3011: "power_down", 0x301B: "meter_cover_open", 0x301C: "terminal_cover_open"}
"""Event objects Taiqu reads (OI → ``protocols.model.EventType`` value)."""
EVENT_COUNT_ATTRIBUTE = 4  # class 7 attribute 4 "当前记录数": records held (long-unsigned)
EVENT_COUNT_KEYS = {
    0x3011: "events.power_down.count",
    0x301B: "events.meter_cover.count",
    0x301C: "events.terminal_cover.count",
}

FREEZE_TIME = OAD(0x2021, 2)
EVENT_RECORD_NO = OAD(0x2022, 2)
EVENT_START = OAD(0x201E, 2)
EVENT_END = OAD(0x2020, 2)
DAILY_FROZEN = OAD(0x5004, 2)
CLOCK = OAD(0x4000, 2)
ADDRESS = OAD(0x4001, 2)
ENERGY_IMPORT = OAD(0x0010, 2)
ENERGY_EXPORT = OAD(0x0020, 2)
STATUS_WORDS = OAD(0x2014, 2)
DAILY_COLUMNS = (FREEZE_TIME, ENERGY_IMPORT, ENERGY_EXPORT)
"""The columns Taiqu asks of a daily freeze (back-fill keyed by the freeze time)."""
EVENT_COLUMNS = (EVENT_RECORD_NO, EVENT_START, EVENT_END)

# Relay control (remote-control object 8000, interface class 8) and keep-power (8001) [?]:
# method 129 trips, 130 closes; 8001 method 127 holds power, 128 releases it.
RELAY_OUTPUT = OAD(0xF205, 2, 1)  # the first relay output unit, the parameter of 8000 methods
TRIP = OMD(0x8000, 129)
CLOSE = OMD(0x8000, 130)
KEEP_POWER = OMD(0x8001, 127)
KEEP_POWER_RELEASE = OMD(0x8001, 128)
BROADCAST_TIME = OMD(0x4000, 127)
RELAY_STATUS_WORD, RELAY_STATUS_BIT = 3, 4  # status word 3 bit 4: 0 closed, 1 open [?]


def find_object(oi: int) -> ObjectRow | None:
    """The row of ``oi``, or ``None``."""
    return OBJECTS.get(oi)
