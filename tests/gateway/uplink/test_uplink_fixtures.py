"""The gateway's inbox against the contract's shared fixture messages (the head-end tests the same).

Every valid downlink fixture reaches the gateway's handler as its typed message; every invalid one
is counted and dropped without disturbing the uplink, over a real mosquitto.
"""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gateway.store import Store
from gateway.uplink import BrokerSettings, Uplink, UplinkSettings
from protocols.uplink import ArchivePush, Command
from taiqu.clock import RealClock
from tests.fixtures import mqtt_fixtures
from tests.gateway.conftest import until

pytestmark = pytest.mark.integration
GW = "gw-0001"  # the gateway the fixtures are addressed to
FAST = UplinkSettings(ack_timeout=1.5, ack_timeout_max=3, poll_interval=0.5, reconnect_min=1,
                      reconnect_max=1, stop_timeout=2)  # fmt: skip


def publish_all(port: int, fixtures: list) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fixture-publisher")
    client.connect("127.0.0.1", port)
    client.loop_start()
    try:
        for fx in fixtures:
            client.publish(fx.topic, fx.payload, qos=1).wait_for_publish(5)
    finally:
        client.loop_stop()
        client.disconnect()


async def test_downlink_fixtures_reach_the_gateway_typed_and_bad_ones_are_dropped(
    mosquitto, tmp_path: Path
) -> None:
    commands: list[Command] = []
    archives: list[ArchivePush] = []
    store = Store.open(tmp_path / "store.db", clock=RealClock())
    up = Uplink(
        GW, BrokerSettings(port=mosquitto.port), store, RealClock(), software_version="test",
        config_hash="x", archive_version_fn=lambda: 0, on_command=commands.append,
        on_archive=archives.append, settings=FAST,
    )  # fmt: skip
    await up.start()
    try:
        await up.wait_connected(10)
        valid = [f for f in mqtt_fixtures("valid") if "/down/" in f.topic]
        invalid = [f for f in mqtt_fixtures("invalid")
                   if f.topic.startswith(f"taiqu/v1/{GW}/down/")]  # fmt: skip
        assert {f.kind for f in valid} >= {"Command", "Ack", "ResendRequest", "ArchivePush"}
        assert invalid, "the fixtures hold invalid downlink messages"
        publish_all(mosquitto.port, invalid + valid)
        n_cmd = sum(f.kind == "Command" for f in valid)
        await until(lambda: len(commands) == n_cmd and len(archives) == 1, what="typed messages")
        assert {c.id for c in commands} == {f.body["id"] for f in valid if f.kind == "Command"}
        assert archives[0].version == 3
        await until(lambda: up.counters["bad_payloads"] == len(invalid), what="bad ones counted")
        # an Ack for another epoch than this store's is ignored, not applied
        await until(lambda: up.counters.get("stale_acks", 0) == 1, what="the fixture Ack")
        assert up.connected
    finally:
        await up.stop()
        store.close()
