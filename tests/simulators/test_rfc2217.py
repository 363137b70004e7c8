"""RFC 2217: pyserial's own client (``serial_for_url("rfc2217://…")``) against a simulated bus.

The client's baud rate and character format reach the bus; a meter answers only a master at its
own settings, otherwise both directions are noise (``simulators.line``), on every try alike.
"""

from __future__ import annotations

import asyncio
import time

import pytest
import serial

from protocols.dlt645 import NEED_DATA, Master, ReadData, ReadReply
from simulators.config import parse_config
from simulators.fleet import start_fleet

pytestmark = [
    pytest.mark.integration,
    # pyserial 3.5's RFC 2217 client names its reader thread with deprecated threading calls
    pytest.mark.filterwarnings("ignore::DeprecationWarning:serial.rfc2217"),
]
ENERGY = 0x00010000


def _fleet(**bus: object):
    return parse_config(
        {
            "buses": [{"name": "bus1", "baud": 2400, "parity": "E", "pace": False, **bus}],
            "meters": [
                {"bus": "bus1", "address": "202611240001"},
                {"bus": "bus1", "address": "199700000001", "personality": "dlt645-1997"},
            ],
        }
    )


def _read(
    url: str, address: str, di: int, baud: int, parity: str, version=None, wait: float = 1.0
) -> tuple:
    """Open with pyserial's RFC 2217 client, send one read, return (reply, raw bytes)."""
    master = Master() if version is None else Master(version)
    port = serial.serial_for_url(url, baudrate=baud, parity=parity, timeout=0.05)
    try:
        port.write(master.send(ReadData(address, di)))
        raw = b""
        end = time.monotonic() + wait
        while time.monotonic() < end:
            chunk = port.read(256)
            raw += chunk
            if chunk:
                master.receive_data(chunk)
                event = master.next_event()
                if event is not NEED_DATA:
                    return event, raw
        return None, raw
    finally:
        port.close()


async def test_the_client_settings_reach_the_bus_and_decide_who_answers():
    from protocols.dlt645 import Version

    async with start_fleet(_fleet()) as fleet:
        url = fleet.rfc2217["bus1"]
        assert url.startswith("rfc2217://127.0.0.1:")
        bus = fleet.buses["bus1"]
        reply, _ = await asyncio.to_thread(_read, url, "202611240001", ENERGY, 2400, "E")
        assert isinstance(reply, ReadReply) and "energy.active.import.total" in reply.values
        assert str(bus.master_line) == "2400 8E1"
        # the 1997 meter sits at 1200 8E1: silent noise at 2400, a clean reply at 1200
        reply, raw = await asyncio.to_thread(
            _read, url, "199700000001", 0x9010, 2400, "E", Version.V1997, 0.4
        )
        assert reply is None and b"\x68" not in raw
        reply, _ = await asyncio.to_thread(
            _read, url, "199700000001", 0x9010, 1200, "E", Version.V1997
        )
        assert isinstance(reply, ReadReply) and reply.values["energy.active.import.total"] > 0
        assert str(bus.master_line) == "1200 8E1"


@pytest.mark.parametrize(("baud", "parity"), [(9600, "E"), (2400, "N"), (2400, "O"), (1200, "E")])
async def test_a_2007_meter_at_2400_8E1_never_answers_other_settings(baud, parity):
    async with start_fleet(_fleet()) as fleet:
        url = fleet.rfc2217["bus1"]
        for _ in range(2):  # deterministic: the same every time
            reply, raw = await asyncio.to_thread(
                _read, url, "202611240001", ENERGY, baud, parity, None, 0.4
            )
            assert reply is None
            assert b"\x68" not in raw  # what comes back is noise, never a frame
        assert fleet.buses["bus1"].garbled_bytes > 0
        assert fleet.meters["202611240001"].reads == {}  # it never understood a request


async def test_one_master_at_a_time_across_socket_and_rfc2217():
    async with start_fleet(_fleet()) as fleet:
        first = await asyncio.to_thread(
            serial.serial_for_url, fleet.rfc2217["bus1"], baudrate=2400, parity="E"
        )
        try:
            host, port = fleet.endpoints["bus1"].removeprefix("socket://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(Master().send(ReadData("202611240001", ENERGY)))
            try:
                assert await asyncio.wait_for(reader.read(64), 2) == b""  # closed at once
            except ConnectionResetError:
                pass
            finally:
                writer.close()
        finally:
            first.close()


async def test_rfc2217_can_be_switched_off():
    async with start_fleet(_fleet(rfc2217="")) as fleet:
        assert fleet.rfc2217 == {}


async def test_telnet_garbage_does_not_take_the_bus_down():
    import random

    rng = random.Random(7)
    iac = bytes([255])
    junk = [
        bytes(rng.randrange(256) for _ in range(300)),
        iac + bytes([250, 44, 1]) + b"\x00\x00" + iac + bytes([240]),  # SET-BAUDRATE 0: refused
        iac + bytes([250, 44, 2, 99]) + iac + bytes([240]),  # data size 99
        iac + bytes([250, 44]) + bytes(rng.randrange(256) for _ in range(50)),  # never ends
    ]
    async with start_fleet(_fleet()) as fleet:
        host, port = fleet.rfc2217["bus1"].removeprefix("rfc2217://").split(":")
        for chunk in junk:
            _reader, writer = await asyncio.open_connection(host, int(port))
            writer.write(chunk)
            await writer.drain()
            await asyncio.sleep(0.05)
            writer.close()
            await writer.wait_closed()
            await asyncio.sleep(0.05)
        reply, _ = await asyncio.to_thread(
            _read, fleet.rfc2217["bus1"], "202611240001", ENERGY, 2400, "E"
        )
        assert isinstance(reply, ReadReply)
