"""Wildcard addressing on a byte-timed bus (collisions garble the line) and the bus tap."""

from __future__ import annotations

import asyncio
from typing import Any

from protocols.dlt645 import AddressReply, Master, ReadAddress, ReadData, ReadReply, Version
from protocols.dlt645.stream import StreamDecoder
from simulators.config import parse_config
from simulators.fleet import Fleet, start_fleet
from taiqu.clock import ManualClock

from .conftest import BusHarness
from .zoo import START, ask

A1, A2, A3 = "202611240011", "202611240021", "202611249032"


def _bus(*rows: dict[str, Any], pace: bool = True, baud: int = 9600, tap: str = "") -> Fleet:
    meters = [{"bus": "b", **row} for row in rows]
    config = parse_config(
        {"buses": [{"name": "b", "pace": pace, "baud": baud, "tap": tap}], "meters": meters}
    )
    return Fleet(config, ManualClock(START))


def _frames(raw: bytes) -> tuple[list[str], StreamDecoder]:
    stream = StreamDecoder()
    stream.feed(raw)
    stream.feed_eof()
    return [f.address for f in stream if f.from_meter], stream


async def test_one_meter_answers_the_wildcard_with_its_address() -> None:
    fleet = _bus({"address": A1})
    async with BusHarness(fleet.buses["b"]) as h:
        reply, _ = await ask(h, ReadAddress())
    assert reply == AddressReply(A1, Version.V2007)


async def test_two_meters_at_the_same_delay_garble_the_reply() -> None:
    fleet = _bus({"address": A1}, {"address": A2})
    async with BusHarness(fleet.buses["b"]) as h:
        reply, raw = await ask(h, ReadAddress())
    addresses, stream = _frames(raw)
    assert reply is None and addresses == []  # AND-ed frames: no valid frame is left
    assert stream.bad_checksums or stream.dropped_bytes
    assert len(raw) == 22  # both replies overlap byte for byte on the timed line


async def test_meters_at_different_delays_answer_one_after_the_other() -> None:
    fleet = _bus({"address": A1}, {"address": A3, "response_delay_ms": 200})
    async with BusHarness(fleet.buses["b"]) as h:
        _, raw = await ask(h, ReadAddress())
    assert _frames(raw)[0] == [A1, A3]


async def test_abbreviated_address_reads_reach_only_matching_meters() -> None:
    fleet = _bus({"address": A1}, {"address": A2}, {"address": A3})
    async with BusHarness(fleet.buses["b"]) as h:
        one, _ = await ask(h, ReadData("AAAAAAAAAA11", 0x04000401))
        two, raw = await ask(h, ReadData("AAAAAAAAAAA1", 0x04000401))
        none, silent = await ask(h, ReadData("AAAAAAAAAA99", 0x04000401))
    assert isinstance(one, ReadReply) and one.address == A1
    assert one.values["meter.address"] == A1
    assert two is None and _frames(raw)[0] == []  # A1 and A2 both end in 1: garbled
    assert none is None and silent == b""


async def test_a_1997_meter_answers_a_wildcard_meter_number_read() -> None:
    fleet = _bus({"address": A3, "protocol": "dlt645-1997"})
    async with BusHarness(fleet.buses["b"]) as h:
        reply, _ = await ask(h, ReadData("AAAAAAAAAAAA", 0xC032), Version.V1997)
    assert isinstance(reply, ReadReply) and reply.address == A3


async def test_the_tap_copies_both_directions_in_wire_order() -> None:
    fleet = _bus({"address": A1}, pace=False, tap="127.0.0.1:0")
    async with start_fleet(fleet.config, fleet.clock) as running:
        tap_host, tap_port = running.taps["b"].removeprefix("socket://").split(":")
        host, port = running.endpoints["b"].removeprefix("socket://").split(":")
        sniffer = await asyncio.open_connection(tap_host, int(tap_port))
        master = await asyncio.open_connection(host, int(port))
        await asyncio.sleep(0.05)  # the tap has its client
        request = Master().send(ReadData(A1, 0x00010000))
        master[1].write(request)
        reply = await asyncio.wait_for(master[0].read(100), 2)
        seen = b""
        while len(seen) < len(request) + len(reply):
            seen += await asyncio.wait_for(sniffer[0].read(200), 2)
        sniffer[1].write(b"ignored: a sniffer does not talk")
        master[1].close()
        sniffer[1].close()
    assert seen == request + reply
    assert _frames(seen)[0] == [A1]


def test_serve_rejects_a_malformed_tap() -> None:
    from typer.testing import CliRunner

    from simulators.cli import app

    result = CliRunner().invoke(app, ["serve", "--control", "", "--tap", "nonsense"])
    assert result.exit_code == 2 and "--tap 'nonsense' must be HOST:PORT" in result.output
