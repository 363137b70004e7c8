"""The RTU codec under its first name: ``messages``, ``rtu`` and ``connection`` re-exported.

Kept so that ``from protocols.modbus.pdu import …`` goes on working; new code imports from the
module that owns the name (see ``protocols.modbus``).
"""

from __future__ import annotations

from protocols.modbus.connection import ModbusMaster, ModbusSlave
from protocols.modbus.messages import (
    EXCEPTION_NAMES,
    ILLEGAL_DATA_ADDRESS,
    ILLEGAL_DATA_VALUE,
    ILLEGAL_FUNCTION,
    MAX_READ_COUNT,
    MAX_UNIT,
    MIN_UNIT,
    NEED_DATA,
    READ_FUNCTIONS,
    READ_HOLDING_REGISTERS,
    READ_INPUT_REGISTERS,
    SERVER_DEVICE_FAILURE,
    DecodedFrame,
    ExceptionResponse,
    IllegalRequest,
    MasterEvent,
    NeedData,
    ReadRegisters,
    RegistersResponse,
    Sentinel,
    SlaveEvent,
    exception_name,
)
from protocols.modbus.rtu import crc16, decode_frame, encode_request, encode_response

__all__ = [
    "EXCEPTION_NAMES",
    "ILLEGAL_DATA_ADDRESS",
    "ILLEGAL_DATA_VALUE",
    "ILLEGAL_FUNCTION",
    "MAX_READ_COUNT",
    "MAX_UNIT",
    "MIN_UNIT",
    "NEED_DATA",
    "READ_FUNCTIONS",
    "READ_HOLDING_REGISTERS",
    "READ_INPUT_REGISTERS",
    "SERVER_DEVICE_FAILURE",
    "DecodedFrame",
    "ExceptionResponse",
    "IllegalRequest",
    "MasterEvent",
    "ModbusMaster",
    "ModbusSlave",
    "NeedData",
    "ReadRegisters",
    "RegistersResponse",
    "Sentinel",
    "SlaveEvent",
    "crc16",
    "decode_frame",
    "encode_request",
    "encode_response",
    "exception_name",
]
