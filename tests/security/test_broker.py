"""The shipped mosquitto configuration on a real broker: TLS, identities, ACL, persistence."""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import load_pem_private_key
from typer.testing import CliRunner

from headend.config import DatabaseSettings
from headend.db import make_engine
from headend.db.migrate import upgrade
from headend.security import cli
from headend.security.enrol import GATEWAY_PATTERNS, BrokerFiles, enrol_headend
from headend.security.errors import EnrolmentError
from headend.security.gateway_keys import current
from headend.security.keys import KeyStore
from headend.security.passwd import hash_password, verify_password
from protocols.uplink.envelope import key_id, raw_public
from tests.security.broker import Client, SecureBroker, can_connect
from tests.services import mosquitto_binary  # noqa: F401  (fixture)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def broker(mosquitto_binary: str, tmp_path_factory) -> Iterator[SecureBroker]:  # noqa: F811
    b = SecureBroker.make(mosquitto_binary)
    b.start()
    yield b
    b.remove()


@pytest.fixture(scope="module")
def creds(broker: SecureBroker, tmp_path_factory) -> dict[str, str]:
    """Two gateways enrolled through the CLI (their signing keys registered in the head-end's
    database named by -c), one head-end identity; broker reloaded."""
    out = tmp_path_factory.mktemp("bundles")
    keys = KeyStore(out / "keys")
    keys.create(datetime.now(UTC))
    db = DatabaseSettings(url=f"sqlite:///{out / 'headend.db'}")
    engine = make_engine(db)
    upgrade(engine)
    config = out / "headend.toml"
    config.write_text(f'[database]\nurl = "{db.url}"\n')
    runner = CliRunner()
    passwords: dict[str, str] = {}
    for gw in ("gw-a", "gw-b"):
        result = runner.invoke(
            cli.app,
            [
                "enrol-gateway",
                gw,
                "-c",
                str(config),
                "--broker-dir",
                str(broker.broker_dir),
                "--keys-dir",
                str(keys.directory),
                "--ca-dir",
                str(broker.ca.directory),
                "--bundle-dir",
                str(out),
                "--client-cert",
            ],
        )
        assert result.exit_code == 0, result.output
        bundle = out / gw
        assert {p.name for p in bundle.iterdir()} == {
            "broker-password",
            "ca.crt",
            "client.crt",
            "client.key",
            "headend-keys.json",
            "gateway-security.toml",
            "gateway-key.pem",
        }
        assert (bundle / "broker-password").stat().st_mode & 0o077 == 0
        assert (bundle / "gateway-key.pem").stat().st_mode & 0o077 == 0
        key = load_pem_private_key((bundle / "gateway-key.pem").read_bytes(), None)
        assert isinstance(key, Ed25519PrivateKey)
        with engine.connect() as conn:  # the head-end verifies with exactly this key
            assert current(conn, gw) == {key_id(key.public_key()): raw_public(key.public_key())}
        assert "signing_key_file" in (bundle / "gateway-security.toml").read_text()
        assert (bundle / "client.key").stat().st_mode & 0o077 == 0
        passwords[gw] = (bundle / "broker-password").read_text().strip()
    engine.dispose()
    passwords["taiqu-headend"] = enrol_headend("taiqu-headend", broker_dir=broker.broker_dir)
    broker.reload(lambda: can_connect(broker, "taiqu-headend", passwords["taiqu-headend"]))
    return passwords


def connect(broker, creds, user, **kw) -> Client:
    c = Client(broker, user, creds.get(user), **kw)
    c.connect()
    assert c.accepted, f"{user} refused: {c.connect_rc}"
    return c


@pytest.fixture
def headend(broker, creds) -> Iterator[Client]:
    c = connect(broker, creds, "taiqu-headend")
    yield c
    c.close()


def test_unauthenticated_and_wrong_password_are_refused(broker, creds) -> None:
    anonymous = Client(broker, None, None, client_id="anon")
    anonymous.connect()
    assert not anonymous.accepted
    wrong = Client(broker, "gw-a", "not-the-password")
    wrong.connect()
    assert not wrong.accepted
    unknown = Client(broker, "gw-zz", creds["gw-a"])  # someone else's password
    unknown.connect()
    assert not unknown.accepted
    for c in (anonymous, wrong, unknown):
        c.close()


def test_plaintext_is_refused_on_the_tls_listener(broker, creds) -> None:
    c = Client(broker, "gw-a", creds["gw-a"], tls=False)
    try:
        c.connect()
        refused = not c.accepted
    except (TimeoutError, OSError):
        refused = True
    c.close()
    assert refused


def test_tls_certificate_is_the_local_cas(broker) -> None:
    ctx = ssl.create_default_context(cafile=str(broker.ca.cert_path))
    with (
        socket.create_connection(("127.0.0.1", broker.port)) as raw,
        ctx.wrap_socket(raw, server_hostname="localhost") as tls,
    ):
        assert tls.version() in {"TLSv1.2", "TLSv1.3"}
    other = ssl.create_default_context()  # the system CAs do not know this broker
    with (
        socket.create_connection(("127.0.0.1", broker.port)) as raw,
        pytest.raises(ssl.SSLCertVerificationError),
    ):
        other.wrap_socket(raw, server_hostname="localhost")


