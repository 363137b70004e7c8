"""pymodbus's own client reads simulated Modbus meters (RTU framing over the TCP endpoint)."""

from __future__ import annotations

import asyncio

import pytest
from pymodbus.client import ModbusTcpClient
from pymodbus.framer import FramerType

from protocols.modbus.registers import decode_block, plan_reads
from simulators.config import parse_config
from simulators.fleet import start_fleet

pytestmark = pytest.mark.integration


def read_all(url: str, unit: int, model: str) -> dict:
    host, port = url[len("socket://") :].split(":")
    client = ModbusTcpClient(host, port=int(port), framer=FramerType.RTU, timeout=2, retries=0)
    assert client.connect()
    try:
        values: dict = {}
        for block in plan_reads(model):
            if block.function == 4:
                rr = client.read_input_registers(block.address, count=block.count, device_id=unit)
            else:
                rr = client.read_holding_registers(block.address, count=block.count, device_id=unit)
            assert not rr.isError(), rr
            values.update(decode_block(model, block.function, block.address, rr.registers))
        missing = client.read_input_registers(0x7000, count=2, device_id=unit)
        values["_missing_is_error"] = missing.isError()
        return values
    finally:
        client.close()


@pytest.mark.parametrize("model", ["SDM120", "SDM630", "DDSU666", "DTSU666"])
async def test_pymodbus_client_reads_each_model(model):
    config = parse_config(
        {
            "buses": [{"name": "m", "parity": "N", "baud": 9600}],
            "meters": [{"bus": "m", "protocol": "modbus", "model": model, "address": "7"}],
        }
    )
    async with start_fleet(config) as fleet:
        meter = fleet.meter("m:7")
        before = fleet.control.truth_meter("m:7")["import_register_end"]
        values = await asyncio.to_thread(read_all, fleet.endpoints["m"], 7, model)
        after = fleet.control.truth_meter("m:7")["import_register_end"]
        assert before - 0.01 <= float(values["energy.active.import.total"]) <= after + 0.01
        assert 200 < float(values["voltage.a"]) < 240
        assert values["_missing_is_error"]
        assert meter.spec.model == model


async def test_modbus_and_dlt645_meters_share_one_bus():
    from protocols.dlt645 import ReadData, ReadReply

    from ..conftest import serial_transact

    config = parse_config(
        {
            "buses": [{"name": "mix"}],
            "meters": [
                {"bus": "mix", "protocol": "modbus", "model": "SDM120", "address": "3"},
                {"bus": "mix", "address": "202611240001"},
            ],
        }
    )
    async with start_fleet(config) as fleet:
        url = fleet.endpoints["mix"]
        values = await asyncio.to_thread(read_all, url, 3, "SDM120")
        assert float(values["energy.active.import.total"]) > 0
        ex = await asyncio.to_thread(serial_transact, url, ReadData("202611240001", 0x00010000))
        assert isinstance(ex.reply, ReadReply)
