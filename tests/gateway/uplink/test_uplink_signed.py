"""With its key configured, the gateway signs every payload it publishes (issue 19, signed uplink)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from paho.mqtt.enums import CallbackAPIVersion

from gateway.store import Store
from gateway.uplink import BrokerSettings, Uplink
from protocols.uplink import Batch, CommandResult, CommandState, Status, decode_message
from protocols.uplink.envelope import Sealer, check, key_id
from protocols.uplink.topics import HEADEND_UP
from taiqu.clock import RealClock
from tests.gateway.conftest import START, meter_ids, sweep, until
from tests.gateway.uplink.test_uplink import FAST

pytestmark = pytest.mark.integration
GW = "gw-signed-1"


class Raw:
    """A subscriber to every up/# that keeps the payloads as published."""

    def __init__(self, port: int) -> None:
        self.got: list[tuple[str, bytes]] = []
        self.ready = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="raw-headend")
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe(HEADEND_UP, qos=1)
        self.client.on_subscribe = lambda *a: self.ready.set()
        self.client.on_message = lambda c, u, m: self.got.append((m.topic, bytes(m.payload)))
        self.client.connect("127.0.0.1", port, 30)
        self.client.loop_start()
        assert self.ready.wait(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


async def test_batches_statuses_results_and_the_will_are_signed(mosquitto, tmp_path: Path) -> None:
    private = Ed25519PrivateKey.generate()
    keys = {key_id(private.public_key()): private.public_key()}
    raw = Raw(mosquitto.port)
    store = Store.open(tmp_path / "s.db", clock=RealClock())
    up = Uplink(
        GW, BrokerSettings(port=mosquitto.port), store, RealClock(), settings=FAST,
        sealer=Sealer(private),
    )  # fmt: skip
    try:
        await up.start()
        await up.wait_connected(10)
        for n in range(3):
            store.append_readings(sweep(meter_ids(5), START + timedelta(minutes=15 * n)))
        result = CommandResult(
            id="C1.1", gateway=GW, state=CommandState.RECEIVED, at=datetime.now(UTC)
        )
        assert up.publish_result(result)
        assert up._client is not None
        will_topic, will = up._client._will_topic.decode(), bytes(up._client._will_payload)
        await until(
            lambda: {t.rsplit("/", 1)[1] for t, _ in raw.got} >= {"data", "status", "result"}
        )
        await up.stop()
        await until(lambda: sum(t.endswith("status") for t, _ in raw.got) >= 2, what="offline")
    finally:
        raw.close()
        store.close()
    kinds = []
    for topic, payload in [*raw.got, (will_topic, will)]:
        refusal, body = check(topic, payload, keys, required=True)
        assert refusal is None, (topic, refusal)
        kinds.append(type(decode_message(topic, body)[2]))
        # the same bytes without the envelope, or on another topic, do not pass
        assert check(topic, body, keys, required=True)[0] == "unsigned"
        other = topic.replace("/up/status", "/up/result").replace("/up/data", "/up/status")
        other = other if other != topic else topic.replace("/up/result", "/up/data")
        assert check(other, payload, keys, required=True)[0] == "bad_signature"
    assert {Batch, Status, CommandResult} <= set(kinds)
