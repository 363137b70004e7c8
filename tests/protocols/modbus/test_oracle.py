"""Oracle: pymodbus's own serial client polls our ModbusSlave over a real socket.

``ModbusSerialClient`` speaks RTU through pyserial's ``socket://`` URL handler to a TCP socket
served by a thread that runs nothing but ``ModbusSlave`` and a register image built with
``encode_values``.  The values the independent client reads must decode to what was stored.
"""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from pymodbus.client import ModbusSerialClient

from protocols.modbus.connection import ModbusSlave
from protocols.modbus.messages import (
    ILLEGAL_DATA_ADDRESS,
    NEED_DATA,
    ExceptionResponse,
    IllegalRequest,
    ReadRegisters,
    RegistersResponse,
)
from protocols.modbus.registers import decode_block, encode_values, plan_reads, read_image

UNIT = 17
VALUES = {
    "voltage.a": Decimal("229.87"),
    "voltage.b": Decimal("231.02"),
    "current.c": Decimal("12.345"),
    "power.active.total": Decimal("7.4312"),
    "power_factor.total": Decimal("-0.987"),
    "frequency": Decimal("49.98"),
    "energy.active.import.total": Decimal("12345.67"),
    "current.n": Decimal("0.512"),
}


def _serve(listener: socket.socket, image: dict[int, dict[int, int]]) -> None:
    conn, _ = listener.accept()
    slave = ModbusSlave()
    with conn:
        while data := conn.recv(512):
            slave.receive_data(data)
            while (event := slave.next_event()) is not NEED_DATA:
                if event.unit != UNIT:
                    continue
                if isinstance(event, IllegalRequest):
                    reply = ExceptionResponse(event.unit, event.function, event.code)
                elif isinstance(event, ReadRegisters) and event.address >= 0x1000:
                    reply = ExceptionResponse(event.unit, event.function, ILLEGAL_DATA_ADDRESS)
                else:
                    words = read_image(image, event.function, event.address, event.count)
                    reply = RegistersResponse(event.unit, event.function, tuple(words))
                conn.sendall(slave.send(reply))


@pytest.fixture
def client() -> Iterator[ModbusSerialClient]:
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    thread = threading.Thread(
        target=_serve, args=(listener, encode_values("SDM630", VALUES)), daemon=True
    )
    thread.start()
    modbus = ModbusSerialClient(f"socket://127.0.0.1:{port}", baudrate=115200, timeout=3, retries=0)
    assert modbus.connect()
    yield modbus
    modbus.close()
    thread.join(timeout=5)
    listener.close()


def test_pymodbus_client_reads_what_the_slave_holds(client):
    decoded: dict[str, Decimal] = {}
    for block in plan_reads("SDM630", VALUES):
        assert block.function == 4
        result = client.read_input_registers(block.address, count=block.count, device_id=UNIT)
        assert not result.isError()
        assert len(result.registers) == block.count
        decoded |= decode_block("SDM630", 4, block.address, result.registers, block.quantities)
    assert decoded == VALUES


def test_pymodbus_client_gets_our_exceptions(client):
    result = client.read_holding_registers(0x2000, count=2, device_id=UNIT)
    assert result.isError()
    assert result.exception_code == ILLEGAL_DATA_ADDRESS
    refused = client.write_register(1, 5, device_id=UNIT)  # a meter map is read-only
    assert refused.isError()
    assert refused.exception_code == 1
