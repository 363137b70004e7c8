"""Register values: decode a block of words to Decimal quantities, and build a meter's image.

Float rows are rounded half-even to the row's ``resolution``; a non-finite float is left out;
integer rows are exact.  Words are big-endian; ``word_order`` places the high word.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from decimal import ROUND_HALF_EVEN, Context, Decimal, InvalidOperation
from typing import Final

from protocols.modbus.errors import ModbusError, ModbusUsageError
from protocols.modbus.registers.meter_map import TYPES, MeterMap, Register, resolve

# Wide enough for any float64 quantized to any sane resolution.
_CTX: Final = Context(prec=400, rounding=ROUND_HALF_EVEN)


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
    meter = resolve(model)
    if any(not 0 <= w <= 0xFFFF for w in registers):
        raise ModbusError("a register value is outside 0…65535")
    end = address + len(registers)
    rows = meter.select(wanted)
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
    meter = resolve(model)
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


__all__ = ["RegisterImage", "decode_block", "encode_values", "read_image"]
