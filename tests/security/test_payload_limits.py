"""A 60 MB uncompressed payload over the real broker with the shipped ACL (issue 19, break 6).

Before, such a payload was parsed and kept whole as a dead letter (the dead-letter list then
returned 84 MB).  Two layers now refuse it:

- the shipped ``taiqu.conf`` (``max_packet_size``): mosquitto disconnects the publisher before it
  buffers the packet, so it never reaches the head-end, which goes on storing the next batch;
- the head-end on its own (a broker configured without those limits, same ACL): the payload is
  refused before anything is verified, inflated or parsed, and the dead letter keeps 64 KiB, the
  length and the SHA-256; the ingest's memory returns to where it was.
"""

from __future__ import annotations

import hashlib
import os
import re
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, reading
from headend.db.migrate import upgrade
from headend.db.tables import dead_letters
from headend.ingest.service import IngestService
from headend.ingest.store import DEAD_PREFIX
from headend.security.enrol import enrol_gateway, enrol_headend
from protocols.uplink import Topics, encode
from tests.headend.gen import batch
from tests.headend.gen import reading as gen_reading
from tests.headend.ops_support import seed_archive
from tests.security.broker import Client, SecureBroker, can_connect
from tests.services import mosquitto_binary  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
HEADEND = "taiqu-headend"
HUGE = 60_000_000
ROOT = Path(__file__).resolve().parents[2]


def _rss() -> int:
    status = Path("/proc/self/status").read_text()
    match = re.search(r"^VmRSS:\s+(\d+) kB", status, re.M)
    assert match
    return int(match.group(1)) * 1024


def _broker(binary: str, *, shipped_limits: bool) -> SecureBroker:
    b = SecureBroker.make(binary)
    conf = b.root / "mosquitto.conf"
    text = conf.read_text()
    assert "\nmax_packet_size 16842752\n" in text and "\nmessage_size_limit 16777292\n" in text
    if not shipped_limits:  # a deployment that dropped them: the head-end must hold on its own
        text = re.sub(r"^(max_packet_size|message_size_limit) .*$", "", text, flags=re.M)
        conf.write_text(text)
    b.start()
    return b


@pytest.fixture(params=[True, False], ids=["shipped-limits", "no-broker-limits"])
def rig(request: pytest.FixtureRequest, mosquitto_binary: str, tmp_path: Path, monkeypatch):  # noqa: F811
    broker = _broker(mosquitto_binary, shipped_limits=request.param)
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}"),
        mqtt=MqttSettings(
            host="127.0.0.1", port=broker.port, client_id=HEADEND, username=HEADEND,
            ca_file=broker.ca.cert_path,
        ),
        ingest=IngestSettings(outbox_interval=0.05),
    )  # fmt: skip
    engine = make_engine(settings.database)
    upgrade(engine)
    seed_archive(engine)
    passwords = {HEADEND: enrol_headend(HEADEND, broker_dir=broker.broker_dir)}
    passwords["gw1"] = enrol_gateway(
        "gw1", broker_dir=broker.broker_dir, out_dir=tmp_path / "b", now=datetime.now(UTC),
        signing_key=False,
    ).password  # fmt: skip
    broker.reload(lambda: all(can_connect(broker, u, p) for u, p in passwords.items()))
    monkeypatch.setenv("TAIQU_HEADEND_MQTT_PASSWORD", passwords[HEADEND])
    ingest = IngestService(engine, settings)
    ingest.start()
    deadline = time.monotonic() + 20
    while not ingest.connected.is_set():
        assert time.monotonic() < deadline, "the ingest did not connect"
        time.sleep(0.05)
    yield request.param, broker, engine, ingest, passwords["gw1"]
    ingest.stop()
    engine.dispose()
    broker.remove()


def _wait(predicate, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


PUBLISHER = r"""
import ssl, sys, threading
import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

port, ca, password, topic, size = sys.argv[1:6]
payload = b'{"v":1,"gw":"gw1","records":["' + b"x" * int(size) + b'"]}'
gone = threading.Event()
up = threading.Event()
c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id="gw1", clean_session=True)
c.username_pw_set("gw1", password)
c.tls_set_context(ssl.create_default_context(cafile=ca))
c.on_connect = lambda *a: up.set()
c.on_disconnect = lambda *a: gone.set()
c.connect("127.0.0.1", int(port), 30)
c.loop_start()
assert up.wait(10)
info = c.publish(topic, payload, qos=1)
for _ in range(600):
    if info.is_published() or gone.is_set():
        break
    gone.wait(0.1)
print("published" if info.is_published() else "disconnected" if gone.is_set() else "stuck")
c.disconnect()
c.loop_stop()
"""


def test_a_60_mb_uncompressed_payload_is_refused_and_bounded(rig) -> None:
    shipped, broker, engine, ingest, password = rig
    topic = Topics("gw1").data
    before = _rss()
    # The attacker (gw1's stolen password) publishes from its own process, so this process's
    # memory is the head-end's alone.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [str(broker.port), str(broker.ca.cert_path), password, topic, str(HUGE)]
    done = subprocess.run(
        [sys.executable, "-c", PUBLISHER, *args], capture_output=True, text=True, env=env,
        timeout=120, check=True,
    )  # fmt: skip
    if shipped:  # the broker drops the sender mid-packet: nothing reaches the head-end
        assert done.stdout.strip() == "disconnected"
    else:
        assert done.stdout.strip() == "published"
        _wait(lambda: ingest.stats.dead_letters >= 1, "the dead letter")
    # the ingest still stores what comes next (the gateway reconnects)
    gateway = Client(broker, "gw1", password, client_id="gw1")
    gateway.connect()
    assert gateway.accepted
    good = batch("gw1", "0123456789abcdef", 1, [gen_reading("202600000001", 0)])
    gateway.publish(topic, encode(good))
    _wait(lambda: ingest.stats.by_kind.get("data", 0) >= 1, "the next batch")
    gateway.close()
    with reading(engine) as conn:
        rows = conn.execute(select(dead_letters)).all()
    if shipped:
        assert rows == [] and ingest.stats.dead_letters == 0
    else:
        (row,) = rows
        assert len(row.payload) == DEAD_PREFIX
        huge = b'{"v":1,"gw":"gw1","records":["' + b"x" * HUGE + b'"]}'
        digest = hashlib.sha256(huge).hexdigest()
        assert f"payload of {len(huge)} bytes is over 16777216 bytes" in row.reason
        assert f"[{len(huge)} bytes, sha256 {digest}, first {DEAD_PREFIX} kept]" in row.reason
        del huge
    grown = _rss() - before
    assert grown < 32 * 1024 * 1024, f"the head-end kept {grown / 2**20:.0f} MiB"
