"""Modbus RTU meters: register maps as data, block planning and decoding, RTU framing.

- ``protocols.modbus.maps/*.toml``: one register map per meter model (data, with sources).
- ``protocols.modbus.registers``: load maps (``meter_map``), plan block reads (``planning``),
  decode/encode register values (``values``).
- ``protocols.modbus.messages``: requests, responses and events as frozen dataclasses.
- ``protocols.modbus.rtu``: RTU framing and the hunt through noise (the only module importing
  pymodbus).
- ``protocols.modbus.connection``: sans-IO RTU master and slave.
- ``protocols.modbus.pdu``: the three above re-exported under their first name.
- ``protocols.modbus.errors``: ``ModbusError`` (peer sent garbage), ``ModbusUsageError``
  (impossible request), ``MapError`` (unknown model/quantity, bad map file).
"""

from protocols.modbus.errors import MapError, ModbusError, ModbusUsageError

__all__ = ["MapError", "ModbusError", "ModbusUsageError"]
