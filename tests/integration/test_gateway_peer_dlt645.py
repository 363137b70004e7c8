"""The gateway reads a meter served by another implementation: the PyPI ``dlt645`` package.

The peer's meter server runs in its own venv (``tests/simulators/test_peer_dlt645.py`` builds
it; without PyPI the test skips and says why).  It has no block support and no daily freezes:
the gateway must fall back to single identifiers without calling the meter unreachable.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from gateway.bus.link import LinkSettings, SerialLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker
from gateway.config import MeterConfig
from gateway.polling import Group, Poller
from gateway.polling.drivers import make_driver
from protocols.model import EventType
from taiqu.clock import ManualClock
from tests.gateway.polling.test_honest import StateStore
from tests.simulators.test_peer_dlt645 import NAMEPLATE, peer_python, peer_server  # noqa: F401

pytestmark = pytest.mark.integration


async def test_the_gateway_reads_the_peer_meter_by_single_identifiers(peer_server) -> None:  # noqa: F811
    link = SerialLink(LinkSettings(f"socket://127.0.0.1:{peer_server}", 2400, "E"))
    worker = BusWorker("bus1", link, LineTiming(2400, 11, response_timeout=1.0), retries=1)
    worker.start()
    store = StateStore()
    clock = ManualClock(datetime(2026, 3, 10, 2, 0, tzinfo=UTC))
    poller = Poller({"bus1": worker}, clock, store, make_driver, zone="Asia/Shanghai", state=store)
    poller.set_meters([MeterConfig(bus="bus1", protocol="dlt645-2007", address=NAMEPLATE)])
    try:
        for _ in range(2):
            energy = await poller.sweep(Group.ENERGY)
            instant = await poller.sweep(Group.INSTANT)
            clock.advance(900)
    finally:
        await worker.stop()
    assert energy.read == 1 and instant.read == 1
    values = store.values()
    assert values["energy.active.import.total"] == Decimal("1234.56")
    assert "voltage.a" in values
    assert EventType.METER_UNREACHABLE not in store.kinds()
    refused = {e.details["identifier"] for e in store.events
               if e.type is EventType.QUANTITY_UNAVAILABLE}
    assert "0001FF00" in refused  # the peer has no blocks: the gateway said so and went single
