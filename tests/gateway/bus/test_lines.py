"""Per-meter line settings: the worker switches the port only when the line changes."""

from __future__ import annotations

import pytest

from gateway.bus.link import Line, LinkSettings, MemoryLink
from gateway.bus.worker import BusWorker
from gateway.polling.dlt645 import request_exchange
from protocols.dlt645 import ReadData, Version
from tests.gateway.bus.test_worker import FAST, meter_responder

ADDRESS = "202611240001"


def test_line_parses_the_nameplate_form_and_refuses_nonsense() -> None:
    assert Line.parse("1200 8E1") == Line(1200, "E", 8, 1)
    assert str(Line.parse("9600-8n1")) == "9600 8N1"
    assert Line.parse("9600 8N1").bits_per_char == 10
    for bad in ("1234 8E1", "9600", "9600 9E1", "9600 8X1"):
        with pytest.raises(ValueError, match="line setting"):
            Line.parse(bad)


class SettingsLink(MemoryLink):
    """A memory link that knows the bus's own line, as a SerialLink does."""

    settings = LinkSettings("memory://", 2400, "E")


async def test_the_port_switches_for_a_meter_with_its_own_line_and_back() -> None:
    link = SettingsLink(meter_responder())
    worker = BusWorker("bus1", link, FAST, retries=0)
    worker.start()
    read = lambda: request_exchange(ReadData(ADDRESS, 0x04000503), Version.V2007, "UTC")  # noqa: E731
    try:
        await worker.transact(read)  # the bus's own line: nothing to switch
        await worker.transact(read, line=Line(1200, "E"))
        await worker.transact(read, line=Line(1200, "E"))  # same again: no switch
        assert worker.timing.baud == 1200 and worker.timing.bits_per_char == 11
        await worker.transact(read, line=Line(9600, "N"))
        assert worker.timing.bits_per_char == 10
        await worker.transact(read)  # back to the bus's line
        assert worker.timing == FAST
    finally:
        await worker.stop()
    assert [str(x) for x in link.lines] == ["1200 8E1", "9600 8N1", "2400 8E1"]
    assert worker.stats.line_switches == 3

