"""A pyserial client on real endpoints (socket:// and a pty): values, silence and wire timing.

Timing is asserted only as a lower bound: a reply never arrives faster than the wire allows
(request bytes + response delay + reply bytes at 11 bits per byte for 8E1).
"""

from __future__ import annotations

import asyncio
import socket
from datetime import datetime
from decimal import Decimal

import pytest

from protocols.dlt645 import BroadcastTimeSync, ReadAddress, ReadData, ReadReply
from simulators.config import parse_config, quick_config
from simulators.fleet import start_fleet
from simulators.meter import total

from .conftest import serial_transact, wait_for

pytestmark = pytest.mark.integration
ENERGY = 0x00010000


def wire_floor(exchange, baud: int, delay_ms: float) -> float:
    byte_time = 11 / baud
    return (exchange.request_len + len(exchange.raw)) * byte_time + delay_ms / 1000


@pytest.mark.parametrize("baud", [2400, 9600])
async def test_every_meter_read_over_socket_never_faster_than_the_wire(baud):
    async with start_fleet(quick_config(meters=3, baud=baud)) as fleet:
        url = fleet.endpoints["bus1"]
        assert url.startswith("socket://127.0.0.1:")
        for meter in fleet.meters.values():
            before = total(meter.registered(fleet.clock.now().timestamp())[0])
            ex = await asyncio.to_thread(
                serial_transact, url, ReadData(meter.address, ENERGY), baud
            )
            after = total(meter.registered(fleet.clock.now().timestamp())[0])
            assert isinstance(ex.reply, ReadReply), ex
            value = ex.reply.values["energy.active.import.total"]
            assert (
                Decimal(str(before)).quantize(Decimal("0.01"), "ROUND_DOWN")
                <= value
                <= Decimal(str(after))
            )
            assert ex.elapsed >= wire_floor(ex, baud, meter.spec.response_delay_ms)


async def test_a_pty_reads_like_a_usb_adapter():
    config = quick_config(meters=2, listen="tcp://127.0.0.1:0")
    config.buses[0].listen = "pty"
    async with start_fleet(config) as fleet:
        path = fleet.endpoints["bus1"]
        assert path.startswith("/dev/pts/")
        for meter in fleet.meters.values():
            ex = await asyncio.to_thread(serial_transact, path, ReadData(meter.address, 0x02010100))
            assert isinstance(ex.reply, ReadReply)
            assert 200 < ex.reply.values["voltage.a"] < 240
            assert ex.elapsed >= wire_floor(ex, 2400, meter.spec.response_delay_ms)


async def test_unknown_addresses_and_broadcasts_get_silence():
    async with start_fleet(quick_config(meters=2)) as fleet:
        url = fleet.endpoints["bus1"]
        ex = await asyncio.to_thread(
            serial_transact, url, ReadData("123456789012", ENERGY), 2400, 0.6
        )
        assert ex.reply is None and ex.raw == b""
        when = datetime(2026, 5, 5, 12, 0, 0)
        ex = await asyncio.to_thread(serial_transact, url, BroadcastTimeSync(when), 2400, 0.6)
        assert ex.raw == b""
        for meter in fleet.meters.values():  # the broadcast set every clock
            shown = meter.meter_time(fleet.clock.now().timestamp())
            assert abs((shown - when).total_seconds()) < 5


async def test_two_talkers_garble_the_line():
    async with start_fleet(quick_config(meters=2)) as fleet:
        ex = await asyncio.to_thread(
            serial_transact, fleet.endpoints["bus1"], ReadAddress(), 2400, 0.8
        )
        assert ex.raw and ex.reply is None  # both meters answered AA…AA at once


async def test_a_single_meter_answers_read_address():
    async with start_fleet(quick_config(meters=1)) as fleet:
        ex = await asyncio.to_thread(serial_transact, fleet.endpoints["bus1"], ReadAddress())
        assert ex.reply is not None and ex.reply.address == "202611240001"


async def test_one_client_at_a_time_per_bus():
    import serial

    async with start_fleet(quick_config(meters=1)) as fleet:
        url = fleet.endpoints["bus1"]
        first = serial.serial_for_url(url, timeout=0.05)
        try:
            endpoint = fleet._endpoints["bus1"]
            await wait_for(lambda: endpoint.busy)
            host, port = url[len("socket://") :].split(":")

            def second_client() -> bytes:
                with socket.create_connection((host, int(port)), timeout=2) as sock:
                    try:
                        return sock.recv(16)  # b"": closed by the simulator, the line is taken
                    except ConnectionResetError:
                        return b""

            assert await asyncio.to_thread(second_client) == b""
        finally:
            first.close()
        ex = await asyncio.to_thread(serial_transact, url, ReadData("202611240001", ENERGY))
        assert isinstance(ex.reply, ReadReply)  # free again once the first client left


async def test_config_file_endpoints_and_areas(tmp_path):
    config = parse_config(
        {
            "areas": [{"name": "north", "technical_loss": 0.05}],
            "buses": [
                {"name": "b1", "area": "north"},
                {"name": "b2", "area": "north", "listen": "pty"},
            ],
            "meters": [
                {"bus": "b1", "address": "000000000001", "count": 2},
                {"bus": "b2", "address": "000000000101", "protocol": "dlt645-1997"},
            ],
        }
    )
    async with start_fleet(config) as fleet:
        assert fleet.endpoints["b1"].startswith("socket://")
        assert fleet.endpoints["b2"].startswith("/dev/pts/")
        assert sorted(m.id for m in fleet.areas["north"].customers) == [
            "000000000001",
            "000000000002",
            "000000000101",
        ]
        from protocols.dlt645 import Master, Version

        master = Master(Version.V1997)
        ex = await asyncio.to_thread(
            serial_transact,
            fleet.endpoints["b2"],
            ReadData("000000000101", 0x9010),
            2400,
            1.5,
            master,
        )
        assert isinstance(ex.reply, ReadReply) and ex.reply.values["energy.active.import.total"] > 0
