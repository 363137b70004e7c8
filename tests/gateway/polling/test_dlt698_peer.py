"""The gateway's 698 driver reads a meter served by an independent implementation: the PyPI
``dlt698`` package's server (its own cached venv, ``tests.protocols.dlt698.test_peer``), over a
``socket://`` link as a bus worker opens it."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from gateway.bus.link import LinkSettings, open_serial
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker, Priority
from gateway.config import MeterConfig
from gateway.polling import Group, Poller
from gateway.polling.dlt698 import Dlt698Driver
from gateway.polling.drivers import make_driver
from taiqu.clock import ManualClock
from tests.gateway.polling.test_dlt698 import Store
from tests.protocols.dlt698.test_peer import METER, peer_python, peer_server  # noqa: F401

TIMING = LineTiming(baud=115200, bits_per_char=10, response_timeout=1.0)


async def test_the_driver_reads_energy_clock_and_address_from_the_peer_server(
    peer_server: int,  # noqa: F811
) -> None:
    link = open_serial(LinkSettings(f"socket://127.0.0.1:{peer_server}"))
    worker = BusWorker("peer", link, TIMING, retries=1)
    worker.start()
    store = Store()
    poller = Poller(
        {"peer": worker},
        ManualClock(datetime(2026, 12, 6, 2, 0, tzinfo=UTC)),
        store,
        make_driver,
        zone="Asia/Shanghai",
        state=store,
    )
    poller.set_meters([MeterConfig(bus="peer", protocol="dlt698", address=METER)])
    try:
        report = await poller.sweep(Group.ENERGY)
        assert (report.read, report.failed) == (1, 0), report.visits
        values = report.visits[0].values
        assert values["energy.active.import.total"] == Decimal("1234.56")
        assert values["energy.active.import.t4"] == Decimal("0.04")
        got = await poller.meters[METER].read_items(
            poller.meters[METER].driver.items_for(["meter.clock", "meter.address"]),
            Priority.ON_DEMAND,
            [],
        )
        assert got.values["meter.clock"] == datetime(2026, 12, 6, 10, 0, 0)
        assert got.values["meter.address"] == METER
        driver = poller.meters[METER].driver
        assert isinstance(driver, Dlt698Driver)
        # the peer answers a read outside an association with ERROR-Response 2: the driver
        # opened a public association in the same exchange and keeps it
        assert driver.association_required
    finally:
        await worker.stop()
