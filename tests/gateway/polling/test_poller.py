"""Bus worker and poller against in-memory links with real Modbus codecs in the slave role."""

from __future__ import annotations

import asyncio
import time
from decimal import Decimal

import pytest

from gateway.bus.link import LinkError, MemoryLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker, Priority, TransactionError, TransactionTimeout
from gateway.config import MeterConfig
from gateway.polling import Group, MeterUnavailable, Poller
from gateway.polling.modbus import ModbusDriver
from protocols.modbus.pdu import ModbusSlave, ReadRegisters, RegistersResponse
from protocols.modbus.registers import encode_values, read_image
from protocols.model import EventType, ReadingKind
from taiqu.clock import ManualClock

MODEL = "SDM630"
FAST = LineTiming(baud=115200, bits_per_char=10, response_timeout=0.05)


class Fleet:
    """Modbus meters behind one in-memory link (unit id -> energy)."""

    def __init__(self, energies: dict[int, str]) -> None:
        self.energy = dict(energies)
        self.silent: set[int] = set()
        self.requests: list[int] = []

    def __call__(self, request: bytes) -> bytes | None:
        slave = ModbusSlave()
        slave.receive_data(request)
        event = slave.next_event()
        assert isinstance(event, ReadRegisters)
        self.requests.append(event.unit)
        if event.unit not in self.energy or event.unit in self.silent:
            return None
        image = encode_values(
            MODEL,
            {
                "energy.active.import.total": Decimal(self.energy[event.unit]),
                "energy.active.export.total": Decimal("0"),
                "voltage.a": Decimal("230.1"),
            },
        )
        regs = read_image(image, event.function, event.address, event.count)
        return slave.send(RegistersResponse(event.unit, event.function, tuple(regs)))


class Sink:
    def __init__(self) -> None:
        self.readings: list = []
        self.events: list = []
        self.state: dict[str, str] = {}

    def append_readings(self, readings, command=None):
        self.readings += readings

    def append_events(self, events):
        self.events += events

    def get_state(self, key):
        return self.state.get(key)

    def set_state(self, key, value):
        self.state[key] = value


def meter(unit: int, bus: str = "bus1", role: str = "customer") -> MeterConfig:
    return MeterConfig(
        id=f"{bus}:{unit}", bus=bus, protocol="modbus", address=str(unit), model=MODEL, role=role
    )


@pytest.fixture
async def setup():
    fleet = Fleet({1: "100.50", 2: "200.25", 3: "7.00"})
    link = MemoryLink(fleet)
    worker = BusWorker("bus1", link, FAST, retries=1, reopen_delay=0.05)
    worker.start()
    clock = ManualClock()
    sink = Sink()
    poller = Poller({"bus1": worker}, clock, sink, ModbusDriver, zone="Asia/Shanghai", state=sink)
    poller.set_meters([meter(1), meter(2), meter(3, role="area_total")])
    yield fleet, link, worker, clock, sink, poller
    await worker.stop()


async def test_energy_sweep_reads_every_meter_area_total_first(setup):
    fleet, _, _, clock, sink, poller = setup
    report = await poller.sweep(Group.ENERGY)
    assert (report.read, report.failed) == (3, 0)
    assert fleet.requests[0] == 3  # the area total meter leads the sweep
    totals = {r.meter: r.value for r in sink.readings if r.quantity == "energy.active.import.total"}
    assert totals == {
        "bus1:1": Decimal("100.50"),
        "bus1:2": Decimal("200.25"),
        "bus1:3": Decimal("7.00"),
    }
    assert all(
        r.kind is ReadingKind.INTERVAL and r.gateway_time == clock.now() for r in sink.readings
    )