def test_gateway_cannot_publish_as_another(broker, creds, headend) -> None:
    assert headend.subscribe("taiqu/v1/+/up/#") == 1
    gw_a = connect(broker, creds, "gw-a")
    gw_a.publish("taiqu/v1/gw-b/up/data", b"forged batch")
    gw_a.publish("taiqu/v1/gw-b/up/status", b"forged status")
    gw_a.publish("taiqu/v1/gw-a/up/data", b"own batch")  # in order after the forged ones
    headend.wait(lambda: "taiqu/v1/gw-a/up/data" in headend.topics(), what="own batch")
    assert headend.topics() == ["taiqu/v1/gw-a/up/data"]
    gw_a.close()


def test_gateway_cannot_read_or_write_commands_of_another(broker, creds, headend) -> None:
    gw_a = connect(broker, creds, "gw-a")
    gw_b = connect(broker, creds, "gw-b")
    assert gw_b.subscribe("taiqu/v1/gw-b/down/#") == 1
    # mosquitto grants the subscriptions but checks the read ACL on every message it delivers
    gw_a.subscribe("taiqu/v1/gw-b/down/#")
    gw_a.subscribe("taiqu/v1/+/down/#")
    gw_a.publish("taiqu/v1/gw-b/down/cmd", b"forged command")  # a gateway cannot write down/
    gw_a.publish("taiqu/v1/gw-a/down/cmd", b"forged to itself")
    headend.publish("taiqu/v1/gw-b/down/cmd", b"command for b")
    headend.publish("taiqu/v1/gw-a/down/cmd", b"command for a")
    gw_b.wait(lambda: gw_b.received, what="b's command")
    gw_a.wait(lambda: gw_a.received, what="a's command")
    assert gw_b.received == [("taiqu/v1/gw-b/down/cmd", b"command for b")]
    assert gw_a.received == [("taiqu/v1/gw-a/down/cmd", b"command for a")]
    gw_a.close()
    gw_b.close()


def test_gateway_cannot_take_over_another_gateways_session(broker, creds) -> None:
    gw_b = connect(broker, creds, "gw-b")
    gw_b.subscribe("taiqu/v1/gw-b/down/#")
    intruder = connect(broker, creds, "gw-a", client_id="gw-b")  # broker uses username instead
    intruder.publish("taiqu/v1/gw-a/up/status", b"x")
    gw_b.publish("taiqu/v1/gw-b/up/status", b"still here")
    assert not gw_b.disconnected.is_set()
    intruder.close()
    gw_b.close()


def test_headend_reads_up_through_shared_subscription_and_writes_down(
    broker, creds, headend
) -> None:
    assert headend.subscribe("$share/ingest/taiqu/v1/+/up/#") == 1
    gw_a = connect(broker, creds, "gw-a")
    gw_a.subscribe("taiqu/v1/gw-a/down/#")
    gw_a.publish("taiqu/v1/gw-a/up/result", b"r")
    headend.wait(lambda: headend.received, what="result via $share")
    headend.publish("taiqu/v1/gw-a/down/ack", b"ack")
    gw_a.wait(lambda: gw_a.received, what="ack")
    assert gw_a.received == [("taiqu/v1/gw-a/down/ack", b"ack")]
    gw_a.close()


def test_retained_archive_survives_a_broker_restart(broker, creds, headend) -> None:
    headend.publish("taiqu/v1/gw-b/down/archive", b"archive v7", retain=True)
    headend.close()
    broker.stop()
    broker.start()
    gw_b = connect(broker, creds, "gw-b")
    gw_b.subscribe("taiqu/v1/gw-b/down/archive")
    gw_b.wait(lambda: gw_b.received, what="retained archive")
    assert gw_b.received == [("taiqu/v1/gw-b/down/archive", b"archive v7")]
    gw_b.close()


def test_revoked_gateway_is_refused_after_reload(broker, creds, tmp_path) -> None:
    runner = CliRunner()
    result = runner.invoke(
        cli.app,
        [
            "enrol-gateway",
            "gw-gone",
            "--broker-dir",
            str(broker.broker_dir),
            "--keys-dir",
            str(tmp_path / "nokeys"),
            "--ca-dir",
            str(broker.ca.directory),
            "--bundle-dir",
            str(tmp_path),
            "--no-register-key",
        ],
    )
    assert result.exit_code == 0, result.output
    assert "NOT registered" in result.output
    password = (tmp_path / "gw-gone" / "broker-password").read_text().strip()
    broker.reload(lambda: can_connect(broker, "gw-gone", password))
    result = runner.invoke(
        cli.app,
        ["revoke-gateway", "gw-gone", "--broker-dir", str(broker.broker_dir), "--no-register-key"],
    )
    assert "revoked" in result.output
    broker.reload(lambda: not can_connect(broker, "gw-gone", password))


