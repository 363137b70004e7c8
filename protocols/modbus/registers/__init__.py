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

from protocols.modbus.messages import MAX_READ_COUNT
from protocols.modbus.registers.meter_map import (
    TYPES,
    WORD_ORDERS,
    MeterMap,
    Register,
    SerialDefaults,
    load_map,
    models,
    parse_map,
)
from protocols.modbus.registers.planning import BlockRead, plan_reads
from protocols.modbus.registers.values import RegisterImage, decode_block, encode_values, read_image

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
