"""The signed uplink attacked over the shipped broker config (issue 19's review).

The attacker holds gw2's broker credentials (a stolen password: the ACL lets it publish on gw2's
``up/#`` only) or is the broker itself (it can replay anything it ever relayed).  The head-end
runs with ``require_signatures = false`` — the default, and the harder case: gateways with a key
must still sign everything.  Each forgery must die before it moves a stream, an Ack, the
gateway's state or its ``last_seen``, and each replay of a genuine message must be harmless.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from sqlalchemy import func, select

from headend.config import DatabaseSettings, IngestSettings, MqttSettings, Settings
from headend.db import make_engine, reading, writing
from headend.db.migrate import upgrade
from headend.db.tables import dead_letters, gateway_sessions, gateway_state, readings
from headend.ingest.service import IngestService
from headend.ingest.streams import held_runs
from headend.security.enrol import enrol_gateway, enrol_headend
from headend.security.gateway_keys import revoke
from protocols.model import ReadingKind
from protocols.uplink import Ack, Batch, ReadingRecord, Status, Topics, decode, encode
from protocols.uplink.envelope import Sealer
from taiqu.clock import ManualClock
from tests.headend.ops_support import TUESDAY_10, meter_id, seed_archive
from tests.security.broker import Client, SecureBroker, can_connect
from tests.services import mosquitto_binary  # noqa: F401  (fixture)

# its broker is reloaded with new identities and waited for in wall-clock time: run alone
pytestmark = [pytest.mark.integration, pytest.mark.realtime]
HEADEND = "taiqu-headend"
EPOCH = "5eed0002cafe0002"
METER = meter_id("A2", 1)


@pytest.fixture
def broker(mosquitto_binary: str) -> Iterator[SecureBroker]:  # noqa: F811
    """A broker per test: with one per module, the clients, sessions and SIGHUP reloads of one
    test reached into the next (its clients expired on connecting, about one run in two)."""
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
        ingest=IngestSettings(outbox_interval=0.05, require_signatures=False),
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
        assert isinstance(key, Ed25519PrivateKey)
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
    assert gw2.accepted and gw2.subscribe(Topics("gw2").down) == 1
    yield engine, clock, ingest, sealers, gw2, passwords
    gw2.close()
    # the broker keeps gw2's retained status for the next test's ingest: clear it while this
    # one still listens (an empty retained message; it is this ingest's dead letter)
    cleaner = Client(broker, "gw2", passwords["gw2"])
    cleaner.connect()
    dead = ingest.stats.by_kind.get("dead", 0)
    cleaner.publish(Topics("gw2").status, b"", True)
    deadline = time.monotonic() + 5
    while ingest.stats.by_kind.get("dead", 0) == dead and time.monotonic() < deadline:
        time.sleep(0.02)
    cleaner.close()
    ingest.stop()
    engine.dispose()


def _seen(ingest: IngestService, kind: str, n: int) -> None:
    deadline = time.monotonic() + 20
    while ingest.stats.by_kind.get(kind, 0) < n:
        assert time.monotonic() < deadline, f"the ingest saw {ingest.stats.by_kind}"
        time.sleep(0.02)


def _batch(gateway: str, first: int, last: int, value: int = 1000) -> bytes:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    records = tuple(
        ReadingRecord(
            meter=METER,
            kind=ReadingKind.INTERVAL,
            gateway_time=start + timedelta(minutes=15 * seq),
            values={"energy.active.import.total": f"{value + seq}.00"},
        )
        for seq in range(first, last + 1)
    )
    return encode(Batch(gateway=gateway, epoch=EPOCH, seq=first, sent=TUESDAY_10, records=records))


def _reasons(engine) -> list[str]:
    with reading(engine) as conn:
        query = select(dead_letters.c.reason).order_by(dead_letters.c.id)
        return list(conn.execute(query).scalars())


def _acks(client: Client) -> list[Ack]:
    return [decode(p, Ack) for t, p in client.received if t == Topics("gw2").ack]


def _state(engine) -> tuple:
    with reading(engine) as conn:
        row = conn.execute(select(gateway_state).where(gateway_state.c.gateway == "gw2")).one()
        sessions = conn.execute(select(func.count()).select_from(gateway_sessions)).scalar_one()
    return row.online, row.epoch, row.last_seen, row.since, sessions


def _online(gw2: Client, sealer: Sealer, ingest: IngestService, n: int = 1) -> bytes:
    topic = Topics("gw2").status
    status = encode(Status(gateway="gw2", state="online", time=TUESDAY_10, epoch=EPOCH))
    gw2.publish(topic, sealer.seal(topic, status), True)
    _seen(ingest, "status", n)
    return sealer.seal(topic, status)


def test_a_revoked_gateway_is_refused_not_accepted_unverified(rig) -> None:
    """revoke-gateway revoked every key; with require_signatures = false the gateway then counted
    as "never had a key" and a broker attacker's unsigned batch — or one signed with the stolen,
    revoked key — was stored and acknowledged as gw2's."""
    engine, _clock, ingest, sealers, gw2, _pw = rig
    topic = Topics("gw2").data
    gw2.publish(topic, sealers["gw2"].seal(topic, _batch("gw2", 1, 10)))
    _seen(ingest, "data", 1)
    with writing(engine) as conn:
        assert revoke(conn, "gw2", datetime.now(UTC)) == 1
    ingest.ingestor.keys.invalidate()  # the ingest rereads keys every 5 s; not waiting here
    gw2.publish(topic, _batch("gw2", 11, 20, value=0))
    gw2.publish(topic, sealers["gw2"].seal(topic, _batch("gw2", 11, 20, value=0)))
    _seen(ingest, "dead", 2)
    assert _reasons(engine) == ["signature: revoked"] * 2
    with reading(engine) as conn:
        assert held_runs(conn, "gw2", EPOCH) == [(1, 10)]
    gw2.wait(lambda: len(_acks(gw2)) >= 1, what="the Ack of 1-10")
    time.sleep(0.3)
    assert [a.upto for a in _acks(gw2)] == [10]


