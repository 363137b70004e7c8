"""Signed archive pushes: the head-end signs, ``protocols.uplink.signatures`` checks (issue 19).

Before, an unsigned retained ``down/archive`` (version 999) that swapped two meters' addresses was
applied, and the head-end's own next version was then refused as "not newer than 999".  Here the
head-end's pushes carry an Ed25519 signature with the command keys, and ``check_archive`` (what
the gateway calls) refuses the forged one by name, so the real version still applies after it.
The broker part runs over the shipped mosquitto config and ACL, the forger holding the head-end's
broker identity (the strongest broker attacker short of the signing key).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import insert, select

from headend.archive import push
from headend.commands.signing import Ed25519Signer, NoSigner
from headend.config import DatabaseSettings
from headend.db import make_engine, writing
from headend.db.migrate import upgrade
from headend.db.tables import areas, gateways, meters, mqtt_outbox
from headend.security.enrol import enrol_gateway, enrol_headend
from headend.security.keys import KeyStore
from protocols.uplink import ArchivePush, Signature, decode, encode
from protocols.uplink.messages import Command, CommandAction
from protocols.uplink.signatures import ArchiveRefusal, check_archive, parse_trusted
from tests.security.broker import Client, SecureBroker, can_connect
from tests.services import mosquitto_binary  # noqa: F401  (fixture)

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
GW = "gw-a"
SINCE = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def keys(tmp_path: Path) -> KeyStore:
    store = KeyStore(tmp_path / "keys")
    store.create(NOW - timedelta(days=1))
    return store


def trusted(store: KeyStore, tmp_path: Path, at: datetime = NOW):
    path = store.export_trust(tmp_path / "trust.json", at)
    return parse_trusted(json.loads(path.read_text()))


@pytest.fixture
def engine(tmp_path: Path):
    e = make_engine(DatabaseSettings(url=f"sqlite:///{tmp_path / 'h.db'}"))
    upgrade(e)
    with writing(e) as conn:
        conn.execute(insert(gateways).values(id=GW, name=GW, valid_from=SINCE))
        conn.execute(insert(areas).values(id="A", name="A", gateway=GW, valid_from=SINCE))
        conn.execute(
            insert(meters),
            [
                {
                    "id": f"m{i}",
                    "point": f"p{i}",
                    "area": "A",
                    "bus": "bus1",
                    "protocol": "dlt645-2007",
                    "address": f"{i:012d}",
                    "valid_from": SINCE,
                }
                for i in (1, 7)
            ],
        )
    yield e
    e.dispose()


def issued_push(engine, signer, version_wanted: int | None = None) -> tuple[ArchivePush, bytes]:
    """Refresh the gateway's archive (forced) and return the queued push and its bytes."""
    with writing(engine) as conn:
        version = push.refresh(conn, GW, NOW, force=True, signer=signer)
        body = conn.execute(
            select(mqtt_outbox.c.payload).order_by(mqtt_outbox.c.id.desc()).limit(1)
        ).scalar_one()
    message = decode(body, ArchivePush)
    assert message.version == version
    return message, bytes(body)


def test_the_head_ends_push_is_signed_and_verifies(engine, keys, tmp_path):
    real, _ = issued_push(engine, Ed25519Signer(keys))
    assert real.signature is not None and real.signature.key_id == keys.current(NOW).key_id
    assert check_archive(real, gateway=GW, keys=trusted(keys, tmp_path), running=0) is None


def test_forged_pushes_are_refused_by_name_and_do_not_block_the_real_one(engine, keys, tmp_path):
    trust = trusted(keys, tmp_path)
    real, _ = issued_push(engine, Ed25519Signer(keys))
    m1, m7 = real.meters
    swapped = (
        m1.model_copy(update={"address": m7.address}),
        m7.model_copy(update={"address": m1.address}),
    )
    forged_unsigned = real.model_copy(update={"version": 999, "meters": swapped, "signature": None})
    tampered = real.model_copy(update={"meters": swapped})  # the real signature, other meters
    bumped = real.model_copy(update={"version": 999})  # the real signature, a made-up version
    other_key = KeyStore(tmp_path / "attacker-keys")
    other_key.create(NOW - timedelta(days=1))
    foreign = real.model_copy(update={"signature": Ed25519Signer(other_key).sign(real)})
    elsewhere = real.model_copy(update={"gateway": "gw-b"})
    running = real.version - 1
    assert [
        check_archive(p, gateway=GW, keys=trust, running=running)
        for p in (forged_unsigned, tampered, bumped, foreign, elsewhere)
    ] == [
        ArchiveRefusal.UNSIGNED,
        ArchiveRefusal.BAD_SIGNATURE,
        ArchiveRefusal.BAD_SIGNATURE,
        ArchiveRefusal.UNKNOWN_KEY,
        ArchiveRefusal.WRONG_GATEWAY,
    ]
    # nothing forged was applied: the gateway still runs `running`, and the real push applies
    assert check_archive(real, gateway=GW, keys=trust, running=running) is None
    assert (
        check_archive(real, gateway=GW, keys=trust, running=real.version)
        is ArchiveRefusal.NOT_NEWER
    )


