"""Signed uplink over the shipped broker config (issue 19, breaks 3 and 4).

Before, a batch forged on gw2's real epoch (public in its retained status) for seq 760–771 made
the real records 760–771 count as stored: acknowledged, deleted at the gateway, lost.  A forged
``executed`` on ``up/result`` marked a command executed.  Here the gateways are enrolled with
signing keys registered in the head-end's database, the ingest runs with its own identity over
TLS against mosquitto with the shipped config and ACL, and an attacker holding gw2's broker
credentials (a stolen password, or the broker itself) publishes on gw2's topics: the forgeries
go to the dead letters before any sequence accounting, and the real records and result apply.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import select

from headend.auth.roles import Role, User
from headend.commands import service
from headend.commands.dispatcher import Dispatcher
from headend.commands.settings import CommandSettings
from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, reading, writing
from headend.db.migrate import upgrade
from headend.db.ops_tables import commands
from headend.db.tables import dead_letters, readings
from headend.guards import GuardSettings
from headend.ingest.service import IngestService
from headend.ingest.streams import held_runs
from headend.security.enrol import enrol_gateway, enrol_headend
from protocols.model import ReadingKind
from protocols.uplink import (
    Ack,
    Batch,
    CommandAction,
    CommandResult,
    CommandState,
    ReadingRecord,
    Status,
    Topics,
    decode,
    encode,
)
from protocols.uplink.envelope import Sealer
from taiqu.clock import ManualClock
from tests.headend.ops_support import TUESDAY_10, meter_id, seed_archive
from tests.security.broker import Client, SecureBroker, can_connect
from tests.services import mosquitto_binary  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration
HEADEND = "taiqu-headend"
EPOCH = "5eed0002cafe0001"
METER = meter_id("A2", 1)


@pytest.fixture(scope="module")
def broker(mosquitto_binary: str) -> Iterator[SecureBroker]:  # noqa: F811
    b = SecureBroker.make(mosquitto_binary)
    b.start()
    yield b
    b.remove()


@pytest.fixture
def rig(broker: SecureBroker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    settings = Settings(
        database=DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}"),
        mqtt=MqttSettings(
            host="127.0.0.1",
            port=broker.port,
            client_id=HEADEND,
            username=HEADEND,
            ca_file=broker.ca.cert_path,
        ),
        ingest=IngestSettings(outbox_interval=0.05, require_signatures=True),
    )
    engine = make_engine(settings.database)
    upgrade(engine)
    seed_archive(engine)
    passwords = {HEADEND: enrol_headend(HEADEND, broker_dir=broker.broker_dir, replace=True)}
    sealers: dict[str, Sealer] = {}
    for gw in ("gw1", "gw2"):
        enrolment = enrol_gateway(
            gw,
            broker_dir=broker.broker_dir,
            out_dir=tmp_path / "bundles",
            now=datetime.now(UTC),
            replace=True,
            engine=engine,
        )
        passwords[gw] = enrolment.password
        key = load_pem_private_key((enrolment.bundle / "gateway-key.pem").read_bytes(), None)
        assert isinstance(key, Ed25519PrivateKey) and enrolment.registered
        sealers[gw] = Sealer(key)
    broker.reload(lambda: all(can_connect(broker, u, p) for u, p in passwords.items()))
    monkeypatch.setenv("TAIQU_HEADEND_MQTT_PASSWORD", passwords[HEADEND])
    clock = ManualClock(TUESDAY_10)
    ingest = IngestService(engine, settings, clock)
    ingest.start()
    deadline = time.monotonic() + 20
    while not ingest.connected.is_set():
        assert time.monotonic() < deadline, "the ingest did not connect"
        time.sleep(0.05)
    gw2 = Client(broker, "gw2", passwords["gw2"])
    gw2.connect()
    assert gw2.accepted
    assert gw2.subscribe(Topics("gw2").down) == 1
    yield engine, clock, ingest, sealers, gw2
    gw2.close()
    ingest.stop()
    engine.dispose()


def _seen(ingest: IngestService, kind: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while ingest.stats.by_kind.get(kind, 0) < n:
        assert time.monotonic() < deadline, f"the ingest saw {ingest.stats.by_kind}"
        time.sleep(0.02)


def _records(first: int, last: int, value: int) -> tuple[ReadingRecord, ...]:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return tuple(
        ReadingRecord(
            meter=METER,
            kind=ReadingKind.INTERVAL,
            gateway_time=start + timedelta(minutes=15 * seq),
            values={"energy.active.import.total": f"{value + seq}.00"},
        )
        for seq in range(first, last + 1)
    )


def _batch(first: int, last: int, value: int = 1000) -> bytes:
    b = Batch(gateway="gw2", epoch=EPOCH, seq=first, sent=TUESDAY_10,
              records=_records(first, last, value))  # fmt: skip
    return encode(b)


def _acks(client: Client) -> list[Ack]:
    return [decode(p, Ack) for t, p in client.received if t == Topics("gw2").ack]


def test_forged_sequence_claim_is_refused_and_the_real_records_stored(rig) -> None:
    engine, _clock, ingest, sealers, gw2 = rig
    topic = Topics("gw2").data
    status = encode(Status(gateway="gw2", state="online", time=TUESDAY_10, epoch=EPOCH))
    gw2.publish(Topics("gw2").status, sealers["gw2"].seal(Topics("gw2").status, status), True)
    gw2.publish(topic, sealers["gw2"].seal(topic, _batch(1, 759)))
    _seen(ingest, "data", 1)
    # The attacker knows the epoch (retained status) and claims 760-771: unsigned, signed with
    # its own key, signed by gw1's real key, and gw2's real envelope spliced onto forged bytes.
    forged = _batch(760, 771, value=0)
    genuine = sealers["gw2"].seal(topic, _batch(1, 1))
    stranger = Sealer(Ed25519PrivateKey.generate())
    for payload in (
        forged,
        stranger.seal(topic, forged),
        sealers["gw1"].seal(topic, forged),
        genuine[:76] + forged,
    ):
        gw2.publish(topic, payload)
    _seen(ingest, "dead", 4)
    with reading(engine) as conn:
        assert held_runs(conn, "gw2", EPOCH) == [(1, 759)]  # nothing claimed
        reasons = conn.execute(select(dead_letters.c.reason).order_by(dead_letters.c.id)).scalars()
        assert list(reasons) == [
            "signature: unsigned",
            f"signature: unknown_key (key {stranger.key_id})",
            f"signature: unknown_key (key {sealers['gw1'].key_id})",
            "signature: bad_signature",
        ]
    gw2.wait(lambda: len(_acks(gw2)) >= 1, what="the Ack of 1-759")
    assert [a.upto for a in _acks(gw2)] == [759]  # no Ack for the forgeries
    gw2.publish(topic, sealers["gw2"].seal(topic, _batch(760, 771)))
    _seen(ingest, "data", 2)
    gw2.wait(lambda: len(_acks(gw2)) >= 2, what="the Ack of 760-771")
    assert _acks(gw2)[-1].upto == 771
    assert ingest.stats.records == 771 and ingest.stats.duplicates == 0
    with reading(engine) as conn:
        assert held_runs(conn, "gw2", EPOCH) == [(1, 771)]
        values = conn.execute(
            select(readings.c.value).where(readings.c.meter == METER).order_by(readings.c.time)
        ).scalars()
        stored = list(values)
    assert len(stored) == 771 and stored[759:] == [f"{1000 + s}.00" for s in range(760, 772)]


def test_forged_result_is_refused_by_signature(rig) -> None:
    engine, clock, ingest, sealers, gw2 = rig
    with writing(engine) as conn:
        command_id = service.create(
            conn,
            User("olga", Role.OPERATOR),
            service.CommandRequest(action=CommandAction.RELAY_TRIP, meters=[METER]),
            now=TUESDAY_10,
            guards=GuardSettings(),
            settings=CommandSettings(),
        )
    assert isinstance(command_id, str)
    clock.advance(1)
    sent: list[str] = []
    Dispatcher(engine, lambda t, p: sent.append(t), clock, GuardSettings()).run_once()
    assert sent == [Topics("gw2").cmd]  # sent: a result for it would now be applied
    topic = Topics("gw2").result
    result = encode(
        CommandResult(
            id=f"{command_id}.1", gateway="gw2", state=CommandState.EXECUTED, at=clock.now(),
            meter=METER,
        )
    )  # fmt: skip
    gw2.publish(topic, result)  # forged: the attacker has no key
    gw2.publish(topic, sealers["gw1"].seal(topic, result))  # another gateway's key
    _seen(ingest, "dead", 2)
    with reading(engine) as conn:
        state = conn.execute(select(commands.c.state).where(commands.c.id == command_id)).scalar()
    assert state == "sent"
    gw2.publish(topic, sealers["gw2"].seal(topic, result))
    _seen(ingest, "result", 1)
    with reading(engine) as conn:
        state = conn.execute(select(commands.c.state).where(commands.c.id == command_id)).scalar()
    assert state == "executed"