def test_replays_across_gateways_topics_and_kinds_are_refused(rig) -> None:
    engine, _clock, ingest, sealers, gw2, _pw = rig
    data, status, result = Topics("gw2").data, Topics("gw2").status, Topics("gw2").result
    genuine_gw1 = sealers["gw1"].seal(Topics("gw1").data, _batch("gw1", 1, 5))
    genuine_status = sealers["gw2"].seal(
        status, encode(Status(gateway="gw2", state="online", time=TUESDAY_10, epoch=EPOCH))
    )
    genuine = sealers["gw2"].seal(data, _batch("gw2", 1, 5))
    gw2.publish(data, genuine_gw1)  # gw1's genuine batch on gw2's topic
    gw2.publish(result, genuine_status)  # gw2's genuine status replayed as a result
    gw2.publish(data, genuine + b"\x00")  # trailing byte
    gw2.publish(data, genuine[:-1])  # truncated
    gw2.publish(data, genuine[:76])  # header only
    _seen(ingest, "dead", 5)
    reasons = _reasons(engine)
    assert reasons[:4] == [
        f"signature: unknown_key (key {sealers['gw1'].key_id})",
        "signature: bad_signature",
        "signature: bad_signature",
        "signature: bad_signature",
    ]
    assert "has no body" in reasons[4]
    with reading(engine) as conn:
        assert conn.execute(select(func.count()).select_from(readings)).scalar_one() == 0
        assert conn.execute(select(func.count()).select_from(gateway_state)).scalar_one() == 0
    assert _acks(gw2) == []


def test_a_forged_status_moves_nothing(rig) -> None:
    """Nothing about the gateway — online/offline, epoch, last_seen, sessions — moves before its
    signature verifies."""
    engine, clock, ingest, sealers, gw2, _pw = rig
    _online(gw2, sealers["gw2"], ingest)
    before = _state(engine)
    assert before[:2] == (True, EPOCH)
    clock.advance(60)
    topic = Topics("gw2").status
    offline = encode(Status(gateway="gw2", state="offline", epoch=EPOCH))
    other_epoch = encode(
        Status(gateway="gw2", state="online", time=clock.now(), epoch="ffffffffffffffff")
    )
    gw2.publish(topic, offline, True)  # unsigned
    gw2.publish(topic, sealers["gw1"].seal(topic, other_epoch), True)  # another gateway's key
    gw2.publish(Topics("gw2").data, _batch("gw2", 1, 3))  # unsigned data: no last_seen either
    _seen(ingest, "dead", 3)
    assert _state(engine) == before


def test_the_last_will_is_signed_and_a_forged_one_refused(rig, broker: SecureBroker) -> None:
    """And after the will, the broker replaying the gateway's genuine online status (to make a
    dead gateway look alive, with a fresh ``last_seen``) is ignored: before, it was applied."""
    engine, clock, ingest, sealers, gw2, passwords = rig
    genuine_online = _online(gw2, sealers["gw2"], ingest)
    gw2.close()
    topic = Topics("gw2").status
    offline = encode(Status(gateway="gw2", state="offline", epoch=EPOCH))
    for n, will in enumerate((offline, sealers["gw2"].seal(topic, offline)), start=1):
        clock.advance(60)
        c = Client(broker, "gw2", passwords["gw2"])
        c.client.will_set(topic, will, qos=1, retain=True)
        c.connect()
        assert c.accepted
        sock = c.client.socket()
        assert sock is not None
        sock.shutdown(socket.SHUT_RDWR)  # gone without DISCONNECT: the broker publishes the will
        c.client.loop_stop()
        if n == 1:
            _seen(ingest, "dead", 1)  # the unsigned will: refused, gw2 still online
            assert _state(engine)[0] is True
    _seen(ingest, "status", 2)
    state = _state(engine)
    assert state[0] is False and state[1] == EPOCH
    assert _reasons(engine) == ["signature: unsigned"]
    clock.advance(60)
    replayer = Client(broker, "gw2", passwords["gw2"])  # stands in for the broker
    replayer.connect()
    replayer.publish(topic, genuine_online)
    _seen(ingest, "ignored", 1)
    replayer.close()
    assert _state(engine) == state


def test_replaying_genuine_old_batches_is_harmless(rig) -> None:
    engine, _clock, ingest, sealers, gw2, _pw = rig
    topic = Topics("gw2").data
    old = sealers["gw2"].seal(topic, _batch("gw2", 1, 10))
    gw2.publish(topic, old)
    gw2.publish(topic, sealers["gw2"].seal(topic, _batch("gw2", 11, 20)))
    _seen(ingest, "data", 2)
    for _ in range(3):
        gw2.publish(topic, old)  # the broker replays what it relayed
    _seen(ingest, "data", 5)
    assert ingest.stats.records == 20 and ingest.stats.duplicates == 30
    gw2.wait(lambda: len(_acks(gw2)) >= 5, what="the Acks")
    assert [a.upto for a in _acks(gw2)] == [10, 20, 20, 20, 20]  # never less than held
    with reading(engine) as conn:
        assert held_runs(conn, "gw2", EPOCH) == [(1, 20)]
        n = conn.execute(select(func.count()).select_from(readings)).scalar_one()
    assert n == 20 and _reasons(engine) == []
