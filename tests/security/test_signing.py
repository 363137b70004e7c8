"""Command signing end to end: head-end key store and signer ⇄ the gateway's verifier."""

from __future__ import annotations

import base64
import json
import os
import stat
from datetime import UTC, datetime, timedelta

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.commands import CommandExecutor
from gateway.signature import (
    NONCE_KEY,
    Refusal,
    SignatureConfig,
    SignatureVerifier,
    TrustFileError,
    build_verifier,
    load_trust,
)
from gateway.store.store import Store
from headend.commands.signing import Ed25519Signer, NoSigner, sign_command
from headend.security.errors import KeyStoreError
from headend.security.keys import KeyStore
from protocols.uplink import Command, CommandAction, CommandState, Signature, decode, encode
from taiqu.clock import ManualClock

NOW = datetime(2026, 3, 2, 2, 0, tzinfo=UTC)
GW = "gw-0001"


class MemoryState:
    """The store's key-value state, in memory (a real Store is used where persistence matters)."""

    def __init__(self) -> None:
        self.values: dict[str, object] = {}

    def get_state(self, key, default=None):
        return self.values.get(key, default)

    def set_state(self, key, value):
        self.values[key] = json.loads(json.dumps(value))


def command(n: int = 1, *, issued: datetime = NOW, minutes: int = 60, **kw) -> Command:
    fields = {
        "id": f"c-{n:04d}",
        "gateway": GW,
        "meters": ("202611240001",),
        "action": CommandAction.RELAY_TRIP,
        "params": {},
        "issued": issued,
        "valid_until": issued + timedelta(minutes=minutes),
        "nonce": f"nonce-{n:08d}",
        **kw,
    }
    return Command(**fields)


@pytest.fixture
def keys(tmp_path) -> KeyStore:
    store = KeyStore(tmp_path / "keys")
    store.create(NOW - timedelta(days=1))
    return store


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(NOW)


def verifier_for(keys: KeyStore, clock, state=None, **kw) -> SignatureVerifier:
    path = keys.export_trust(keys.directory.parent / "trust.json", clock.now())
    return SignatureVerifier(load_trust(path), state or MemoryState(), clock, **kw)


def over_the_wire(cmd: Command) -> Command:
    """What the gateway decodes from the head-end's published bytes."""
    return decode(encode(cmd), Command)


# -- key store ---------------------------------------------------------------------------------
def test_private_keys_and_keyring_are_owner_only(keys: KeyStore) -> None:
    files = list(keys.directory.iterdir())
    assert {p.suffix for p in files} == {".json", ".pem"}
    for path in files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert stat.S_IMODE(keys.directory.stat().st_mode) == 0o700


def test_a_key_readable_by_others_is_refused(keys: KeyStore) -> None:
    key_id = keys.entries()[0].key_id
    os.chmod(keys.directory / f"{key_id}.pem", 0o644)
    with pytest.raises(KeyStoreError, match="chmod 600"):
        keys.private_key(key_id)


def test_create_twice_is_refused(keys: KeyStore) -> None:
    with pytest.raises(KeyStoreError, match="rotate"):
        keys.create(NOW)


def test_key_id_names_date_and_fingerprint(keys: KeyStore) -> None:
    info = keys.entries()[0]
    assert info.key_id.startswith("he-20260301-") and len(info.key_id) == len("he-20260301-") + 8


# -- signer → verifier -------------------------------------------------------------------------
def test_signed_command_is_accepted_after_the_wire(keys: KeyStore, clock) -> None:
    signed = sign_command(command(), Ed25519Signer(keys))
    assert signed.signature is not None and signed.signature.key_id == keys.entries()[0].key_id
    assert verifier_for(keys, clock)(over_the_wire(signed)) is None


def test_no_signer_declines() -> None:
    assert sign_command(command(), NoSigner()).signature is None


def test_unsigned_refused_when_required_accepted_otherwise(keys, clock) -> None:
    assert verifier_for(keys, clock)(command()) == "unsigned"
    assert verifier_for(keys, clock, required=False)(command()) is None


def test_unknown_key_id(keys, clock) -> None:
    other = KeyStore(keys.directory.parent / "other")
    other.create(NOW - timedelta(days=1))
    signed = sign_command(command(), Ed25519Signer(other))
    assert verifier_for(keys, clock)(signed) == Refusal.UNKNOWN_KEY


