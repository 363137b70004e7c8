"""Modbus read requests, responses and the events the RTU codec yields (no pymodbus here).

A master yields ``RegistersResponse`` / ``ExceptionResponse``; a slave yields ``ReadRegisters`` /
``IllegalRequest`` (a well-formed frame it must answer with an exception).  Constructors raise
``ModbusUsageError`` for what Modbus cannot express (Modbus Application Protocol v1.1b3 §6.3, §7).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from typing import Final, Literal, TypeAlias

from protocols.modbus.errors import ModbusUsageError

READ_HOLDING_REGISTERS: Final = 3
READ_INPUT_REGISTERS: Final = 4
READ_FUNCTIONS: Final = (READ_HOLDING_REGISTERS, READ_INPUT_REGISTERS)
MAX_READ_COUNT: Final = 125  # Modbus Application Protocol v1.1b3 §6.3: 1 … 125 registers
MIN_UNIT: Final = 1
MAX_UNIT: Final = 247  # 0 is broadcast (never answered), 248 … 255 are reserved

# Exception codes, Modbus Application Protocol v1.1b3 §7.
EXCEPTION_NAMES: Final[dict[int, str]] = {
    0x01: "ILLEGAL_FUNCTION",
    0x02: "ILLEGAL_DATA_ADDRESS",
    0x03: "ILLEGAL_DATA_VALUE",
    0x04: "SERVER_DEVICE_FAILURE",
    0x05: "ACKNOWLEDGE",
    0x06: "SERVER_DEVICE_BUSY",
    0x07: "NEGATIVE_ACKNOWLEDGE",
    0x08: "MEMORY_PARITY_ERROR",
    0x0A: "GATEWAY_PATH_UNAVAILABLE",
    0x0B: "GATEWAY_TARGET_DEVICE_FAILED_TO_RESPOND",
}
ILLEGAL_FUNCTION: Final = 0x01
ILLEGAL_DATA_ADDRESS: Final = 0x02
ILLEGAL_DATA_VALUE: Final = 0x03
SERVER_DEVICE_FAILURE: Final = 0x04


def exception_name(code: int) -> str:
    """The Modbus name of exception ``code`` (``UNKNOWN_0xNN`` for codes the spec leaves free)."""
    return EXCEPTION_NAMES.get(code, f"UNKNOWN_0x{code:02X}")


def _check_unit(unit: int) -> None:
    if not MIN_UNIT <= unit <= MAX_UNIT:
        raise ModbusUsageError(f"unit id {unit} outside {MIN_UNIT}…{MAX_UNIT}")


def _check_read_function(function: int) -> None:
    if function not in READ_FUNCTIONS:
        raise ModbusUsageError(f"function {function} is not a register read (3 or 4)")


@dataclass(frozen=True, slots=True)
class ReadRegisters:
    """Request: read ``count`` holding (3) or input (4) registers from ``address`` of ``unit``."""

    unit: int
    function: int
    address: int
    count: int

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        _check_read_function(self.function)
        if not 0 <= self.address <= 0xFFFF:
            raise ModbusUsageError(f"register address {self.address} outside 0…65535")
        if not 1 <= self.count <= MAX_READ_COUNT:
            raise ModbusUsageError(f"register count {self.count} outside 1…{MAX_READ_COUNT}")
        if self.address + self.count > 0x10000:
            raise ModbusUsageError(f"read of {self.count} from {self.address} passes 65535")

    def matches(self, response: RegistersResponse | ExceptionResponse) -> bool:
        """Whether ``response`` answers this request (same unit, function and register count)."""
        if response.unit != self.unit or response.function != self.function:
            return False
        return isinstance(response, ExceptionResponse) or len(response.registers) == self.count


@dataclass(frozen=True, slots=True)
class RegistersResponse:
    """Response: the registers read, as unsigned 16-bit words in address order."""

    unit: int
    function: int
    registers: tuple[int, ...]

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        _check_read_function(self.function)
        object.__setattr__(self, "registers", tuple(self.registers))
        if not 1 <= len(self.registers) <= MAX_READ_COUNT:
            raise ModbusUsageError(f"{len(self.registers)} registers outside 1…{MAX_READ_COUNT}")
        if any(not 0 <= r <= 0xFFFF for r in self.registers):
            raise ModbusUsageError("a register value is outside 0…65535")


@dataclass(frozen=True, slots=True)
class ExceptionResponse:
    """Response: the meter refused ``function`` with exception ``code`` (``name`` per the spec)."""

    unit: int
    function: int
    code: int
    name: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        _check_unit(self.unit)
        if not 1 <= self.function <= 0x7F:
            raise ModbusUsageError(f"function {self.function} outside 1…127")
        if not 1 <= self.code <= 0xFF:
            raise ModbusUsageError(f"exception code {self.code} outside 1…255")
        object.__setattr__(self, "name", exception_name(self.code))


@dataclass(frozen=True, slots=True)
class IllegalRequest:
    """A well-framed request a slave must refuse with exception ``code`` (e.g. a write)."""

    unit: int
    function: int
    code: int


class Sentinel(Enum):
    """Marker values returned instead of an event."""

    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = Sentinel.NEED_DATA
NeedData: TypeAlias = Literal[Sentinel.NEED_DATA]
MasterEvent: TypeAlias = RegistersResponse | ExceptionResponse
SlaveEvent: TypeAlias = ReadRegisters | IllegalRequest


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    """One complete frame decoded on its own (the CLI, logs): what it is and what it says."""

    kind: Literal["request", "response", "exception", "illegal_request"]
    message: ReadRegisters | RegistersResponse | ExceptionResponse | IllegalRequest


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
    "NeedData",
    "ReadRegisters",
    "RegistersResponse",
    "Sentinel",
    "SlaveEvent",
    "exception_name",
]
