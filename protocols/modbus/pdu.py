"""The RTU codec under its first name: ``messages``, ``rtu`` and ``connection`` re-exported.

Kept so that ``from protocols.modbus.pdu import …`` goes on working; new code imports from the
module that owns the name (see ``protocols.modbus``).
"""

from __future__ import annotations

from protocols.modbus import messages
from protocols.modbus.connection import ModbusMaster, ModbusSlave
from protocols.modbus.messages import *  # noqa: F403  (requests, responses, events, constants)
from protocols.modbus.rtu import crc16, decode_frame, encode_request, encode_response

__all__ = [
    "ModbusMaster",
    "ModbusSlave",
    "crc16",
    "decode_frame",
    "encode_request",
    "encode_response",
]
__all__ += messages.__all__
