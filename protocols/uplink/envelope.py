"""The signed uplink envelope: a gateway's Ed25519 signature around the exact bytes it publishes.

Every ``up/data``, ``up/status`` and ``up/result`` payload of a gateway with a key (issued by
``taiqu headend enrol-gateway``) travels as::

    "TQS1"   4 bytes   magic (neither ``{`` nor a zlib header: an unsigned payload is told apart)
    key id   8 bytes   the first 8 bytes of SHA-256 of the gateway's raw public key
    sig     64 bytes   Ed25519 over  b"taiqu-uplink-v1\\n" + topic + b"\\n" + body
    body             the encoded message exactly as ``codec.encode`` made it (zlib or JSON)

The signature covers the body *as published* (compressed where it is), so the receiver verifies
before it inflates or parses anything, and the topic, so a signed status can never be replayed
as a result or on another gateway's topic.  76 bytes per message; nothing MQTT-version specific,
so it survives any broker, retained messages and last wills included.

``check`` is what a receiver runs: the first reason to refuse (``UplinkRefusal``) or the body.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from protocols.errors import ContractError
from protocols.uplink.codec import MAX_PAYLOAD

MAGIC = b"TQS1"
DOMAIN = b"taiqu-uplink-v1\n"
KEY_ID_BYTES = 8
SIGNATURE_BYTES = 64
HEADER = len(MAGIC) + KEY_ID_BYTES + SIGNATURE_BYTES


class UplinkRefusal(StrEnum):
    """Why a gateway's message is not used (dead letter reason ``signature: <value>``)."""

    UNSIGNED = "unsigned"  # the gateway has a registered key but the message has no envelope
    UNKNOWN_KEY = "unknown_key"  # signed with a key not registered (or no longer) for it
    BAD_SIGNATURE = "bad_signature"  # the signature does not verify (forged, tampered with)
    NO_REGISTERED_KEY = "no_registered_key"  # the gateway has no key and the policy needs one
    REVOKED = "revoked"  # every key the gateway had is revoked (revoke-gateway): refused always


def raw_public(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(public: bytes | Ed25519PublicKey) -> str:
    """A gateway key's id: 16 hex digits of SHA-256 of its raw public key."""
    raw = public if isinstance(public, bytes) else raw_public(public)
    return hashlib.sha256(raw).digest()[:KEY_ID_BYTES].hex()


def signing_bytes(topic: str, body: bytes) -> bytes:
    """What the signature covers: a domain tag, the topic, then the body as published."""
    return DOMAIN + topic.encode() + b"\n" + body


@dataclass(frozen=True)
class Sealed:
    """An envelope taken apart (not verified yet)."""

    key_id: str
    signature: bytes
    body: bytes


class Sealer:
    """A gateway's signing key: ``seal(topic, body)`` is what it publishes."""

    def __init__(self, private_key: Ed25519PrivateKey) -> None:
        self._key = private_key
        self._key_id = bytes.fromhex(key_id(private_key.public_key()))

    @property
    def key_id(self) -> str:
        return self._key_id.hex()

    def seal(self, topic: str, body: bytes) -> bytes:
        signature = self._key.sign(signing_bytes(topic, body))
        return MAGIC + self._key_id + signature + body


def unseal(payload: bytes) -> Sealed | None:
    """The envelope of ``payload``, None when it is unsigned (``ContractError`` if truncated)."""
    if payload[: len(MAGIC)] != MAGIC:
        return None
    if len(payload) <= HEADER:
        raise ContractError(f"signed envelope of {len(payload)} bytes has no body")
    kid = payload[len(MAGIC) : len(MAGIC) + KEY_ID_BYTES].hex()
    return Sealed(kid, bytes(payload[len(MAGIC) + KEY_ID_BYTES : HEADER]), bytes(payload[HEADER:]))


def check(
    topic: str,
    payload: bytes,
    keys: Mapping[str, Ed25519PublicKey],
    *,
    required: bool,
    revoked: bool = False,
) -> tuple[UplinkRefusal | None, bytes]:
    """(refusal, body) for ``payload`` received on ``topic`` from a gateway whose registered keys
    are ``keys`` (id → key; empty: none registered).

    A gateway with a registered key must sign every message with one of them.  For a gateway
    without one, ``required`` refuses everything (``no_registered_key``); otherwise the body is
    used unverified (signed or not: there is nothing to check it against) — unless ``revoked``:
    it had keys and all were revoked, so nothing it sends is accepted (never a downgrade to
    unverified).
    A payload over ``MAX_PAYLOAD`` plus the header is refused (``ContractError``) before any
    signature is computed over it.
    """
    if len(payload) > MAX_PAYLOAD + HEADER:
        raise ContractError(f"payload of {len(payload)} bytes is over {MAX_PAYLOAD} bytes")
    sealed = unseal(payload)
    if not keys:
        if revoked:
            return UplinkRefusal.REVOKED, b""
        if required:
            return UplinkRefusal.NO_REGISTERED_KEY, b""
        return None, payload if sealed is None else sealed.body
    if sealed is None:
        return UplinkRefusal.UNSIGNED, b""
    key = keys.get(sealed.key_id)
    if key is None:
        return UplinkRefusal.UNKNOWN_KEY, b""
    try:
        key.verify(sealed.signature, signing_bytes(topic, sealed.body))
    except InvalidSignature:
        return UplinkRefusal.BAD_SIGNATURE, b""
    return None, sealed.body