# -- enrolment without a broker ------------------------------------------------------------------
def test_password_hash_is_mosquittos_format() -> None:
    hashed = hash_password("secret", salt=bytes(range(12)))
    assert hashed.startswith("$7$101$AAECAwQFBgcICQoL$")
    assert verify_password("secret", hashed) and not verify_password("Secret", hashed)


def test_enrolment_refuses_bad_ids_and_re_enrolment(tmp_path: Path) -> None:
    from headend.security.enrol import enrol_gateway

    now = datetime.now(UTC)
    kw = {"broker_dir": tmp_path / "b", "out_dir": tmp_path / "o", "now": now}
    for bad in ("gw/1", "gw+", "#", "", "taiqu-headend"):
        with pytest.raises(EnrolmentError):
            enrol_gateway(bad, **kw)
    first = enrol_gateway("gw-1", **kw)
    with pytest.raises(EnrolmentError, match="--replace"):
        enrol_gateway("gw-1", **kw)
    again = enrol_gateway("gw-1", replace=True, **kw)
    entries = BrokerFiles(tmp_path / "b").passwd.entries()
    assert list(entries) == ["gw-1"]
    assert verify_password(again.password, entries["gw-1"])
    assert not verify_password(first.password, entries["gw-1"])
    acl = (tmp_path / "b" / "acl").read_text().splitlines()
    assert all(acl.count(p) == 1 for p in GATEWAY_PATTERNS)
    snippet = (first.bundle / "gateway-security.toml").read_text()
    assert "trust_file" not in snippet and "ca_file" not in snippet  # no keys, no CA yet
    assert 'signing_key_file = "/etc/taiqu-gateway/security/gateway-key.pem"' in snippet


LISTENER_OPTIONS = {
    "use_username_as_clientid",
    "protocol",
    "cafile",
    "certfile",
    "keyfile",
    "require_certificate",
    "use_identity_as_username",
    "max_connections",
    "bind_interface",
    "mount_point",
    "tls_version",
    "psk_hint",
    "socket_domain",
    "http_dir",
    "ciphers",
}


def test_no_listener_option_before_the_first_listener() -> None:
    """Such an option would open mosquitto's default plaintext listener on port 1883."""
    from tests.security.broker import DEPLOY

    head = (DEPLOY / "taiqu.conf").read_text().split("\nlistener ", 1)[0]
    used = {line.split()[0] for line in head.splitlines() if line and not line.startswith("#")}
    assert not used & LISTENER_OPTIONS
    assert "allow_anonymous false" in head and "persistence true" in head


async def test_stolen_headend_broker_password_cannot_switch_a_meter(broker, creds, tmp_path):
    """The attacker holds the head-end's broker identity; the gateway's executor still refuses."""
    from gateway.commands import CommandExecutor
    from gateway.signature import SignatureConfig, build_verifier
    from gateway.store.store import Store
    from headend.commands.signing import Ed25519Signer, sign_command
    from protocols.uplink import Command, CommandAction, CommandState, decode_message, encode
    from protocols.uplink.messages import ArchiveMeter
    from taiqu.clock import ManualClock

    now = datetime.now(UTC)
    keys = KeyStore(tmp_path / "keys")
    keys.create(now)
    gateway = connect(broker, creds, "gw-a")
    gateway.subscribe("taiqu/v1/gw-a/down/cmd")
    attacker = connect(broker, creds, "taiqu-headend", client_id="attacker")
    body = {
        "id": "evil-1",
        "gateway": "gw-a",
        "meters": None,
        "action": CommandAction.RELAY_TRIP,
        "issued": now,
        "valid_until": now.replace(year=now.year + 1),
        "nonce": "0123456789abcdef",
    }
    forged = Command(**body)
    legit = sign_command(
        Command(
            **{**body, "id": "ok-1", "meters": ("m1",), "valid_until": now + timedelta(minutes=30)}
        ),
        Ed25519Signer(keys),
    )
    replay_as_all = legit.model_copy(update={"id": "evil-2", "meters": None})
    for command in (forged, replay_as_all):
        attacker.publish("taiqu/v1/gw-a/down/cmd", encode(command))
    gateway.wait(lambda: len(gateway.received) == 2, what="both forged commands")
    attacker.close()
    gateway.close()

    clock = ManualClock(now)
    store = Store.open(tmp_path / "gw.db", clock=clock)
    trust = keys.export_trust(tmp_path / "trust.json", now)
    reached: list[object] = []

    async def transact(meter_id, request):
        reached.append(request)

    results: list[object] = []
    executor = CommandExecutor(
        "gw-a",
        store=store,
        publish=results.append,
        transact=transact,
        meters=lambda: {
            "m1": ArchiveMeter(id="m1", bus="b", protocol="dlt645-2007", address="000000000001")
        },
        clock=clock,
        clock_synced=lambda: True,
        verify_signature=build_verifier(SignatureConfig(trust_file=trust), store, clock),
    )
    for topic, payload in gateway.received:
        _, _, command = decode_message(topic, payload)
        assert await executor.handle(command) is CommandState.REFUSED
    assert [r.reason for r in results if r.state is CommandState.REFUSED] == [
        "signature: unsigned",
        "signature: bad_signature",
    ]
    assert reached == []
    store.close()
