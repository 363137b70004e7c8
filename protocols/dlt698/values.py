"""Attribute values ⇄ canonical values, driven by the ``objects`` table.

``decode_value(oad, data)`` turns a meter's Data into ``{key: value}`` with canonical keys
(``energy.active.import.t2``, ``voltage.a``, ``meter.clock`` …): numbers are ``Decimal`` in the
canonical unit, times naive ``datetime`` (meter local), addresses 12-digit strings, status words
``int`` (bit n = the n-th bit of the bit-string [?]).  ``encode_value`` is the inverse for the
simulator (energy truncates like a register, the rest rounds half-even).  A value whose type
does not match the table raises ``Dlt698ValueError`` — a meter that answers 2000 with a string
sent garbage, not a reading.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import ROUND_DOWN, ROUND_HALF_EVEN, Decimal
from typing import Any

from protocols.dlt698.axdr import Data
from protocols.dlt698.datetimes import DateTimeS
from protocols.dlt698.descriptors import OAD, BitString, DataType
from protocols.dlt698.errors import Dlt698EncodeError, Dlt698ValueError
from protocols.dlt698.objects import (
    RELAY_OUTPUT,
    RELAY_STATUS_BIT,
    RELAY_STATUS_WORD,
    ObjectRow,
    find_object,
)

T = DataType
_INTEGER_TYPES = frozenset(
    {T.DOUBLE_LONG, T.DOUBLE_LONG_UNSIGNED, T.LONG, T.LONG_UNSIGNED, T.INTEGER, T.UNSIGNED}
)
_LIMITS = {
    T.DOUBLE_LONG: (-(2**31), 2**31 - 1),
    T.DOUBLE_LONG_UNSIGNED: (0, 2**32 - 1),
    T.LONG: (-(2**15), 2**15 - 1),
    T.LONG_UNSIGNED: (0, 2**16 - 1),
}


def _number(row: ObjectRow, data: Data) -> Decimal:
    if data.type is not row.type or data.type not in _INTEGER_TYPES:
        raise Dlt698ValueError(f"{row.name}: expected {row.type.name}, got {data.type.name}")
    return Decimal(data.value).scaleb(row.scaler) * row.factor


def _status(words: tuple[Data, ...]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for n, word in enumerate(words, start=1):
        if word.type is not T.BIT_STRING:
            raise Dlt698ValueError(f"status word {n} is {word.type.name}, not a bit-string")
        bits: BitString = word.value
        out[f"status.word{n}"] = sum(1 << i for i in range(bits.bits) if bits.bit(i))
        if n == RELAY_STATUS_WORD and bits.bits > RELAY_STATUS_BIT:
            out["relay.state"] = "open" if bits.bit(RELAY_STATUS_BIT) else "closed"
    return out


def _scalar(row: ObjectRow, data: Data) -> Any:
    if row.type is T.DATE_TIME_S:
        if data.type is not T.DATE_TIME_S:
            raise Dlt698ValueError(f"{row.name}: expected date_time_s, got {data.type.name}")
        return data.value.to_datetime()
    if row.type is T.OCTET_STRING:
        if data.type is not T.OCTET_STRING:
            raise Dlt698ValueError(f"{row.name}: expected octet-string, got {data.type.name}")
        return data.value.hex().upper()
    return _number(row, data)


def decode_value(oad: OAD, data: Data) -> dict[str, Any]:
    """Canonical ``{key: value}`` of attribute ``oad`` (empty for objects not in the table)."""
    row = find_object(oad.oi)
    if row is None or oad.attribute != 2 or row.layout == "record" or data.type is T.NULL:
        return {}
    if row.layout == "scalar":
        value = _scalar(row, data)
        return {} if value is None else {row.prefix: value}
    if oad.index:
        if oad.index > len(row.keys):
            return {}
        if row.layout == "status":
            return _status((data,)) if oad.index == 1 else {}
        return {row.key_of(oad.index): _number(row, data)}
    if data.type is not T.ARRAY:
        raise Dlt698ValueError(f"{row.name}: expected an array, got {data.type.name}")
    if row.layout == "status":
        return _status(data.value)
    keys = row.keys
    return {
        f"{row.prefix}.{keys[i]}": _number(row, item)
        for i, item in enumerate(data.value[: len(keys)])
    }


def _raw(row: ObjectRow, value: Any) -> Data:
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal):
        raise Dlt698EncodeError(f"{row.name}: {value!r} is not a number")
    number = (Decimal(repr(value)) if isinstance(value, float) else Decimal(value)) / row.factor
    energy = row.class_id == 1
    raw = number.scaleb(-row.scaler).quantize(
        Decimal(1), rounding=ROUND_DOWN if energy else ROUND_HALF_EVEN
    )
    low, high = _LIMITS.get(row.type, (-(2**63), 2**63))
    if energy and row.type is T.DOUBLE_LONG_UNSIGNED:
        raw %= high + 1  # a register rolls over
    clamped = min(max(raw, Decimal(low)), Decimal(high))
    return Data(row.type, int(clamped))


def encode_value(oad: OAD, values: Mapping[str, Any]) -> Data:
    """Data for attribute ``oad`` from canonical ``values`` (missing elements: ``KeyError``)."""
    row = find_object(oad.oi)
    if row is None or oad.attribute != 2 or row.layout in ("record", "status"):
        raise Dlt698EncodeError(f"{oad} is not a value attribute in the objects table")
    if row.layout == "scalar" or oad.index:
        value = values[row.key_of(oad.index)]
        if row.type is T.DATE_TIME_S:
            if not isinstance(value, datetime):
                raise Dlt698EncodeError(f"{row.name}: {value!r} is not a datetime")
            return Data(T.DATE_TIME_S, DateTimeS.of(value))
        if row.type is T.OCTET_STRING:
            return Data(T.OCTET_STRING, bytes.fromhex(str(value)))
        return _raw(row, value)
    return Data(T.ARRAY, tuple(_raw(row, values[f"{row.prefix}.{k}"]) for k in row.keys))


def status_words(words: tuple[int, ...]) -> Data:
    """The 2014 attribute-2 array for status word integers (bit n = bit-string bit n)."""
    items = []
    for word in words:
        raw = bytearray(2)
        for i in range(16):
            if word >> i & 1:
                raw[i // 8] |= 0x80 >> (i % 8)
        items.append(Data(T.BIT_STRING, BitString(16, bytes(raw))))
    return Data(T.ARRAY, tuple(items))


def trip_parameter(
    relay: OAD = RELAY_OUTPUT,
    alarm_delay: int = 0,
    limit_minutes: int = 0,
    auto_close: bool = False,
) -> Data:
    """8000 method 129 (trip) parameter [?]: array of structure {relay OAD, alarm delay
    (unsigned), power-limit time in minutes (long-unsigned, 0 = until closed), auto close}."""
    unit = (
        Data(T.OAD, relay),
        Data(T.UNSIGNED, alarm_delay),
        Data(T.LONG_UNSIGNED, limit_minutes),
        Data(T.BOOL, auto_close),
    )
    return Data(T.ARRAY, (Data(T.STRUCTURE, unit),))


def close_parameter(relay: OAD = RELAY_OUTPUT, direct: bool = True) -> Data:
    """8000 method 130 (close) parameter [?]: array of structure {relay OAD, command enum
    (0 close allowed — the customer presses the button, 1 close directly)}."""
    unit = (Data(T.OAD, relay), Data(T.ENUM, 1 if direct else 0))
    return Data(T.ARRAY, (Data(T.STRUCTURE, unit),))