def test_forged_with_a_trusted_key_id(keys, clock) -> None:
    """An attacker names the trusted key id but signs with a key of their own."""
    cmd = command()
    forged = Ed25519PrivateKey.generate().sign(cmd.signing_bytes())
    sig = Signature(key_id=keys.entries()[0].key_id, value=base64.b64encode(forged).decode())
    assert verifier_for(keys, clock)(cmd.model_copy(update={"signature": sig})) == "bad_signature"


@pytest.mark.parametrize(
    "change",
    [
        {"meters": ("202611240002",)},
        {"meters": None},
        {"action": CommandAction.RELAY_CLOSE_DIRECT},
        {"gateway": "gw-0002"},
        {"params": {"x": 1}},
        {"valid_until": NOW + timedelta(hours=5)},
        {"issued": NOW - timedelta(minutes=1)},
        {"nonce": "nonce-other1"},
        {"id": "c-9999"},
    ],
    ids=lambda c: next(iter(c)),
)
def test_every_signed_field_is_covered(keys, clock, change) -> None:
    signed = sign_command(command(), Ed25519Signer(keys))
    tampered = over_the_wire(signed).model_copy(update=change)
    assert verifier_for(keys, clock)(tampered) == "bad_signature"


@pytest.mark.parametrize("value", ["not base64!", base64.b64encode(b"short").decode(), ""])
def test_malformed_signature_values(keys, clock, value) -> None:
    sig = Signature(key_id=keys.entries()[0].key_id, value=value)
    assert verifier_for(keys, clock)(command().model_copy(update={"signature": sig})) == (
        "bad_signature"
    )


def test_expired(keys, clock) -> None:
    signed = sign_command(command(issued=NOW - timedelta(hours=2)), Ed25519Signer(keys))
    assert verifier_for(keys, clock)(signed) == "expired"


def test_issued_in_the_future(keys, clock) -> None:
    signed = sign_command(command(issued=NOW + timedelta(hours=1)), Ed25519Signer(keys))
    assert verifier_for(keys, clock)(signed) == "not_yet_valid"
    near = sign_command(command(2, issued=NOW + timedelta(minutes=4)), Ed25519Signer(keys))
    assert verifier_for(keys, clock)(near) is None  # within the 5 minutes of skew


def test_validity_too_long(keys, clock) -> None:
    signed = sign_command(command(minutes=8 * 24 * 60), Ed25519Signer(keys))
    assert verifier_for(keys, clock)(signed) == "validity_too_long"


def test_replayed_nonce_persisted_in_the_store(keys, clock, tmp_path) -> None:
    store = Store.open(tmp_path / "store.db", clock=clock)
    signed = over_the_wire(sign_command(command(), Ed25519Signer(keys)))
    assert verifier_for(keys, clock, store)(signed) is None
    store.close()
    reopened = Store.open(tmp_path / "store.db", clock=clock)  # a restart in between
    assert verifier_for(keys, clock, reopened)(signed) == "replayed"
    reopened.close()


def test_nonces_are_forgotten_once_their_command_expired(keys, clock) -> None:
    state = MemoryState()
    verify = verifier_for(keys, clock, state)
    signer = Ed25519Signer(keys)
    assert verify(sign_command(command(1, minutes=10), signer)) is None
    assert verify(sign_command(command(2, minutes=60), signer)) is None
    clock.advance(11 * 60)
    assert verify(sign_command(command(3, issued=clock.now()), signer)) is None
    assert set(state.values[NONCE_KEY]) == {"nonce-00000002", "nonce-00000003"}


def test_nonce_memory_is_bounded(keys, clock) -> None:
    verify = verifier_for(keys, clock, max_nonces=10)
    signer = Ed25519Signer(keys)
    results = [verify(sign_command(command(n), signer)) for n in range(11)]
    assert results[:10] == [None] * 10 and results[10] == "nonce_memory_full"
    assert verify.refusals == {"nonce_memory_full": 1}


