"""Register maps as data: load them, plan block reads, decode and encode register values.

A map is one TOML file per meter model in ``protocols/modbus/maps/`` (see ``docs/modbus.md``).
Each row names a canonical quantity (``protocols.quantities``) and how the meter holds it::

    { quantity = "power.active.total", address = 0x0034, function = 4, type = "float32",
      word_order = "big", scale = "1", unit = "W", resolution = "0.0001" }

``scale`` × wire value is a value in ``unit`` as the vendor documents it (Chint DTSU666 gives
``scale = "0.1"``, ``unit = "W"``); the codec then converts ``unit`` to the quantity's canonical
unit (W → kW).  Float rows are rounded half-even to ``resolution`` (canonical units): a float32
cannot hold 230.15 exactly, the meter meant 230.15.  Integer rows are exact.  A non-finite float
(NaN, ±inf: a meter that has not measured yet) is left out of the decoded values.

Words are big-endian on the wire (Modbus); ``word_order`` says whether a 32/64-bit value puts its
high word first (``big``, "ABCD") or last (``little``, "CDAB").
"""

from __future__ import annotations

import itertools
import math
import struct
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from functools import cache
from importlib import resources
from typing import TYPE_CHECKING, Any, Final

from protocols import quantities
from protocols.modbus.errors import MapError, ModbusError, ModbusUsageError

if TYPE_CHECKING:
    from protocols.modbus.pdu import ReadRegisters

MAX_READ_COUNT: Final = 125

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
# Wide enough for any float64 quantized to any sane resolution.
_CTX: Final = Context(prec=400, rounding=ROUND_HALF_EVEN)


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


@dataclass(frozen=True, slots=True)
class BlockRead:
    """One read request of a plan: ``count`` registers from ``address`` with ``function``."""

    function: int
    address: int
    count: int
    quantities: tuple[str, ...]

    def request(self, unit: int) -> ReadRegisters:
        """The request that performs this read on meter ``unit``."""
        from protocols.modbus.pdu import ReadRegisters  # keeps pymodbus out of map-only imports

        return ReadRegisters(unit, self.function, self.address, self.count)


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


def _meter(model: str | MeterMap) -> MeterMap:
    return model if isinstance(model, MeterMap) else load_map(model)


def _select(meter: MeterMap, wanted: Iterable[str] | None) -> list[Register]:
    if wanted is None:
        return list(meter.registers)
    return [meter.register(q) for q in dict.fromkeys(wanted)]


def plan_reads(model: str | MeterMap, wanted: Iterable[str] | None = None) -> list[BlockRead]:
    """The fewest block reads covering ``wanted`` quantities (all when None).

    Rows are coalesced per function in address order while the block stays within the model's
    ``max_read`` (≤ 125) and the hole to the next row is at most ``max_gap`` registers: a hole
    costs 2 bytes a register, a second request a whole turnaround.
    """
    meter = _meter(model)
    rows = sorted(_select(meter, wanted), key=lambda r: (r.function, r.address))
    plan: list[BlockRead] = []
    block: list[Register] = []
    for row in rows:
        if block:
            first, end = block[0], max(r.end for r in block)
            if (
                row.function == first.function
                and row.address - end <= meter.max_gap
                and max(end, row.end) - first.address <= meter.max_read
            ):
                block.append(row)
                continue
            plan.append(_block(block))
        block = [row]
    if block:
        plan.append(_block(block))
    return plan


def _block(rows: Sequence[Register]) -> BlockRead:
    start = rows[0].address
    end = max(r.end for r in rows)
    return BlockRead(rows[0].function, start, end - start, tuple(r.quantity for r in rows))


def _words_to_bytes(words: Sequence[int], word_order: str) -> bytes:
    ordered = words if word_order == "big" else list(reversed(words))
    return b"".join(w.to_bytes(2, "big") for w in ordered)


def _decode_row(row: Register, words: Sequence[int]) -> Decimal | None:
    _, fmt, integer = TYPES[row.type]
    (raw,) = struct.unpack(fmt, _words_to_bytes(words, row.word_order))
    if integer:
        return _CTX.multiply(Decimal(raw), row.factor)
    if not math.isfinite(raw):
        return None
    value = _CTX.quantize(_CTX.multiply(Decimal(raw), row.factor), row.resolution)
    return abs(value) if value.is_zero() else value  # no "-0.00"


def decode_block(
    model: str | MeterMap,
    function: int,
    address: int,
    registers: Sequence[int],
    wanted: Iterable[str] | None = None,
) -> dict[str, Decimal]:
    """Quantities held in ``registers`` read with ``function`` from ``address``.

    Every map row lying wholly inside the block is decoded (only ``wanted`` ones if given;
    a wanted quantity outside the block is a ``ModbusUsageError``).
    """
    meter = _meter(model)
    if any(not 0 <= w <= 0xFFFF for w in registers):
        raise ModbusError("a register value is outside 0…65535")
    end = address + len(registers)
    rows = _select(meter, wanted)
    out: dict[str, Decimal] = {}
    for row in rows:
        inside = row.function == function and address <= row.address and row.end <= end
        if not inside:
            if wanted is not None:
                raise ModbusUsageError(
                    f"{row.quantity} ({row.function}:{row.address}) is not in the block "
                    f"{function}:{address}…{end - 1}"
                )
            continue
        value = _decode_row(row, registers[row.address - address : row.end - address])
        if value is not None:
            out[row.quantity] = value
    return out


RegisterImage = dict[int, dict[int, int]]  # function -> address -> 16-bit word


def _encode_row(row: Register, value: Decimal | int | float | str) -> list[int]:
    try:
        number = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ModbusUsageError(f"{row.quantity}: {value!r} is not a number") from None
    if not number.is_finite():
        raise ModbusUsageError(f"{row.quantity}: {value!r} is not a finite number")
    raw = _CTX.divide(number, row.factor)
    _words, fmt, integer = TYPES[row.type]
    try:
        if integer:
            packed = struct.pack(fmt, int(raw.to_integral_value(ROUND_HALF_EVEN)))
        else:
            packed = struct.pack(fmt, float(raw))
    except (struct.error, OverflowError):
        raise ModbusUsageError(f"{row.quantity}: {value} does not fit a {row.type}") from None
    out = [int.from_bytes(packed[i : i + 2], "big") for i in range(0, len(packed), 2)]
    return out if row.word_order == "big" else list(reversed(out))


def encode_values(
    model: str | MeterMap, values: Mapping[str, Decimal | int | float | str]
) -> RegisterImage:
    """The register image a meter of ``model`` holds for ``values`` (canonical units)."""
    meter = _meter(model)
    image: RegisterImage = {}
    for quantity, value in values.items():
        row = meter.register(quantity)
        words = _encode_row(row, value)
        space = image.setdefault(row.function, {})
        for offset, word in enumerate(words):
            space[row.address + offset] = word
    return image


def read_image(image: RegisterImage, function: int, address: int, count: int) -> list[int]:
    """Registers ``address``…``address+count-1`` of an image; unmapped registers read 0."""
    space = image.get(function, {})
    return [space.get(a, 0) for a in range(address, address + count)]


__all__ = [
    "MAX_READ_COUNT",
    "TYPES",
    "WORD_ORDERS",
    "BlockRead",
    "MeterMap",
    "Register",
    "RegisterImage",
    "SerialDefaults",
    "decode_block",
    "encode_values",
    "load_map",
    "models",
    "parse_map",
    "plan_reads",
    "read_image",
]
