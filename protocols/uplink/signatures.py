"""Checking the head-end's Ed25519 signatures on archive pushes (sans-IO: keys and time passed in).

The head-end signs every ``ArchivePush`` over ``ArchivePush.signing_bytes()`` (a domain tag, then
canonical JSON of everything but the signature) with the command-signing key valid at the push's
``issued`` time; the gateway holds the public keys in its trust file (``taiqu-trust-v1``: key id,
public key, cut-over date) and calls ``check_archive`` before it applies a push.  Refusals, in
order, each a named reason::

    wrong_gateway   the push names another gateway than the one checking it
    unsigned        no signature (and signatures are required)
    unknown_key     key id not in the trust file
    key_retired     the push was issued at or after its key's cut-over date
    bad_signature   the signature does not verify (forged, tampered with, malformed)
    not_newer       the version is not above the one running (checked only after the signature,
                    so a forged high version can neither apply nor block the real next one)

An archive is long-lived (retained, applied once) so a key's cut-over is compared with the push's
``issued``, not with the gateway's clock: a push signed before a rotation stays valid after it.
A *compromised* key is removed from the trust file, and then refused as ``unknown_key``.

Keys are anything with ``public_key`` (an ``Ed25519PublicKey``) and ``not_after`` (an aware
datetime or None), e.g. ``gateway.signature.TrustedKey``; ``parse_trusted`` builds them from a
parsed trust document.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, Protocol

from protocols.errors import ContractError
from protocols.uplink.messages import ArchivePush, Signature

if TYPE_CHECKING:  # ``cryptography`` is imported with the first trusted key (``parse_trusted``)
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

TRUST_FORMAT = "taiqu-trust-v1"


class ArchiveRefusal(StrEnum):
    """Why an archive push is not applied."""

    UNSIGNED = "unsigned"
    WRONG_GATEWAY = "wrong_gateway"
    UNKNOWN_KEY = "unknown_key"
    KEY_RETIRED = "key_retired"
    BAD_SIGNATURE = "bad_signature"
    NOT_NEWER = "not_newer"


class PublicKey(Protocol):
    """A trusted head-end key (``gateway.signature.TrustedKey`` has this shape)."""

    @property
    def public_key(self) -> Ed25519PublicKey: ...

    @property
    def not_after(self) -> datetime | None: ...


@dataclass(frozen=True)
class TrustedKey:
    """A head-end public key and its cut-over date (None: open)."""

    key_id: str
    public_key: Ed25519PublicKey
    not_after: datetime | None = None


def parse_trusted(doc: Any) -> dict[str, TrustedKey]:
    """Trusted keys by id from a parsed ``taiqu-trust-v1`` document (``ContractError`` if bad)."""
    if not isinstance(doc, dict) or doc.get("format") != TRUST_FORMAT:
        raise ContractError(f"not a {TRUST_FORMAT} document")
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    keys: dict[str, TrustedKey] = {}
    for i, row in enumerate(doc.get("keys") or []):
        try:
            raw = base64.b64decode(row["public_key"], validate=True)
            cut = row.get("not_after")
            not_after = datetime.fromisoformat(cut.replace("Z", "+00:00")) if cut else None
            if not_after is not None and not_after.tzinfo is None:
                raise ValueError("not_after has no UTC offset")
            key_id = str(row["key_id"])
            keys[key_id] = TrustedKey(key_id, Ed25519PublicKey.from_public_bytes(raw), not_after)
        except (KeyError, TypeError, ValueError, AttributeError, binascii.Error) as exc:
            raise ContractError(f"trust document: keys[{i}] is not usable ({exc})") from None
    return keys


def verify_signature(
    signature: Signature, data: bytes, keys: Mapping[str, PublicKey], signed_at: datetime
) -> ArchiveRefusal | None:
    """Whether ``signature`` over ``data`` is by a trusted key open at ``signed_at``."""
    key = keys.get(signature.key_id)
    if key is None:
        return ArchiveRefusal.UNKNOWN_KEY
    if key.not_after is not None and signed_at >= key.not_after:
        return ArchiveRefusal.KEY_RETIRED
    from cryptography.exceptions import InvalidSignature  # loaded with the key already

    try:
        key.public_key.verify(base64.b64decode(signature.value, validate=True), data)
    except (binascii.Error, ValueError, InvalidSignature):
        return ArchiveRefusal.BAD_SIGNATURE
    return None


def check_archive(
    push: ArchivePush,
    *,
    gateway: str,
    keys: Mapping[str, PublicKey],
    running: int | None = None,
    required: bool = True,
) -> ArchiveRefusal | None:
    """The first reason not to apply ``push`` on ``gateway`` running version ``running``.

    With ``required`` false an unsigned push is accepted (a test bench); a signed one is still
    verified, so a bad signature is never applied.
    """
    if push.gateway != gateway:
        return ArchiveRefusal.WRONG_GATEWAY
    if push.signature is None:
        if required:
            return ArchiveRefusal.UNSIGNED
    else:
        refusal = verify_signature(push.signature, push.signing_bytes(), keys, push.issued)
        if refusal is not None:
            return refusal
    if running is not None and push.version <= running:
        return ArchiveRefusal.NOT_NEWER
    return None
