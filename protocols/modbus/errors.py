"""The exception tree of ``protocols.modbus``.

::

    ProtocolError
    ├── RemoteProtocolError
    │   └── ModbusError          a frame or register block from the bus is malformed
    └── LocalProtocolError
        └── ModbusUsageError     the caller asked for something Modbus cannot express
            └── MapError         an unknown model or quantity, or a malformed map file

The stream decoders in :mod:`protocols.modbus.connection` never raise on bus noise: they skip it and
count it.  ``ModbusError`` comes from the one-shot decoders (``decode_frame``, ``decode_block``).
"""

from __future__ import annotations

from protocols.errors import LocalProtocolError, RemoteProtocolError


class ModbusError(RemoteProtocolError):
    """A Modbus frame or register block from the peer is malformed."""


class ModbusUsageError(LocalProtocolError):
    """The caller asked for something Modbus cannot express (bad unit, count, value…)."""


class MapError(ModbusUsageError):
    """An unknown meter model or quantity, or a register map file that does not validate."""