async def test_silent_meter_backs_off_and_is_logged_once(setup, caplog):
    fleet, _, worker, clock, sink, poller = setup
    fleet.silent.add(2)
    for _ in range(3):
        report = await poller.sweep(Group.ENERGY)
        clock.advance(10)
    # first sweep: one failure (two attempts); later sweeps skip it during its back-off
    assert report.skipped == 1
    assert fleet.requests.count(2) == 2
    unreachable = [e for e in sink.events if e.type is EventType.METER_UNREACHABLE]
    assert [e.meter for e in unreachable] == ["bus1:2"]
    assert sum("stopped answering" in r.message for r in caplog.records) == 1
    assert worker.stats.timeouts == 2 and worker.stats.retries == 1
    fleet.silent.clear()
    clock.advance(3600)
    await poller.sweep(Group.ENERGY)
    recovered = [e for e in sink.events if e.type is EventType.METER_RECOVERED]
    assert [e.meter for e in recovered] == ["bus1:2"]
    assert not poller.meters["bus1:2"].state.failing


async def test_on_demand_read_jumps_the_queue(setup):
    fleet, *_, poller = setup
    # queue ten scheduled transactions, then one on-demand read: it runs second at the latest
    scheduled = [
        asyncio.ensure_future(
            poller.meters["bus1:1"].read_items(
                poller.meters["bus1:1"].driver.plan(Group.ENERGY), Priority.SCHEDULED, []
            )
        )
        for _ in range(10)
    ]
    await asyncio.sleep(0)
    urgent = asyncio.ensure_future(poller.read_now("bus1:2", ["energy.active.import.total"]))
    await asyncio.gather(urgent, *scheduled)
    assert fleet.requests.index(2) <= 1
    assert urgent.result()[0].kind is ReadingKind.ON_DEMAND


async def test_on_demand_read_of_a_silent_meter_raises(setup):
    fleet, *_, poller = setup
    fleet.silent.add(1)
    with pytest.raises(MeterUnavailable):
        await poller.read_now("bus1:1")


async def test_timeout_is_never_shorter_than_the_wire():
    link = MemoryLink(lambda req: None)
    timing = LineTiming(baud=9600, bits_per_char=11, response_timeout=0.03)
    worker = BusWorker("b", link, timing, retries=0)
    worker.start()
    driver = ModbusDriver(meter(1), "Asia/Shanghai")
    item = driver.plan(Group.ENERGY)[0]
    t0 = time.monotonic()
    with pytest.raises(TransactionTimeout):
        await worker.transact(lambda: driver.exchange(item))
    assert time.monotonic() - t0 >= timing.wire_time(8) + 0.03
    await worker.stop()


async def test_garbage_is_retried_then_reported():
    link = MemoryLink(lambda req: b"\x01\x04\x08" + b"\x00" * 10)  # right header, bad CRC
    worker = BusWorker("b", link, FAST, retries=2)
    worker.start()
    driver = ModbusDriver(meter(1), "Asia/Shanghai")
    item = driver.plan(Group.ENERGY)[0]
    with pytest.raises(TransactionError):
        await worker.transact(lambda: driver.exchange(item))
    assert len(link.written) == 3
    await worker.stop()


async def test_noise_before_the_reply_is_skipped(setup):
    _, link, *_, poller = setup
    link.noise = b"\xff\x13\x37\x00"
    readings = await poller.read_now("bus1:1", ["energy.active.import.total"])
    assert readings[0].value == Decimal("100.50")


async def test_lost_link_fails_fast_without_blaming_meters(setup):
    _, link, worker, _, _, poller = setup
    link.fail = True
    report = await poller.sweep(Group.ENERGY)
    assert report.failed == 3
    assert not any(mp.state.failing for mp in poller.meters.values())
    assert not worker.stats.link_up
    link.fail = False
    deadline = time.monotonic() + 5
    while True:  # the worker re-opens the link after its delay
        report = await poller.sweep(Group.ENERGY)
        if report.read == 3 or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.02)
    assert report.read == 3


async def test_archive_update_keeps_state_of_unchanged_meters(setup):
    *_, poller = setup
    before = poller.meters["bus1:1"]
    poller.set_meters([meter(1), meter(9)])
    assert poller.meters["bus1:1"] is before
    assert set(poller.meters) == {"bus1:1", "bus1:9"}


def test_link_error_is_the_gateway_error():
    from gateway.errors import GatewayError

    assert issubclass(LinkError, GatewayError)
