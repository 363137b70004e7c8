"""The gateway reads DL/T 698.45 meters over a real socket:// bus shared with DL/T 645 and Modbus
meters (the simulator's TCP endpoint, pyserial's socket:// URL), and its batches reach a
head-end subscriber through a real mosquitto broker.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from gateway.config import GatewayConfig, parse_config
from gateway.daemon.app import Gateway
from gateway.polling import Group
from gateway.polling.frozen import FrozenReader
from protocols.model import DEFAULT_METER_ZONE, EventType, MeterTime, ReadingKind
from protocols.uplink import Batch, EventRecord, decode_message, encode
from protocols.uplink.messages import Command, CommandAction, CommandResult
from protocols.uplink.topics import Topics

from .test_gateway_fleet import HeadEnd, wait_for

pytestmark = pytest.mark.integration
simulators = pytest.importorskip("simulators.fleet")
from simulators.config import parse_config as parse_fleet  # noqa: E402
from simulators.meter import total  # noqa: E402
from taiqu.clock import ManualClock  # noqa: E402

GW = "gw-698"
M698, COVERED, M645 = "202612060001", "202612060002", "202612069001"
TOTAL = "energy.active.import.total"


class EventsHeadEnd(HeadEnd):
    """The test head-end that also keeps the events and command results it receives."""

    def __init__(self, host: str, port: int) -> None:
        self.events: list[EventRecord] = []
        self.results: list[CommandResult] = []
        self.event_lock = threading.Lock()
        super().__init__(host, port)
        self.client.subscribe(Topics(GW).result, qos=1)

    def _message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        _, kind, message = decode_message(msg.topic, bytes(msg.payload))
        with self.event_lock:
            if kind == "data" and isinstance(message, Batch):
                self.events += [r for r in message.records if isinstance(r, EventRecord)]
            if isinstance(message, CommandResult):
                self.results.append(message)
        super()._message(client, userdata, msg)

    def send(self, command: Command) -> None:
        self.client.publish(Topics(GW).cmd, encode(command), qos=1).wait_for_publish(5)

    def final(self, command_id: str, meter: str) -> CommandResult | None:
        with self.event_lock:
            done = [r for r in self.results if r.id == command_id and r.meter == meter]
        terminal = ("executed", "failed", "refused")
        return next((r for r in reversed(done) if r.state.value in terminal), None)


def fleet_config() -> Any:
    return parse_fleet(
        {
            "areas": [{"name": "a1", "gateway_id": GW}],
            "buses": [{"name": "bus1", "area": "a1", "baud": 9600, "parity": "E"}],
            "meters": [
                {"bus": "bus1", "protocol": "dlt698", "address": M698, "count": 2},
                {"bus": "bus1", "protocol": "dlt645-2007", "address": M645},
                {"bus": "bus1", "protocol": "modbus", "model": "DDSU666", "address": "7"},
            ],
        },
        "mixed 698 fleet",
    )


def gateway_config(fleet: Any, broker: Any, data_dir: Path) -> GatewayConfig:
    meters = []
    for ident, meter in fleet.meters.items():
        spec = meter.spec
        meters.append(
            {
                "id": ident,
                "bus": "bus1",
                "protocol": spec.protocol,
                "address": ident.split(":")[-1] if spec.protocol == "modbus" else spec.address,
                "model": getattr(spec, "model", "") or "",
            }
        )
    doc = {
        "gateway_id": GW,
        "data_dir": str(data_dir),
        "broker": {"host": broker.host, "port": broker.port},
        "schedule": {"energy_minutes": 15, "events_minutes": 0, "backfill_days": 0},
        "signatures": {"required": False},
        "clock_trust": {"source": "trusted"},  # relay commands need a trusted gateway clock
        "buses": [
            {
                "name": "bus1",
                "port": fleet.endpoints["bus1"],
                "baud": 9600,
                "parity": "E",
                "response_timeout_ms": 300,
                "retries": 1,
            }
        ],
        "meters": meters,
    }
    return parse_config(doc, Path("test-gateway.toml"))


@pytest.fixture
async def rig(mosquitto: Any, tmp_path: Any) -> Any:
    # the meters have kept four days of history; their clocks are at the real time
    clock = ManualClock(datetime.now(UTC).replace(microsecond=0) - timedelta(days=4))
    async with simulators.start_fleet(fleet_config(), clock) as fleet:
        clock.advance(4 * 86400)
        headend = EventsHeadEnd(mosquitto.host, mosquitto.port)
        cfg = gateway_config(fleet, mosquitto, tmp_path / "gw")
        gateway = Gateway(cfg, config_path=tmp_path / "gw.toml")
        await gateway.start()
        try:
            yield fleet, clock, gateway, headend
        finally:
            await gateway.stop()
            headend.close()


async def test_698_meters_share_a_socket_bus_with_645_and_modbus(rig: Any) -> None:
    fleet, clock, gateway, headend = rig
    assert gateway.poller.meters[M698].driver.__class__.__name__ == "Dlt698Driver"
    report = await gateway.poller.sweep(Group.ENERGY)
    assert (report.read, report.failed) == (len(fleet.meters), 0)
    instant = await gateway.poller.sweep(Group.INSTANT)
    assert instant.failed == 0
    await wait_for(lambda: headend.meters() == set(fleet.meters), what="all meters upstream")
    meter = fleet.meter(M698)
    truth = Decimal(str(total(meter.registered(clock.now().timestamp())[0])))
    got = headend.readings[M698]
    assert Decimal(got[TOTAL]) == truth.quantize(Decimal("0.01"), "ROUND_DOWN")
    await wait_for(lambda: "voltage.a" in headend.readings[COVERED], what="instant values")
    assert Decimal(headend.readings[COVERED]["voltage.a"]) > 200

    # a cover opened on one 698 meter: the events sweep reports it, with the meter's start time
    fleet.control.cover(COVERED, "meter", open=True)
    await gateway.poller.sweep(Group.EVENTS)  # first contact: the opening is news
    await wait_for(
        lambda: any(
            e.type is EventType.METER_COVER_OPEN and e.meter == COVERED for e in headend.events
        ),
        what="cover-open event upstream",
    )
    opened = next(e for e in headend.events if e.type is EventType.METER_COVER_OPEN)
    assert opened.details.get("phase") == "start" and opened.end is None
    bus = gateway.workers["bus1"].stats
    assert bus.garbled == 0 and bus.timeouts == 0

    # daily frozen back-fill of the 698 meters, keyed by the meters' freeze times
    done = await FrozenReader(gateway.poller, gateway.store).run(3, meters=[M698, COVERED])
    assert set(done.stored) == {M698, COVERED} and not done.failed
    day = meter.frozen(2, clock.now().timestamp())
    assert day is not None
    assert gateway.store.has_frozen(M698, _aware(day.local_time))
    await wait_for(
        lambda: ReadingKind.DAILY_FROZEN.value in headend.kinds.get(M698, set()),
        what="frozen readings upstream",
    )


async def test_a_relay_trip_over_mqtt_opens_a_698_meter_and_is_read_back(rig: Any) -> None:
    fleet, clock, gateway, headend = rig
    await gateway.uplink.wait_connected(10)  # subscribed to down/cmd
    now = datetime.now(UTC)
    trip = Command(
        id="trip-698",
        gateway=GW,
        meters=(M698,),
        action=CommandAction.RELAY_TRIP,
        issued=now,
        valid_until=now + timedelta(minutes=10),
        nonce="n0nce-12345678",
    )
    headend.send(trip)
    await wait_for(
        lambda: headend.final(trip.id, M698) is not None,
        what=f"the trip's result (got {headend.results})",
    )
    result = headend.final(trip.id, M698)
    assert result is not None and result.state.value == "executed", result
    assert result.detail["relay"] == "open"
    assert fleet.meter(M698).relay(clock.now().timestamp()).value == "open"
    assert fleet.meter(COVERED).relay(clock.now().timestamp()).value == "closed"


def _aware(local: datetime) -> datetime:
    return MeterTime(local, DEFAULT_METER_ZONE).aware
