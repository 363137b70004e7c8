"""A meter model's register map: its rows, serial defaults and limits, loaded from TOML data.

See ``protocols.modbus.registers`` for the file format; a bad file is a ``MapError``.
"""

from __future__ import annotations

import itertools
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import Any, Final

from protocols import quantities
from protocols.modbus.errors import MapError
from protocols.modbus.messages import MAX_READ_COUNT

# type -> (words, struct format of the big-endian bytes, integer?)
TYPES: Final[dict[str, tuple[int, str, bool]]] = {
    "uint16": (1, ">H", True),
    "int16": (1, ">h", True),
    "uint32": (2, ">I", True),
    "int32": (2, ">i", True),
    "uint64": (4, ">Q", True),
    "int64": (4, ">q", True),
    "float32": (2, ">f", False),
    "float64": (4, ">d", False),
}
WORD_ORDERS: Final = ("big", "little")

# (unit on the wire, canonical unit) -> factor
_UNIT_FACTORS: Final[dict[tuple[str, str], Decimal]] = {
    **{(u, u): Decimal(1) for u in ("", "V", "A", "Hz", "Cel", "kW", "kvar", "kVA", "kWh")},
    **{(u, u): Decimal(1) for u in ("kvarh", "kVAh")},
    ("W", "kW"): Decimal("0.001"),
    ("var", "kvar"): Decimal("0.001"),
    ("VA", "kVA"): Decimal("0.001"),
    ("Wh", "kWh"): Decimal("0.001"),
    ("varh", "kvarh"): Decimal("0.001"),
    ("VAh", "kVAh"): Decimal("0.001"),
    ("mA", "A"): Decimal("0.001"),
    ("%", ""): Decimal("0.01"),
}


@dataclass(frozen=True, slots=True)
class Register:
    """One map row: where and how a meter holds one canonical quantity."""

    quantity: str
    address: int
    function: int
    type: str
    word_order: str
    scale: Decimal
    unit: str
    resolution: Decimal
    description: str = ""

    @property
    def words(self) -> int:
        """Registers the value occupies."""
        return TYPES[self.type][0]

    @property
    def factor(self) -> Decimal:
        """Wire value × factor = value in the quantity's canonical unit."""
        return self.scale * _UNIT_FACTORS[(self.unit, quantities.get(self.quantity).unit)]

    @property
    def end(self) -> int:
        """One past the last register of the value."""
        return self.address + self.words


@dataclass(frozen=True, slots=True)
class SerialDefaults:
    """Factory serial settings of a model and the unit ids it accepts."""

    baud: int
    parity: str
    data_bits: int
    stop_bits: int
    baud_options: tuple[int, ...]
    unit_min: int
    unit_max: int
    default_unit: int


@dataclass(frozen=True, slots=True)
class MeterMap:
    """A meter model's register map."""

    model: str
    vendor: str
    title: str
    phases: int
    sources: tuple[str, ...]
    notes: tuple[str, ...]
    serial: SerialDefaults
    max_read: int
    max_gap: int
    registers: tuple[Register, ...]

    @property
    def quantities(self) -> tuple[str, ...]:
        """Quantities the model offers, in map order."""
        return tuple(r.quantity for r in self.registers)

    def register(self, quantity: str) -> Register:
        """The row for ``quantity``; ``MapError`` if the model does not offer it."""
        for row in self.registers:
            if row.quantity == quantity:
                return row
        raise MapError(f"{self.model} has no register for quantity {quantity!r}")

    def select(self, wanted: Iterable[str] | None) -> list[Register]:
        """The rows of ``wanted`` quantities (each once, in the order asked), all when None."""
        if wanted is None:
            return list(self.registers)
        return [self.register(q) for q in dict.fromkeys(wanted)]


def _maps_dir() -> Any:
    return resources.files("protocols.modbus.maps")


@cache
def _index() -> dict[str, str]:
    """Upper-cased model name -> file name of every map shipped."""
    out: dict[str, str] = {}
    for entry in _maps_dir().iterdir():
        if entry.name.endswith(".toml"):  # __init__.py is not a map
            out[entry.name.removesuffix(".toml").upper()] = entry.name
    return out


def models() -> list[str]:
    """Models with a register map, sorted."""
    return sorted(load_map(name).model for name in _index())


@cache
def load_map(model: str) -> MeterMap:
    """The register map of ``model`` (case-insensitive), parsed and validated once."""
    name = _index().get(model.upper())
    if name is None:
        raise MapError(
            f"unknown Modbus meter model {model!r}; known: {', '.join(sorted(_index()))}"
        )
    text = _maps_dir().joinpath(name).read_text(encoding="utf-8")
    try:
        return parse_map(tomllib.loads(text))
    except (tomllib.TOMLDecodeError, KeyError, TypeError, ValueError, InvalidOperation) as exc:
        raise MapError(f"map file {name}: {exc!r}") from None


