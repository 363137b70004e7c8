"""Modbus messages: what Modbus cannot express is a local error; exception names per the spec."""

from __future__ import annotations

import pytest
from pymodbus.constants import ExcCodes

from protocols.errors import LocalProtocolError, RemoteProtocolError
from protocols.modbus.connection import ModbusMaster
from protocols.modbus.errors import ModbusError, ModbusUsageError
from protocols.modbus.messages import (
    EXCEPTION_NAMES,
    ExceptionResponse,
    ReadRegisters,
    RegistersResponse,
)


def test_exception_codes_agree_with_pymodbus():
    for code in ExcCodes:
        assert code.value in EXCEPTION_NAMES
    assert ExceptionResponse(1, 4, 0x42).name == "UNKNOWN_0x42"


def test_errors_sit_in_the_package_tree():
    assert issubclass(ModbusError, RemoteProtocolError)
    assert issubclass(ModbusUsageError, LocalProtocolError)


@pytest.mark.parametrize(
    "args",
    [
        (0, 3, 0, 1),
        (248, 3, 0, 1),
        (1, 6, 0, 1),
        (1, 3, -1, 1),
        (1, 3, 0, 0),
        (1, 3, 0, 126),
        (1, 3, 0xFFFF, 2),
    ],
)
def test_impossible_requests_are_local_errors(args):
    with pytest.raises(ModbusUsageError):
        ReadRegisters(*args)


def test_impossible_responses_are_local_errors():
    with pytest.raises(ModbusUsageError):
        RegistersResponse(1, 3, ())
    with pytest.raises(ModbusUsageError):
        RegistersResponse(1, 3, (0x10000,))
    with pytest.raises(ModbusUsageError):
        ExceptionResponse(1, 3, 0)
    with pytest.raises(ModbusUsageError):
        ModbusMaster().send(RegistersResponse(1, 3, (1,)))  # type: ignore[arg-type]
