"""The gateway against a simulated three-bus fleet (TCP and pty) and a real mosquitto broker.

A subscriber plays the head-end: it decodes every batch and acknowledges it.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from gateway.config import GatewayConfig, parse_config
from gateway.daemon.app import Gateway
from gateway.polling import Group
from protocols.uplink import Ack, Batch, ReadingRecord, decode_message, encode
from protocols.uplink.topics import HEADEND_UP, Topics

pytestmark = pytest.mark.integration
simulators = pytest.importorskip("simulators.fleet")
from simulators.config import parse_config as parse_fleet  # noqa: E402

GW = "gw-it1"


class HeadEnd:
    """Subscribes to every gateway's uplink and acknowledges batches like the head-end."""

    def __init__(self, host: str, port: int) -> None:
        self.lock = threading.Lock()
        self.readings: dict[str, dict[str, Any]] = {}  # meter -> quantity -> value
        self.kinds: dict[str, set[str]] = {}
        self.batches = 0
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="headend-test")
        self.client.on_connect = lambda c, *_: c.subscribe(HEADEND_UP, qos=1)
        self.client.on_message = self._message
        self.client.connect(host, port)
        self.client.loop_start()

    def _message(self, client: mqtt.Client, _userdata: Any, msg: mqtt.MQTTMessage) -> None:
        gateway, kind, message = decode_message(msg.topic, bytes(msg.payload))
        if kind != "data":
            return
        assert isinstance(message, Batch)
        with self.lock:
            self.batches += 1
            for record in message.records:
                if isinstance(record, ReadingRecord):
                    self.readings.setdefault(record.meter, {}).update(record.values)
                    self.kinds.setdefault(record.meter, set()).add(record.kind.value)
        ack = Ack(epoch=message.epoch, upto=message.last_seq)
        client.publish(Topics(gateway).ack, encode(ack), qos=1)

    def meters(self) -> set[str]:
        with self.lock:
            return set(self.readings)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


