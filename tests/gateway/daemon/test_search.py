"""The gateway's nightly search: meters on a bus the archive does not know become events."""

from __future__ import annotations

from datetime import UTC, datetime

from gateway.bus.link import LinkSettings, SerialLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker
from gateway.config import MeterConfig
from gateway.config.models import SearchConfig
from gateway.daemon.search import search_all
from protocols.model import EventType
from taiqu.clock import ManualClock
from tests.gateway.field.conftest import running_fleet
from tests.gateway.field.test_search import crowded_addresses

WINDOW = LineTiming(2400, 11, response_timeout=0.04)  # an unpaced simulated bus answers at once


class Sink:
    def __init__(self) -> None:
        self.events: list = []

    def append_events(self, events) -> None:
        self.events += events


async def test_the_search_reports_every_meter_the_archive_lacks_and_nothing_else() -> None:
    # two meters share all but their last digit: one collision, then ten single-digit patterns
    addresses = ["202611240001", "202611240002", "202611250003", "202611260004"]
    archived, unknown = addresses[:2], addresses[2:]
    meters = [{"bus": "b", "address": a, "protocol": "dlt645-2007"} for a in addresses]
    with running_fleet([{"name": "b", "pace": False}], meters) as fleet:
        worker = BusWorker("b", SerialLink(LinkSettings(fleet.endpoints["b"], 2400)), WINDOW,
                           retries=0)
        worker.start()
        sink = Sink()
        try:
            runs = await search_all(
                {"b": worker},
                [MeterConfig(bus="b", protocol="dlt645-2007", address=a) for a in archived],
                SearchConfig(enabled=True, max_seconds=120),
                ManualClock(datetime(2026, 3, 10, 19, 30, tzinfo=UTC)),
                sink,
            )
        finally:
            await worker.stop()
    (run,) = runs
    assert run.finished and run.found == sorted(addresses)
    assert sorted(run.unknown) == sorted(unknown)
    assert [e.type for e in sink.events] == [EventType.UNREGISTERED_METER] * len(unknown)
    assert {e.meter for e in sink.events} == set(unknown)
    assert all(e.details["bus"] == "b" for e in sink.events)


async def test_the_search_stops_when_its_bus_time_is_used_up() -> None:
    meters = [{"bus": "b", "address": a, "protocol": "dlt645-2007"} for a in crowded_addresses(6)]
    with running_fleet([{"name": "b", "pace": False}], meters) as fleet:
        worker = BusWorker("b", SerialLink(LinkSettings(fleet.endpoints["b"], 2400)), WINDOW,
                           retries=0)
        worker.start()
        try:
            (run,) = await search_all(
                {"b": worker}, [], SearchConfig(max_seconds=0.2),
                ManualClock(datetime(2026, 3, 10, 19, 30, tzinfo=UTC)), Sink(),
            )
        finally:
            await worker.stop()
    assert not run.finished and run.probes >= 1