def test_a_command_signature_never_verifies_as_an_archive_signature(engine, keys, tmp_path):
    real, _ = issued_push(engine, Ed25519Signer(keys))
    command = Command(
        id="c-1",
        gateway=GW,
        meters=("m1",),
        action=CommandAction.RELAY_TRIP,
        issued=NOW,
        valid_until=NOW + timedelta(hours=1),
        nonce="0123456789abcdef",
    )
    lifted = real.model_copy(update={"signature": Ed25519Signer(keys).sign(command)})
    assert (
        check_archive(lifted, gateway=GW, keys=trusted(keys, tmp_path))
        is ArchiveRefusal.BAD_SIGNATURE
    )


def test_rotation_keeps_a_push_signed_before_the_cut_over(engine, keys, tmp_path):
    before, _ = issued_push(engine, Ed25519Signer(keys))
    keys.rotate(NOW, activate_at=NOW, cut_over=NOW + timedelta(days=1))
    trust = trusted(keys, tmp_path, NOW)
    assert check_archive(before, gateway=GW, keys=trust) is None  # issued before the cut-over
    old_id = before.signature.key_id
    late = before.model_copy(update={"issued": NOW + timedelta(days=2), "signature": None})
    value = keys.private_key(old_id).sign(late.signing_bytes())  # the old key, after cut-over
    late = late.model_copy(
        update={"signature": Signature(key_id=old_id, value=base64.b64encode(value).decode())}
    )
    assert check_archive(late, gateway=GW, keys=trust) is ArchiveRefusal.KEY_RETIRED
    fresh = Ed25519Signer(keys).sign(late)  # signed as the head-end would: with the new key
    assert fresh.key_id != old_id
    late = late.model_copy(update={"signature": fresh})
    assert check_archive(late, gateway=GW, keys=trust) is None


def test_without_a_signer_the_push_is_unsigned_and_refused_where_required(engine, keys, tmp_path):
    unsigned, _ = issued_push(engine, NoSigner())
    assert unsigned.signature is None
    trust = trusted(keys, tmp_path)
    assert check_archive(unsigned, gateway=GW, keys=trust) is ArchiveRefusal.UNSIGNED
    assert check_archive(unsigned, gateway=GW, keys=trust, required=False) is None


# --- over the shipped broker config ---------------------------------------------------------


@pytest.fixture(scope="module")
def broker(mosquitto_binary: str) -> Iterator[SecureBroker]:  # noqa: F811
    b = SecureBroker.make(mosquitto_binary)
    b.start()
    yield b
    b.remove()


@pytest.mark.integration
def test_a_forged_retained_archive_on_the_broker_is_refused_and_the_real_one_applies(
    broker, engine, keys, tmp_path
):
    headend_password = enrol_headend("taiqu-headend", broker_dir=broker.broker_dir)
    enrolment = enrol_gateway(
        GW, broker_dir=broker.broker_dir, out_dir=tmp_path / "bundles", now=NOW, keys=keys
    )
    gateway_password = enrolment.password
    broker.reload(lambda: can_connect(broker, GW, gateway_password))
    topic = f"taiqu/v1/{GW}/down/archive"
    trust = trusted(keys, tmp_path)

    real, real_bytes = issued_push(engine, Ed25519Signer(keys))
    m1, m7 = real.meters
    swapped = (
        m1.model_copy(update={"address": m7.address}),
        m7.model_copy(update={"address": m1.address}),
    )
    forged = real.model_copy(update={"version": 999, "meters": swapped, "signature": None})

    attacker = Client(broker, "taiqu-headend", headend_password, client_id="attacker")
    attacker.connect()
    assert attacker.accepted
    attacker.publish(topic, encode(forged), retain=True)  # replaces the retained archive
    attacker.close()

    running = 0
    gateway = Client(broker, GW, gateway_password)
    gateway.connect()
    gateway.subscribe(topic)
    gateway.wait(lambda: gateway.received, what="the retained (forged) archive")
    for _, payload in gateway.received:
        message = decode(payload, ArchivePush)
        refusal = check_archive(message, gateway=GW, keys=trust, running=running)
        assert refusal is ArchiveRefusal.UNSIGNED
    headend = Client(broker, "taiqu-headend", headend_password, client_id="taiqu-headend")
    headend.connect()
    headend.publish(topic, real_bytes, retain=True)  # the head-end's (re-)push
    headend.close()
    gateway.wait(lambda: len(gateway.received) == 2, what="the head-end's archive")
    message = decode(gateway.received[1][1], ArchivePush)
    assert check_archive(message, gateway=GW, keys=trust, running=running) is None
    assert [m.address for m in message.meters] == [m1.address, m7.address]
    gateway.close()