async def wait_for(predicate: Any, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


def fleet_config() -> Any:
    return parse_fleet(
        {
            "areas": [{"name": "a1", "gateway_id": GW}],
            "buses": [
                {"name": "bus1", "area": "a1", "baud": 9600, "parity": "E"},
                {"name": "bus2", "area": "a1", "baud": 9600, "parity": "N"},
                {"name": "bus3", "area": "a1", "listen": "pty", "baud": 9600, "parity": "E"},
            ],
            "meters": [
                {
                    "bus": "bus1",
                    "protocol": "dlt645-2007",
                    "address": "202611240001",
                    "count": 4,
                    "response_delay_ms": 20,
                },
                {
                    "bus": "bus1",
                    "protocol": "dlt645-2007",
                    "address": "202611249999",
                    "role": "area_total",
                    "response_delay_ms": 20,
                },
                {
                    "bus": "bus2",
                    "protocol": "modbus",
                    "model": "SDM630",
                    "address": "1",
                    "count": 3,
                    "response_delay_ms": 20,
                },
                {
                    "bus": "bus3",
                    "protocol": "dlt645-2007",
                    "address": "202611250001",
                    "count": 2,
                    "response_delay_ms": 20,
                },
                {
                    "bus": "bus3",
                    "protocol": "modbus",
                    "model": "SDM120",
                    "address": "7",
                    "response_delay_ms": 20,
                },
            ],
        },
        "test fleet",
    )


def gateway_config(fleet: Any, broker: Any, data_dir: Path) -> GatewayConfig:
    buses = [
        {
            "name": b.name,
            "port": fleet.endpoints[b.name],
            "baud": b.baud,
            "parity": b.parity,
            "response_timeout_ms": 300,
            "retries": 1,
        }
        for b in fleet.config.buses
    ]
    meters = []
    for ident, meter in fleet.meters.items():
        spec = meter.spec
        meters.append(
            {
                "id": ident,
                "bus": fleet.meter_bus[ident],
                "protocol": spec.protocol,
                "address": ident.split(":")[-1] if spec.protocol == "modbus" else spec.address,
                "model": getattr(spec, "model", "") or "",
                "role": getattr(spec, "role", "customer"),
            }
        )
    doc = {
        "gateway_id": GW,
        "data_dir": str(data_dir),
        "broker": {"host": broker.host, "port": broker.port},
        "schedule": {"energy_minutes": 15, "events_minutes": 0, "backfill_days": 0},
        "signatures": {"required": False},  # a test bench (test_gateway_signed_commands.py)
        "buses": buses,
        "meters": meters,
    }
    return parse_config(doc, Path("test-gateway.toml"))


@pytest.fixture
async def rig(mosquitto: Any, tmp_path: Any) -> Any:
    async with simulators.start_fleet(fleet_config()) as fleet:
        headend = HeadEnd(mosquitto.host, mosquitto.port)
        cfg = gateway_config(fleet, mosquitto, tmp_path / "gw")
        gateway = Gateway(cfg, config_path=tmp_path / "gateway.toml")
        await gateway.start()
        try:
            yield fleet, gateway, headend
        finally:
            await gateway.stop()
            headend.close()


async def test_every_meter_of_a_mixed_three_bus_fleet_reaches_the_headend(rig: Any) -> None:
    fleet, gateway, headend = rig
    report = await gateway.poller.sweep(Group.ENERGY)
    assert report.failed == 0 and report.read == len(fleet.meters)
    await wait_for(lambda: headend.meters() == set(fleet.meters), what="all meters upstream")
    for ident, values in headend.readings.items():
        assert "energy.active.import.total" in values, ident
    # the head-end acknowledged everything: nothing is left unacknowledged in the store
    await wait_for(lambda: gateway.store.first_unacked() is None, what="all acknowledged")


async def test_silent_meter_and_noisy_bus_do_not_hold_up_the_others(rig: Any) -> None:
    fleet, gateway, headend = rig
    silent = "202611240002"
    fleet.control.set_faults(silent, silent=True)
    fleet.control.set_faults("bus3", noise=8)
    first = await gateway.poller.sweep(Group.ENERGY)
    assert first.read == len(fleet.meters) - 1 and first.failed == 1
    assert gateway.poller.meters[silent].state.failing
    # the silent meter cost its own timeouts (one read, retries included) and nobody else's;
    # the noise was skipped by the codec, counted, and cost no timeout or retry
    stats = {name: w.stats for name, w in gateway.workers.items()}
    assert stats["bus1"].timeouts == 1 + gateway.cfg.bus("bus1").retries
    assert stats["bus2"].timeouts == stats["bus3"].timeouts == 0
    assert stats["bus3"].noise_bytes > 8 and stats["bus3"].retries == 0
    # the dead meter is skipped during its back-off: the next sweep spends no time on it
    timeouts = gateway.workers["bus1"].stats.timeouts
    second = await gateway.poller.sweep(Group.ENERGY)
    assert second.skipped == 1 and second.read == len(fleet.meters) - 1
    assert gateway.workers["bus1"].stats.timeouts == timeouts
    healthy = set(fleet.meters) - {silent}
    await wait_for(lambda: healthy <= headend.meters(), what="healthy meters upstream")
    assert silent not in headend.meters()


async def test_archive_pushed_over_mqtt_is_stored_and_applied_without_restart(
    rig: Any, mosquitto: Any
) -> None:
    from datetime import UTC, datetime

    from protocols.uplink import ArchiveMeter, ArchivePush

    _, gateway, headend = rig
    keep = ["202611240001", "bus2:1"]
    meters = tuple(
        ArchiveMeter(
            id=m.meter.id,
            bus=m.meter.bus,
            protocol=m.meter.protocol,
            address=m.meter.address,
            model=m.meter.model or None,
            role=m.meter.role,
        )
        for m in gateway.poller.meters.values()
        if m.meter.id in keep
    )
    push = ArchivePush(gateway=GW, version=3, issued=datetime.now(UTC), meters=meters)
    headend.client.publish(Topics(GW).archive, encode(push), qos=1, retain=True)
    await wait_for(lambda: gateway.archive_version == 3, what="archive applied")
    assert set(gateway.poller.meters) == set(keep)
    assert gateway.store.get_state("archive")["version"] == 3
    report = await gateway.poller.sweep(Group.ENERGY)
    assert report.read == 2
    # a bad archive (meter on an unknown bus) is refused and the current one stays
    bad = ArchivePush(
        gateway=GW,
        version=4,
        issued=datetime.now(UTC),
        meters=(ArchiveMeter(id="x1", bus="nope", protocol="dlt645-2007", address="202611240009"),),
    )
    assert gateway.apply_archive(bad) is False
    assert gateway.archive_version == 3 and set(gateway.poller.meters) == set(keep)