def _dec(value: object, what: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise MapError(f"{what} must be a decimal string or an integer, got {value!r}")
    return Decimal(value)


def _row(raw: Mapping[str, Any], defaults: Mapping[str, Any], model: str) -> Register:
    merged = {**defaults, **raw}
    unknown = set(merged) - {*Register.__slots__}
    if unknown:
        raise MapError(f"{model}: unknown keys {sorted(unknown)} in row {dict(raw)}")
    row = Register(
        quantity=str(merged["quantity"]),
        address=int(merged["address"]),
        function=int(merged["function"]),
        type=str(merged["type"]),
        word_order=str(merged.get("word_order", "big")),
        scale=_dec(merged.get("scale", "1"), "scale"),
        unit=str(merged["unit"]),
        resolution=_dec(merged["resolution"], "resolution"),
        description=str(merged.get("description", "")),
    )
    where = f"{model} {row.quantity}"
    if not quantities.is_known(row.quantity):
        raise MapError(f"{where}: not a canonical quantity (protocols/quantities.py)")
    if row.function not in (3, 4):
        raise MapError(f"{where}: function {row.function} is not 3 (holding) or 4 (input)")
    if row.type not in TYPES:
        raise MapError(f"{where}: type {row.type!r} not one of {sorted(TYPES)}")
    if row.word_order not in WORD_ORDERS:
        raise MapError(f"{where}: word_order {row.word_order!r} not one of {WORD_ORDERS}")
    if not 0 <= row.address <= 0x10000 - row.words:
        raise MapError(f"{where}: address {row.address} outside 0…65535")
    canonical = quantities.get(row.quantity).unit
    if (row.unit, canonical) not in _UNIT_FACTORS:
        raise MapError(f"{where}: cannot convert {row.unit!r} to {canonical!r}")
    if row.scale <= 0 or row.resolution <= 0:
        raise MapError(f"{where}: scale and resolution must be positive")
    return row


def parse_map(data: Mapping[str, Any]) -> MeterMap:
    """Validate a parsed map file (see ``docs/modbus.md`` for the format)."""
    model = str(data["model"])
    defaults = data.get("defaults", {})
    rows = tuple(_row(r, defaults, model) for r in data["registers"])
    seen: set[str] = set()
    for row in rows:
        if row.quantity in seen:
            raise MapError(f"{model}: quantity {row.quantity} mapped twice")
        seen.add(row.quantity)
    spans = sorted((r.function, r.address, r.end, r.type) for r in rows)
    for (f1, a1, e1, t1), (f2, a2, e2, t2) in itertools.pairwise(spans):
        if f1 == f2 and a2 < e1 and (a1, e1, t1) != (a2, e2, t2):
            raise MapError(f"{model}: registers {a1}…{e1 - 1} and {a2}…{e2 - 1} overlap")
    serial = data["serial"]
    unit_min, unit_max = (int(u) for u in serial["unit_ids"])
    max_read = int(data.get("max_read", MAX_READ_COUNT))
    if not 1 <= max_read <= MAX_READ_COUNT:
        raise MapError(f"{model}: max_read {max_read} outside 1…{MAX_READ_COUNT}")
    if not 1 <= unit_min <= unit_max <= 247:
        raise MapError(f"{model}: unit_ids {unit_min}…{unit_max} outside 1…247")
    return MeterMap(
        model=model,
        vendor=str(data["vendor"]),
        title=str(data["title"]),
        phases=int(data["phases"]),
        sources=tuple(str(s) for s in data["sources"]),
        notes=tuple(str(s) for s in data.get("notes", ())),
        serial=SerialDefaults(
            baud=int(serial["baud"]),
            parity=str(serial["parity"]),
            data_bits=int(serial["data_bits"]),
            stop_bits=int(serial["stop_bits"]),
            baud_options=tuple(int(b) for b in serial["baud_options"]),
            unit_min=unit_min,
            unit_max=unit_max,
            default_unit=int(serial["default_unit"]),
        ),
        max_read=max_read,
        max_gap=int(data.get("max_gap", 0)),
        registers=rows,
    )


def resolve(model: str | MeterMap) -> MeterMap:
    """``model`` itself if it is a map, else the shipped map of that name."""
    return model if isinstance(model, MeterMap) else load_map(model)


__all__ = [
    "TYPES",
    "WORD_ORDERS",
    "MeterMap",
    "Register",
    "SerialDefaults",
    "load_map",
    "models",
    "parse_map",
    "resolve",
]
