"""The ingest end to end on a real mosquitto: fake gateways publish, the head-end stores and acks.

SQLite and PostgreSQL; duplicates stored once; malformed payloads dead-lettered; holes asked for
again; the archive pushed retained; and a kill -9 of the ingest process loses nothing.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.enums import CallbackAPIVersion
from sqlalchemy import Engine, func, select

from headend.archive import service as archive
from headend.archive.models import AreaIn, GatewayIn, MeterIn
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine
from headend.db.engine import writing
from headend.db.errors import Conflict
from headend.db.migrate import upgrade
from headend.db.tables import dead_letters, gateway_sessions, readings
from headend.ingest.service import IngestService
from headend.ingest.streams import held_runs
from protocols.uplink import Ack, ArchivePush, ResendRequest, Status, Topics, decode, encode
from tests.fixtures import mqtt_fixtures
from tests.headend.gen import batch, meter_ids, reading, reading_batches

pytestmark = pytest.mark.integration
DEADLINE = 60.0


def wait_for(what: str, check: Callable[[], bool], timeout: float = DEADLINE) -> None:
    end = time.monotonic() + timeout
    while not check():
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


class FakeGateway:
    """A paho client acting as gateway ``gw``: publishes up/*, records what comes down."""

    def __init__(self, host: str, port: int, gw: str) -> None:
        self.topics = Topics(gw)
        self.received: list[tuple[str, bytes, bool]] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=gw, clean_session=True)
        self.client.on_message = self._on_message
        self.client.on_connect = lambda c, *_: c.subscribe(self.topics.down, qos=1)
        self.client.connect(host, port)
        self.client.loop_start()

    def _on_message(self, _c, _u, msg) -> None:
        with self.lock:
            self.received.append((msg.topic, bytes(msg.payload), bool(msg.retain)))

    def publish(self, topic: str, payload: bytes) -> None:
        info = self.client.publish(topic, payload, qos=1)
        info.wait_for_publish(10)

    def down(self, kind: str, schema):
        with self.lock:
            items = [(t, p) for t, p, _ in self.received if t.endswith(f"/down/{kind}")]
        return [decode(p, schema) for _, p in items]

    def acked(self, epoch: str, upto: int) -> bool:
        return any(a.epoch == epoch and a.upto >= upto for a in self.down("ack", Ack))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def held(engine: Engine, gateway: str, epoch: str) -> int:
    """How many records of the stream are stored (its runs, as committed)."""
    with engine.connect() as conn:
        return sum(last - first + 1 for first, last in held_runs(conn, gateway, epoch))


def count(engine: Engine, table, *where) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[DatabaseSettings]:
    if request.param == "sqlite":
        yield DatabaseSettings(url=f"sqlite:///{tmp_path / 'headend.db'}")
        return
    from sqlalchemy import create_engine, text

    base = request.getfixturevalue("postgres_url")
    name = f"ingest_{os.getpid()}_{time.monotonic_ns()}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f"CREATE DATABASE {name}"))
    admin.dispose()
    yield DatabaseSettings(url=base.rsplit("/", 1)[0] + f"/{name}")


def make_settings(db: DatabaseSettings, mosquitto, **ingest) -> Settings:
    return Settings(
        database=db,
        mqtt=MqttSettings(host=mosquitto.host, port=mosquitto.port, client_id="headend-test"),
        ingest=IngestSettings(outbox_interval=0.1, **ingest),
    )


@pytest.fixture
def running(db: DatabaseSettings, mosquitto) -> Iterator[tuple[IngestService, Engine]]:
    settings = make_settings(db, mosquitto, resend_after=0.5)
    engine = make_engine(db)
    upgrade(engine)
    service = IngestService(engine, settings)
    service.start()
    wait_for("ingest connected", service.connected.is_set)
    yield service, engine
    service.stop()
    engine.dispose()


def test_fixtures_and_batches_from_gateways_are_stored_acked_and_deduplicated(
    running, mosquitto
) -> None:
    service, engine = running
    gws = [FakeGateway(mosquitto.host, mosquitto.port, f"gw-{n:04d}") for n in (1, 2, 3)]
    try:
        # the contract fixtures, valid and invalid, as gateway gw-0001/gw-0002 send them
        # (a down/ topic is not subscribed: the head-end never sees the invalid command fixture)
        fixtures = [
            f for f in mqtt_fixtures("valid") + mqtt_fixtures("invalid") if "/up/" in f.topic
        ]
        for f in fixtures:
            gws[0].publish(f.topic, f.payload)
        invalid = len([f for f in mqtt_fixtures("invalid") if "/up/" in f.topic])
        wait_for("dead letters", lambda: count(engine, dead_letters) == invalid)
        # three gateways × 40 meters × 4 reads, 25 records a batch, every batch published twice
        expected = 0
        for gw in gws:
            ms = meter_ids(40, prefix=gw.topics.gateway[-2:] + "26")
            batches = reading_batches(gw.topics.gateway, "cd" * 8, ms, steps=4, per_batch=25)
            for b in batches:
                gw.publish(gw.topics.data, encode(b))
            for b in batches[::2]:
                gw.publish(gw.topics.data, encode(b))
            expected += 40 * 4 * 5
        for gw in gws:
            wait_for(f"{gw.topics.gateway} acked", lambda gw=gw: gw.acked("cd" * 8, 159))
        fixture_readings = sum(
            len(r["q"])
            for f in mqtt_fixtures("valid")
            if f.kind == "Batch"
            for r in f.body["records"]
            if r["r"] == "rd"
        )
        assert count(engine, readings) == expected + fixture_readings
        assert [held(engine, gw.topics.gateway, "cd" * 8) for gw in gws] == [160] * 3
        assert count(engine, dead_letters) == invalid
        assert service.stats.duplicates >= 3 * 80
        for gw in gws:  # every meter of every gateway can be read back
            with engine.connect() as conn:
                meters = conn.execute(
                    select(func.count(func.distinct(readings.c.meter))).where(
                        readings.c.gateway == gw.topics.gateway
                    )
                ).scalar_one()
            assert meters >= 40
    finally:
        for gw in gws:
            gw.close()


def test_a_hole_is_asked_for_and_filled(running, mosquitto) -> None:
    _, engine = running
    gw = FakeGateway(mosquitto.host, mosquitto.port, "gw-0009")
    try:
        ms = meter_ids(30)
        epoch = "ef" * 8
        b0 = batch("gw-0009", epoch, 0, [reading(m, 0) for m in ms[:10]])
        b1 = batch("gw-0009", epoch, 10, [reading(m, 0) for m in ms[10:20]])
        b2 = batch("gw-0009", epoch, 20, [reading(m, 0) for m in ms[20:]])
        gw.publish(gw.topics.data, encode(b0))
        gw.publish(gw.topics.data, encode(b2))  # b1 "lost"
        wait_for(
            "resend request",
            lambda: (
                ResendRequest(epoch=epoch, first=10, last=19) in gw.down("resend", ResendRequest)
            ),
        )
        assert any(a.upto == 9 and a.ranges == ((20, 29),) for a in gw.down("ack", Ack))
        gw.publish(gw.topics.data, encode(b1.model_copy(update={"resend": True})))
        wait_for("ack of everything", lambda: gw.acked(epoch, 29))
        assert count(engine, readings, readings.c.gateway == "gw-0009") == 30 * 5
    finally:
        gw.close()


def test_status_history_and_archive_push_reach_the_gateway(running, mosquitto) -> None:
    _service, engine = running
    now = datetime.now(UTC)
    with writing(engine) as conn:
        archive.create_gateway(conn, GatewayIn(id="gw-0007"), "test", now)
        archive.create_area(conn, AreaIn(id="A7", gateway="gw-0007"), "test", now)
        archive.create_meter(
            conn,
            MeterIn(id="202600000777", area="A7", bus="bus1", address="202600000777"),
            "test",
            now,
        )
    gw = FakeGateway(mosquitto.host, mosquitto.port, "gw-0007")
    try:
        wait_for("archive v2", lambda: any(a.version == 2 for a in gw.down("archive", ArchivePush)))
        pushed = next(a for a in gw.down("archive", ArchivePush) if a.version == 2)
        assert [m.id for m in pushed.meters] == ["202600000777"]
        gw.publish(
            gw.topics.status, encode(Status(gateway="gw-0007", state="online", archive_version=2))
        )
        gw.publish(gw.topics.status, encode(Status(gateway="gw-0007", state="offline")))
        wait_for(
            "two sessions",
            lambda: count(engine, gateway_sessions, gateway_sessions.c.gateway == "gw-0007") == 2,
        )
    finally:
        gw.close()
    late = FakeGateway(mosquitto.host, mosquitto.port, "gw-0007")  # connects later: retained push
    try:
        wait_for("retained archive", lambda: any(r for _, _, r in late.received))
    finally:
        late.close()


def test_one_ingest_per_client_id(running) -> None:
    service, engine = running
    second = IngestService(engine, service.settings)
    with pytest.raises(Conflict, match="headend-test"):
        second.start()


def _spawn_ingest(config: Path) -> subprocess.Popen[bytes]:
    with (config.parent / "ingest.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "taiqu.cli", "headend", "ingest", "--config", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=log,
        )


def test_kill_9_of_the_ingest_process_loses_nothing(
    db: DatabaseSettings, mosquitto, tmp_path: Path
) -> None:
    config = tmp_path / "headend.toml"
    config.write_text(
        f'[database]\nurl = "{db.url}"\n'
        f'[mqtt]\nhost = "{mosquitto.host}"\nport = {mosquitto.port}\nclient_id = "headend-kill"\n'
        "[ingest]\nmax_group = 5\n"
    )
    engine = make_engine(db)
    upgrade(engine)
    proc = _spawn_ingest(config)
    gw = FakeGateway(mosquitto.host, mosquitto.port, "gw-0042")
    epoch = "42" * 8
    try:
        wait_for("ingest subscribed", lambda: _subscribed(config, proc, 1))
        batches = reading_batches("gw-0042", epoch, meter_ids(100), steps=6, per_batch=10)
        for b in batches:  # 60 batches, 600 records, 3000 readings
            gw.publish(gw.topics.data, encode(b))
        wait_for("some stored", lambda: held(engine, "gw-0042", epoch) > 0)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        stored_at_kill = held(engine, "gw-0042", epoch)
        for b in batches[-5:]:  # the gateway keeps sending while the head-end is down
            gw.publish(gw.topics.data, encode(b))
        proc = _spawn_ingest(config)
        wait_for("ingest subscribed again", lambda: _subscribed(config, proc, 2))
        wait_for("everything stored", lambda: held(engine, "gw-0042", epoch) == 600)
        wait_for("final ack", lambda: gw.acked(epoch, 599))
        assert count(engine, readings, readings.c.gateway == "gw-0042") == 600 * 5
        assert stored_at_kill <= 600
    finally:
        gw.close()
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
        engine.dispose()


def _subscribed(config: Path, proc: subprocess.Popen[bytes], times: int) -> bool:
    if proc.poll() is not None:
        raise AssertionError(f"ingest exited with {proc.returncode}")
    log = (config.parent / "ingest.log").read_text(errors="replace")
    return log.count("ingest subscribed") >= times
