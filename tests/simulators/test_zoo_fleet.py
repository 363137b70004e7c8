"""The shipped zoo fleet: every personality on one bus, each read at its own line settings
through one RFC 2217 client that switches its port between meters (as a gateway will)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest
import serial

from protocols.dlt645 import NEED_DATA, Master, ReadData, ReadReply, Version
from protocols.modbus.pdu import NEED_DATA as MODBUS_NEED_DATA
from protocols.modbus.pdu import ModbusMaster, ReadRegisters, RegistersResponse
from protocols.modbus.registers import load_map
from simulators.config import load_config
from simulators.fleet import start_fleet
from simulators.personalities import names

pytestmark = [
    pytest.mark.integration,
    pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217"),
]
ZOO = Path(__file__).parents[2] / "examples" / "zoo-fleet.toml"


def _transact(port: serial.SerialBase, frame: bytes, feed, done) -> object:
    port.reset_input_buffer()
    port.write(frame)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        chunk = port.read(256)
        if chunk:
            feed(chunk)
            event = done()
            if event is not None:
                return event
    return None


def read_every_meter(url: str, meters: list[dict]) -> dict[str, object]:
    """One RFC 2217 client; the port is set to each meter's line settings before its read."""
    port = serial.serial_for_url(url, baudrate=2400, parity="E", timeout=0.05)
    out: dict[str, object] = {}
    try:
        for m in meters:
            baud, fmt = m["line"].split()
            port.baudrate, port.parity = int(baud), fmt[1]
            if m["protocol"] == "modbus":
                row = load_map(m["model"]).register("voltage.a")
                master = ModbusMaster()
                frame = master.send(
                    ReadRegisters(int(m["address"]), row.function, row.address, row.words)
                )

                def done(master=master):
                    event = master.next_event()
                    return None if event is MODBUS_NEED_DATA else event

                out[m["id"]] = _transact(port, frame, master.receive_data, done)
            else:
                version = Version.V1997 if m["protocol"] == "dlt645-1997" else Version.V2007
                di = 0x9010 if version is Version.V1997 else 0x00010000
                dlt = Master(version)
                frame = dlt.send(ReadData(m["address"], di))

                def done(dlt=dlt):
                    event = dlt.next_event()
                    return None if event is NEED_DATA else event

                out[m["id"]] = _transact(port, frame, dlt.receive_data, done)
    finally:
        port.close()
    return out


async def test_every_personality_is_in_the_zoo_and_answers_at_its_own_settings():
    config = load_config(ZOO)
    config.control = ""
    config.buses[0].listen = "tcp://127.0.0.1:0"
    config.buses[0].rfc2217 = "127.0.0.1:0"
    config.buses[0].pace = False
    async with start_fleet(config) as fleet:
        assert {m.spec.personality.name for m in fleet.meters.values()} == set(names())
        line = fleet.control.line("zoo")
        assert line["meters"]["199700000001"] == "1200 8E1"
        assert line["meters"]["zoo:11"] == "9600 8N1"
        rows = fleet.control.meters()
        assert all(row["line"] == line["meters"][row["id"]] for row in rows)
        got = await asyncio.to_thread(read_every_meter, fleet.rfc2217["zoo"], rows)
    for ident, reply in got.items():
        assert isinstance(reply, ReadReply | RegistersResponse), ident
