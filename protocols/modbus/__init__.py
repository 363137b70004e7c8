"""Modbus RTU meters: register maps as data, block planning and decoding, RTU framing.

- ``protocols.modbus.maps/*.toml``: one register map per meter model (data, with sources).
- ``protocols.modbus.registers``: load maps, plan block reads, decode/encode register values.
- ``protocols.modbus.pdu``: sans-IO RTU master and slave (the only module importing pymodbus).
- ``protocols.modbus.errors``: ``ModbusError`` (peer sent garbage), ``ModbusUsageError``
  (impossible request), ``MapError`` (unknown model/quantity, bad map file).
"""

from protocols.modbus.errors import MapError, ModbusError, ModbusUsageError

__all__ = ["MapError", "ModbusError", "ModbusUsageError"]
