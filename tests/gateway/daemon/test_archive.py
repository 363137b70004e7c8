"""Archive pushes at the gateway: only the head-end's signed pushes apply (docs/security.md)."""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gateway.config import parse_config
from gateway.daemon.archive import accept_push
from gateway.signature import TrustedKey
from protocols.uplink import ArchivePush
from protocols.uplink.messages import ArchiveMeter, Signature

T = datetime(2026, 3, 10, 2, 0, tzinfo=UTC)
HEADEND = Ed25519PrivateKey.generate()
KEYS = {"he-1": TrustedKey("he-1", HEADEND.public_key())}
CFG = parse_config(
    {
        "gateway_id": "gw-1",
        "signatures": {"required": True, "trust_file": "/dev/null"},
        "buses": [{"name": "bus1", "port": "socket://127.0.0.1:7001"}],
    },
    Path("gw.toml"),
)


def push(version: int, swap: bool = False) -> ArchivePush:
    a, b = "000000000001", "000000000007"
    meters = (
        ArchiveMeter(id=a, bus="bus1", protocol="dlt645-2007", address=b if swap else a),
        ArchiveMeter(id=b, bus="bus1", protocol="dlt645-2007", address=a if swap else b),
    )
    return ArchivePush(gateway="gw-1", version=version, issued=T, meters=meters)


def signed(p: ArchivePush, key: Ed25519PrivateKey = HEADEND, key_id: str = "he-1") -> ArchivePush:
    value = base64.b64encode(key.sign(p.signing_bytes())).decode()
    return p.model_copy(update={"signature": Signature(key_id=key_id, value=value)})


def test_the_head_ends_signed_push_applies() -> None:
    meters = accept_push(CFG, signed(push(13)), 12, KEYS)
    assert meters is not None and [m.address for m in meters] == ["000000000001", "000000000007"]


def test_an_unsigned_push_that_swaps_two_meters_is_refused(caplog) -> None:
    assert accept_push(CFG, push(999, swap=True), 12, KEYS) is None
    assert "unsigned" in caplog.text


def test_a_push_signed_by_another_key_is_refused_and_does_not_block_the_real_one() -> None:
    forged = signed(push(999, swap=True), Ed25519PrivateKey.generate())
    assert accept_push(CFG, forged, 12, KEYS) is None
    resigned = signed(push(999, swap=True), Ed25519PrivateKey.generate(), key_id="evil")
    assert accept_push(CFG, resigned, 12, KEYS) is None
    # nothing was applied: the gateway still runs 12, and the real 13 applies
    assert accept_push(CFG, signed(push(13)), 12, KEYS) is not None


def test_a_tampered_signed_push_is_refused() -> None:
    real = signed(push(13))
    tampered = real.model_copy(update={"meters": push(13, swap=True).meters})
    assert accept_push(CFG, tampered, 12, KEYS) is None


def test_an_older_signed_push_is_not_applied() -> None:
    assert accept_push(CFG, signed(push(11)), 12, KEYS) is None