# -- rotation -----------------------------------------------------------------------------------
def test_rotation_overlap_then_cut_over(keys, clock) -> None:
    old = keys.entries()[0]
    activate, cut_over = NOW + timedelta(days=1), NOW + timedelta(days=8)
    new = keys.rotate(NOW, activate, cut_over)
    signer = Ed25519Signer(keys)
    trust = keys.export_trust(keys.directory.parent / "trust.json", NOW)
    verify = SignatureVerifier(load_trust(trust), MemoryState(), clock)  # installed before

    before = sign_command(command(1), signer)
    assert before.signature and before.signature.key_id == old.key_id
    assert verify(before) is None

    clock.current = activate + timedelta(minutes=30)
    after = sign_command(command(2, issued=clock.now()), signer)
    assert after.signature and after.signature.key_id == new.key_id
    assert verify(after) is None
    in_flight = sign_command(command(3, issued=activate - timedelta(minutes=5)), signer)
    assert in_flight.signature and in_flight.signature.key_id == old.key_id
    assert verify(in_flight) is None  # the old key is still accepted during the overlap

    clock.current = cut_over + timedelta(minutes=1)
    stale = command(4, issued=clock.now()).model_copy(
        update={"signature": None}
    )  # an attacker holding the old private key after cut-over
    old_priv = keys.private_key(old.key_id)
    sig = Signature(
        key_id=old.key_id,
        value=base64.b64encode(old_priv.sign(stale.signing_bytes())).decode(),
    )
    assert verify(stale.model_copy(update={"signature": sig})) == "key_retired"
    assert verify(sign_command(command(5, issued=clock.now()), signer)) is None
    assert [k["key_id"] for k in keys.trust_document(clock.now())["keys"]] == [new.key_id]
    assert keys.prune(clock.now()) == [old.key_id]
    assert not (keys.directory / f"{old.key_id}.pem").exists()


def test_rotation_refuses_inverted_dates(keys) -> None:
    with pytest.raises(KeyStoreError):
        keys.rotate(NOW, NOW + timedelta(days=2), NOW + timedelta(days=1))


# -- configuration ------------------------------------------------------------------------------
def test_config_required_needs_a_trust_file(tmp_path) -> None:
    with pytest.raises(ValueError, match="trust_file"):
        SignatureConfig(required=True)
    assert not SignatureConfig().enforced
    assert SignatureConfig(trust_file=tmp_path / "t.json").enforced


@pytest.mark.parametrize(
    "text",
    [
        "",
        "{}",
        '{"format": "taiqu-trust-v1", "keys": []}',
        '{"format": "taiqu-trust-v1", "keys": [{"key_id": "k", "public_key": "AAAA"}]}',
    ],
)
def test_bad_trust_files(tmp_path, text) -> None:
    path = tmp_path / "trust.json"
    path.write_text(text)
    with pytest.raises(TrustFileError, match=str(path)):
        load_trust(path)


# -- the attack: broker credentials but no private key -------------------------------------------
class Recorder:
    def __init__(self) -> None:
        self.requests: list[object] = []

    async def transact(self, meter_id, request):
        self.requests.append(request)
        raise AssertionError("the meter must never be reached")


async def test_attacker_with_broker_credentials_cannot_switch_a_meter(keys, clock, tmp_path):
    """Commands published by someone who can reach the command topic but holds no private key."""
    from protocols.uplink.messages import ArchiveMeter

    store = Store.open(tmp_path / "gw.db", clock=clock)
    trust = keys.export_trust(tmp_path / "trust.json", NOW)
    verify = build_verifier(SignatureConfig(trust_file=trust), store, clock)
    bus, results = Recorder(), []
    archive = {
        "202611240001": ArchiveMeter(
            id="202611240001", bus="b", protocol="dlt645-2007", address="202611240001"
        )
    }
    executor = CommandExecutor(
        GW,
        store=store,
        publish=results.append,
        transact=bus.transact,
        meters=lambda: archive,
        clock=clock,
        clock_synced=lambda: True,
        verify_signature=verify,
    )
    legit = over_the_wire(sign_command(command(1), Ed25519Signer(keys)))
    attempts = {
        "unsigned": command(10),
        "bad_signature": legit.model_copy(update={"id": "c-0011", "meters": None}),
        "unknown_key": sign_command(command(12), Ed25519Signer(_attacker_keys(tmp_path))),
    }
    for expected, attempt in attempts.items():
        state = await executor.handle(decode(encode(attempt), Command))
        assert state is CommandState.REFUSED
        assert results[-1].reason == f"signature: {expected}"
    assert bus.requests == []
    # and a replay of a legitimate command under a fresh id is a forgery, the same id a duplicate
    store.close()


def _attacker_keys(tmp_path) -> KeyStore:
    ks = KeyStore(tmp_path / "attacker")
    ks.create(NOW - timedelta(days=1))
    return ks
