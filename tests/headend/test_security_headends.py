"""Several head-end broker identities: ``enrol-headend --count`` and two ingests on the shipped
mosquitto configuration (TLS, ``use_username_as_clientid``, the ACL), sharing one gateway."""

from __future__ import annotations

import stat
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine
from headend.db.migrate import upgrade
from headend.db.tables import readings
from headend.ingest.service import IngestService
from headend.ingest.streams import held_runs
from headend.security import cli
from headend.security.enrol import BrokerFiles, enrol_gateway
from headend.security.passwd import verify_password
from protocols.uplink import Ack, decode
from tests.headend.gen import meter_ids, publishable, reading_batches
from tests.security.broker import Client, SecureBroker, can_connect
from tests.services import mosquitto_binary  # noqa: F401  (fixture)


def enrol(broker_dir: Path, *args: str) -> tuple[int, str]:
    result = CliRunner().invoke(cli.app, ["enrol-headend", "--broker-dir", str(broker_dir), *args])
    return result.exit_code, result.output


def test_count_enrols_one_identity_per_ingest_process(tmp_path: Path) -> None:
    broker = tmp_path / "broker"
    code, out = enrol(
        broker,
        "taiqu-headend",
        "--count",
        "3",
        "--password-file",
        str(tmp_path / "pw" / "{name}.password"),
    )
    assert code == 0, out
    names = [f"taiqu-headend-{i}" for i in (1, 2, 3)]
    files = BrokerFiles(broker)
    entries = files.passwd.entries()
    assert set(names) <= set(entries) and "taiqu-headend" not in entries
    assert set(names) <= files.headend_users()
    acl = files.acl.read_text()
    for name in names:
        block = f"user {name}\ntopic read taiqu/v1/+/up/#\ntopic write taiqu/v1/+/down/#\n"
        assert block in acl
        pw = tmp_path / "pw" / f"{name}.password"
        assert stat.S_IMODE(pw.stat().st_mode) == 0o600
        assert verify_password(pw.read_text().strip(), entries[name])
    # again without --replace: refused, nothing changed
    code, out = enrol(
        broker, "taiqu-headend", "--count", "2", "--password-file", str(tmp_path / "again-{name}")
    )
    assert code == 2 and "taiqu-headend-1, taiqu-headend-2 already enrolled" in out
    assert files.passwd.entries() == entries
    assert not list(tmp_path.glob("again-*"))
    # the default file name gets the identity appended
    code, out = enrol(broker, "ingest", "--count", "1", "--password-file", str(tmp_path / "pw-x"))
    assert code == 0 and (tmp_path / "pw-x-ingest-1").exists()


@pytest.mark.parametrize("count", ["0", "65"])
def test_count_out_of_range_is_refused(tmp_path: Path, count: str) -> None:
    code, out = enrol(tmp_path, "taiqu-headend", "--count", count)
    assert code == 2 and "enrol 1 to 64" in out
    assert not (tmp_path / "passwd").exists()


@pytest.fixture
def broker(mosquitto_binary: str) -> Iterator[SecureBroker]:  # noqa: F811
    b = SecureBroker.make(mosquitto_binary)
    b.start()
    yield b
    b.remove()


def wait_for(what: str, check, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.mark.integration
def test_two_ingests_with_their_own_identities_share_a_gateway_through_the_shipped_acl(
    broker: SecureBroker, tmp_path: Path
) -> None:
    secrets = tmp_path / "secrets"
    code, out = enrol(
        broker.broker_dir,
        "taiqu-headend",
        "--count",
        "2",
        "--password-file",
        str(secrets / "{name}"),
    )
    assert code == 0, out
    gateway = enrol_gateway(
        "gw-a",
        broker_dir=broker.broker_dir,
        out_dir=tmp_path / "bundles",
        now=datetime.now(UTC),
    )
    for name in ("taiqu-headend-1", "taiqu-headend-2"):
        password = (secrets / name).read_text().strip()
        broker.reload(lambda n=name, p=password: can_connect(broker, n, p))
    database = DatabaseSettings(url=f"sqlite:///{tmp_path / 'headend.db'}")
    engine = make_engine(database)
    upgrade(engine)

    def ingest(name: str) -> IngestService:
        mqtt = MqttSettings(
            host="127.0.0.1",
            port=broker.port,
            client_id=name,
            username=name,
            password_file=secrets / name,
            ca_file=broker.ca.cert_path,
            shared_group="ingest",
        )
        settings = Settings(database=database, mqtt=mqtt, ingest=IngestSettings(max_group=5))
        return IngestService(engine, settings)

    services = [ingest("taiqu-headend-1"), ingest("taiqu-headend-2")]
    gw = Client(broker, "gw-a", gateway.password)
    try:
        for s in services:
            s.start()
        wait_for("both ingests subscribed", lambda: all(s.connected.is_set() for s in services))
        gw.connect()
        assert gw.accepted
        assert gw.subscribe("taiqu/v1/gw-a/down/ack") == 1
        batches = reading_batches("gw-a", "ab" * 8, meter_ids(3), steps=8, per_batch=3)
        for b in batches:
            gw.publish(*publishable(b))
        seqs = len(batches) * 3

        def acked_all() -> bool:
            acks = [decode(p, Ack) for t, p in gw.received if t.endswith("/ack")]
            return any(a.upto == seqs - 1 for a in acks)

        wait_for("every record acknowledged to the gateway", acked_all)
    finally:
        gw.close()
        for s in services:
            s.stop()
    with engine.connect() as conn:
        assert held_runs(conn, "gw-a", "ab" * 8) == [(0, seqs - 1)]
        rows = conn.execute(select(readings.c.meter, readings.c.quantity, readings.c.time)).all()
    engine.dispose()
    assert len(rows) == len(set(rows)) == seqs * 5
    assert all(s.stats.messages > 0 for s in services)  # the broker shared them out
    assert sum(s.stats.by_kind.get("data", 0) for s in services) >= len(batches)
