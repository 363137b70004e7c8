"""DL/T 698.45 meters in the simulator, read by Taiqu's own 698 client.

The first tests run the bus over an in-memory link (fast, exact); the last ones open a real
pseudo-terminal with pyserial, as a gateway opens a USB RS-485 adapter, on a bus that mixes
DL/T 698.45, DL/T 645 and Modbus meters.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from protocols.dlt645 import NEED_DATA as NEED_645
from protocols.dlt645 import Master, ReadData, ReadReply
from protocols.dlt698 import (
    NEED_DATA,
    OAD,
    OMD,
    Client,
    ConnectRequest,
    ConnectResponse,
    Data,
    DataType,
    DateTimeS,
    ErrorResponse,
    Frame,
    GetResponseNext,
    GetResponseNormal,
    GetResponseNormalList,
    GetResponseRecord,
    LabMac,
    SecurityResponse,
    Selector1,
    Selector2,
    Selector9,
    Selector10,
    ServerAddress,
    SetResponseNormal,
    decode_value,
    encode_frame,
    frozen_to_readings,
    records_to_events,
)
from protocols.dlt698.apdu import (
    ActionRequestNormal,
    ActionResponseNormal,
    ConnectMechanism,
    TimeTag,
)
from protocols.dlt698.descriptors import ALL_METERS, TI, ScalerUnit
from protocols.dlt698.frame import BROADCAST
from protocols.dlt698.values import close_parameter, trip_parameter
from protocols.model import EventType
from simulators.config import parse_config
from simulators.dlt698.meter import Dlt698Listener
from simulators.fleet import Fleet, start_fleet
from simulators.meter import Relay, total
from taiqu.clock import ManualClock

from ..conftest import BusHarness, open_port

T = DataType
START = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
M698, M645 = "202612060001", "202612069001"


def mixed_config(listen: str = "tcp://127.0.0.1:0", pace: bool = False):  # type: ignore[no-untyped-def]
    return parse_config(
        {
            "buses": [{"name": "bus1", "listen": listen, "baud": 9600, "pace": pace}],
            "meters": [
                {"bus": "bus1", "protocol": "dlt698", "address": M698, "count": 2},
                {"bus": "bus1", "protocol": "dlt645-2007", "address": M645},
                {"bus": "bus1", "protocol": "modbus", "model": "DDSU666", "address": "7"},
                {
                    "bus": "bus1",
                    "protocol": "dlt698",
                    "address": "202612060009",
                    "scenarios": [
                        {"kind": "meter_cover_open", "after_s": 3600, "duration_s": 600},
                        {"kind": "power_down", "after_s": 7200, "duration_s": 60},
                    ],
                },
            ],
        }
    )


class Harness:
    """A fleet on a manual clock, its bus served over memory, a 698 client."""

    def __init__(self) -> None:
        self.clock = ManualClock(START)
        self.fleet = Fleet(mixed_config(), self.clock)
        self.bus = self.fleet.buses["bus1"]
        self.client = Client(security=LabMac(b"laboratory-key-16"))

    async def ask(self, raw: bytes) -> object:
        async with BusHarness(self.bus) as bus:
            reply = await bus.ask(raw)
        self.client.receive_data(reply)
        return self.client.next_event()

    def now(self) -> float:
        return self.clock.now().timestamp()


@pytest.fixture
def h() -> Harness:
    return Harness()


async def test_energy_address_and_clock_match_the_meter(h: Harness) -> None:
    h.clock.advance(5 * 3600)
    meter = h.fleet.meter(M698)
    oads = (OAD(0x0010, 2), OAD(0x4001, 2), OAD(0x4000, 2), OAD(0x2000, 2), OAD(0x2004, 2))
    response = await h.ask(h.client.get_list(M698, oads))
    assert isinstance(response, GetResponseNormalList)
    values: dict[str, Any] = {}
    for result in response.results:
        assert result.data is not None, result
        values.update(decode_value(result.oad, result.data))
    truth = total(meter.registered(h.now())[0])
    assert values["energy.active.import.total"] == Decimal(str(truth)).quantize(
        Decimal("0.01"), "ROUND_DOWN"
    )
    assert values["meter.address"] == M698
    assert values["meter.clock"] == meter.meter_time(h.now()).replace(microsecond=0)
    assert values["voltage.a"] > 200
    assert abs(values["power.active.total"] - Decimal(str(meter.power_kw(h.now())))) < Decimal(
        "0.001"
    )


async def test_scaler_unit_of_numeric_objects(h: Harness) -> None:
    response = await h.ask(h.client.get_list(M698, (OAD(0x0010, 3), OAD(0x2004, 3))))
    assert isinstance(response, GetResponseNormalList)
    assert [r.data.value for r in response.results if r.data] == [
        ScalerUnit(-2, 33),  # kWh
        ScalerUnit(-1, 27),  # W
    ]


async def test_unknown_object_is_a_dar_and_other_meters_stay_silent(h: Harness) -> None:
    response = await h.ask(h.client.get(M698, OAD(0x4444, 2)))
    assert isinstance(response, GetResponseNormal) and response.result.dar == 6
    async with BusHarness(h.bus) as bus:
        assert await bus.ask(h.client.get("202612060005", OAD(0x0010, 2))) == b""
    h.client.abandon()


async def test_daily_freeze_by_freeze_time_and_range(h: Harness) -> None:
    h.clock.advance(3 * 86400 + 3600)
    meter = h.fleet.meter(M698)
    day = meter.frozen(2, h.now())
    assert day is not None
    stamp = Data(T.DATE_TIME_S, DateTimeS.of(day.local_time))
    raw = h.client.get_record(
        M698, OAD(0x5004, 2), Selector1(OAD(0x2021, 2), stamp), (OAD(0x2021, 2), OAD(0x0010, 2))
    )
    response = await h.ask(raw)
    assert isinstance(response, GetResponseRecord) and response.result.rows is not None
    readings = frozen_to_readings(M698, response.result, h.clock.now())
    totals = [r for r in readings if r.quantity == "energy.active.import.total"]
    assert len(totals) == 1
    assert totals[0].freeze_time is not None
    assert totals[0].freeze_time.replace(tzinfo=None) == day.local_time
    assert totals[0].value == Decimal(str(total(day.import_kwh))).quantize(
        Decimal("0.01"), "ROUND_DOWN"
    )
    first = Data(T.DATE_TIME_S, DateTimeS.of(day.local_time - timedelta(days=1)))
    end = Data(T.DATE_TIME_S, DateTimeS.of(day.local_time + timedelta(days=2)))
    ranged = await h.ask(
        h.client.get_record(
            M698, OAD(0x5004, 2), Selector2(OAD(0x2021, 2), first, end, Data(T.TI, TI(3, 1)))
        )
    )
    assert isinstance(ranged, GetResponseRecord) and ranged.result.rows is not None
    times = [row[0].value.to_datetime() for row in ranged.result.rows]
    assert times == sorted(times) and len(times) == 3  # back-fill: oldest first


async def test_cover_and_power_down_events(h: Harness) -> None:
    h.clock.advance(4 * 3600)
    meter_id = "202612060009"
    count = await h.ask(h.client.get(meter_id, OAD(0x301B, 4)))
    assert isinstance(count, GetResponseNormal) and count.result.data == Data(T.LONG_UNSIGNED, 1)
    for oi, kind in ((0x301B, EventType.METER_COVER_OPEN), (0x3011, EventType.POWER_DOWN)):
        response = await h.ask(h.client.get_record(meter_id, OAD(oi, 2), Selector9(1)))
        assert isinstance(response, GetResponseRecord)
        events = records_to_events(meter_id, response.result)
        assert len(events) == 1 and events[0].type is kind
        assert events[0].start is not None and events[0].end is not None
        assert events[0].end > events[0].start


async def test_relay_needs_authority_then_trips_and_reads_back(h: Harness) -> None:
    meter = h.fleet.meter(M698)
    trip = h.client.action(M698, OMD(0x8000, 129), Data(T.NULL))
    refused = await h.ask(trip)
    assert isinstance(refused, ActionResponseNormal) and refused.dar == 15
    bad = await h.ask(
        h.client.connect(M698, ConnectRequest(1, mechanism=ConnectMechanism(1, password="999999")))
    )
    assert isinstance(bad, ConnectResponse) and bad.result == 1
    good = await h.ask(
        h.client.connect(M698, ConnectRequest(2, mechanism=ConnectMechanism(1, password="000000")))
    )
    assert isinstance(good, ConnectResponse) and good.result == 0
    done = await h.ask(h.client.action(M698, OMD(0x8000, 129), Data(T.NULL)))
    assert isinstance(done, ActionResponseNormal) and done.dar == 0
    assert meter.relay(h.now()) == Relay.OPEN
    status = await h.ask(h.client.get(M698, OAD(0x2014, 2)))
    assert isinstance(status, GetResponseNormal) and status.result.data is not None
    assert decode_value(status.result.oad, status.result.data)["relay.state"] == "open"
    await h.ask(h.client.action(M698, OMD(0x8000, 130), Data(T.NULL)))
    assert meter.relay(h.now()) == Relay.CLOSED
    await h.ask(h.client.action(M698, OMD(0x8000, 129), trip_parameter()))
    assert meter.relay(h.now()) == Relay.OPEN
    allowed = await h.ask(h.client.action(M698, OMD(0x8000, 130), close_parameter(direct=False)))
    assert isinstance(allowed, ActionResponseNormal) and allowed.dar == 0
    assert meter.relay(h.now()) == Relay.ARMED  # closes when the customer presses the button


async def test_a_late_trip_is_refused_by_its_time_tag(h: Harness) -> None:
    meter = h.fleet.meter(M698)
    login = ConnectRequest(1, mechanism=ConnectMechanism(1, password="000000"))
    await h.ask(h.client.connect(M698, login))
    sent = meter.meter_time(h.now()).replace(microsecond=0) - timedelta(minutes=10)
    late = ActionRequestNormal(
        h.client.next_piid(),
        OMD(0x8000, 129),
        trip_parameter(),
        TimeTag(DateTimeS.of(sent), TI(1, 5)),
    )
    refused = await h.ask(h.client.send(M698, late))
    assert isinstance(refused, ActionResponseNormal) and refused.dar == 32
    assert meter.relay(h.now()) == Relay.CLOSED
    timely = ActionRequestNormal(
        h.client.next_piid(),
        OMD(0x8000, 129),
        trip_parameter(),
        TimeTag(DateTimeS.of(sent), TI(1, 15)),
    )
    done = await h.ask(h.client.send(M698, timely))
    assert isinstance(done, ActionResponseNormal) and done.dar == 0
    assert meter.relay(h.now()) == Relay.OPEN


async def test_secured_clock_set_without_association(h: Harness) -> None:
    h.fleet.buses["bus1"].listeners = [
        Dlt698Listener(
            [m for m in h.fleet.meters.values() if m.spec.protocol == "dlt698"],
            LabMac(b"laboratory-key-16"),
        )
    ]
    meter = h.fleet.meter(M698)
    target = datetime(2026, 12, 1, 8, 30, 0)
    value = Data(T.DATE_TIME_S, DateTimeS.of(target))
    response = await h.ask(h.client.set(M698, OAD(0x4000, 2), value, secured=True))
    assert isinstance(response, SetResponseNormal) and response.dar == 0
    assert abs((meter.meter_time(h.now()) - target).total_seconds()) < 1
    forged = Client(security=LabMac(b"another-key-16-bytes"))
    h.client = forged
    refused = await h.ask(forged.set(M698, OAD(0x4000, 2), value, secured=True))
    assert isinstance(refused, SecurityResponse) and refused.dar == 23


def _transact(port, client: Client, raw: bytes, wait: float = 2.0) -> object:  # type: ignore[no-untyped-def]
    port.write(raw)
    end = time.monotonic() + wait
    while time.monotonic() < end:
        chunk = port.read(256)
        if chunk:
            client.receive_data(chunk)
            event = client.next_event()
            if event is not NEED_DATA:
                return event
            more = client.data_to_send()
            if more:
                port.write(more)
    client.abandon()
    return None


@pytest.mark.integration
async def test_pty_bus_mixing_698_645_and_modbus() -> None:
    config = mixed_config(listen="pty", pace=True)
    async with start_fleet(config) as fleet:
        path = fleet.endpoints["bus1"]
        assert path.startswith("/dev/pts/")

        def session() -> tuple[object, object, object]:
            port = open_port(path, 9600)
            try:
                client = Client()
                energy = _transact(port, client, client.get(M698, OAD(0x0010, 2)))
                address = _transact(port, client, client.get("AAAAAAAAAAAA", OAD(0x4001, 2)))
                master = Master()
                port.write(master.send(ReadData(M645, 0x00010000)))
                reply = None
                end = time.monotonic() + 2
                while reply is None and time.monotonic() < end:
                    master.receive_data(port.read(256))
                    event = master.next_event()
                    reply = None if event is NEED_645 else event
                return energy, address, reply
            finally:
                port.close()

        energy, address, reply = await asyncio.to_thread(session)
        assert isinstance(energy, GetResponseNormal) and energy.result.data is not None
        assert decode_value(energy.result.oad, energy.result.data)["energy.active.import.total"] > 0
        # three 698 meters match the wildcard: their answers garble the line, nothing decodes
        assert address is None
        assert isinstance(reply, ReadReply)  # the 645 meter on the same bus still answers


async def test_wildcard_read_address_on_a_one_meter_bus() -> None:
    clock = ManualClock(START)
    config = parse_config(
        {
            "buses": [{"name": "bus1", "listen": "tcp://127.0.0.1:0", "pace": False}],
            "meters": [{"bus": "bus1", "protocol": "dlt698", "address": M698}],
        }
    )
    fleet = Fleet(config, clock)
    client = Client()
    async with BusHarness(fleet.buses["bus1"]) as bus:
        client.receive_data(await bus.ask(client.get("AAAAAAAAAAAA", OAD(0x4001, 2))))
    response = client.next_event()
    assert isinstance(response, GetResponseNormal) and response.result.data is not None
    assert response.result.data.value == bytes.fromhex(M698)


async def test_broadcast_time_reaches_every_698_meter_silently(h: Harness) -> None:
    target = datetime(2026, 12, 1, 12, 0, 0)
    raw = h.client.action(BROADCAST, OMD(0x4000, 127), Data(T.DATE_TIME_S, DateTimeS.of(target)))
    async with BusHarness(h.bus) as bus:
        assert await bus.ask(raw) == b""
    for meter in h.fleet.meters.values():
        if meter.spec.protocol == "dlt698":
            assert abs((meter.meter_time(h.now()) - target).total_seconds()) < 1


async def test_garbage_apdu_gets_an_error_response(h: Harness) -> None:
    raw = encode_frame(Frame(0x43, ServerAddress(M698), b"\x05\x07\x01\x02"), 4)
    h.client.get(M698, OAD(0x0010, 2))  # arm an expectation for the same meter
    response = await h.ask(raw)
    assert isinstance(response, ErrorResponse) and response.error == 1


async def test_large_record_is_fragmented_and_reassembled_over_the_bus(h: Harness) -> None:
    meters = [m for m in h.fleet.meters.values() if m.spec.protocol == "dlt698"]
    h.bus.listeners = [Dlt698Listener(meters, fragment_size=64)]
    h.clock.advance(10 * 86400)
    raw = h.client.get_record(M698, OAD(0x5004, 2), Selector10(9, ALL_METERS))
    frames = 0
    async with BusHarness(h.bus) as bus:
        wire = await bus.ask(raw)
        while True:
            frames += 1
            h.client.receive_data(wire)
            event = h.client.next_event()
            if event is not NEED_DATA:
                break
            wire = await bus.ask(h.client.data_to_send())
    assert frames > 3
    assert isinstance(event, GetResponseRecord) and event.result.rows is not None
    assert len(event.result.rows) == 9


async def test_long_back_fill_comes_in_get_next_blocks(h: Harness) -> None:
    meters = [m for m in h.fleet.meters.values() if m.spec.protocol == "dlt698"]
    h.bus.listeners = [Dlt698Listener(meters, block_rows=4)]
    h.clock.advance(12 * 86400)
    rows: list[tuple[Data, ...]] = []
    response = await h.ask(h.client.get_record(M698, OAD(0x5004, 2), Selector10(10, ALL_METERS)))
    blocks = 0
    while isinstance(response, GetResponseNext):
        blocks += 1
        assert response.kind == 2
        rows += response.results[0].rows or ()  # type: ignore[union-attr]
        if response.last:
            break
        response = await h.ask(h.client.get_next(M698, response.block))
    assert blocks == 3 and len(rows) == 10
    stamps = [row[0].value.to_datetime() for row in rows]
    assert stamps == sorted(stamps, reverse=True) and len(set(stamps)) == 10
    after = await h.ask(h.client.get_next(M698, 3))
    assert isinstance(after, GetResponseNext) and after.dar == 11  # nothing being split
