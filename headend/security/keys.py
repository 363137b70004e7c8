"""The head-end's command-signing keys: Ed25519, on disk with owner-only permissions, rotated.

Layout of the key directory (mode 0700, owned by the service user)::

    keys/
      keyring.json          metadata: one entry per key (no secret material)
      <key_id>.pem          the private key, PKCS#8 PEM, mode 0600

``keyring.json``::

    {"format": "taiqu-keyring-v1",
     "keys": [{"key_id": "he-20260302-1a2b3c4d", "public_key": "<base64, 32 bytes>",
               "created": "…Z", "not_before": "…Z", "not_after": null}, …]}

A key *signs* commands issued in ``[not_before, not_after)``; the newest such key is current.
Rotation (``rotate``) adds a key whose ``not_before`` is the *activation* time and gives every
older open key ``not_after`` = the *cut-over* time, so for a while both are valid: gateways
receive the new public key before activation (the trust file lists every key that is not past
its cut-over) and keep accepting the old key for commands still in flight until cut-over.  The
key id names the creation date and the first 8 hex digits of the public key's SHA-256.

The *trust file* (``export_trust``) is what a gateway installs: key ids, public keys and
cut-over dates, nothing secret (its format is read by ``gateway.signature``).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import (
    Ed25519PrivateKey,
    Ed25519PublicKey,
)

from headend.security.errors import KeyStoreError

KEYRING = "keyring.json"
KEYRING_FORMAT = "taiqu-keyring-v1"
TRUST_FORMAT = "taiqu-trust-v1"


def _iso(when: datetime | None) -> str | None:
    if when is None:
        return None
    return when.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _parse(when: str | None) -> datetime | None:
    if when is None:
        return None
    parsed = datetime.fromisoformat(when.replace("Z", "+00:00"))
    if parsed.tzinfo is None:
        raise ValueError(f"{when!r} has no UTC offset")
    return parsed


def raw_public(key: Ed25519PublicKey) -> bytes:
    """The 32 raw bytes of a public key."""
    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id_for(public: bytes, created: datetime) -> str:
    """``he-YYYYMMDD-<8 hex of sha256(public key)>``."""
    return f"he-{created.astimezone(UTC):%Y%m%d}-{hashlib.sha256(public).hexdigest()[:8]}"


@dataclass(frozen=True)
class KeyInfo:
    """One key's metadata (no secret material)."""

    key_id: str
    public_key: bytes
    created: datetime
    not_before: datetime
    not_after: datetime | None = None

    def signs_at(self, when: datetime) -> bool:
        """Whether this key may sign a command issued at ``when``."""
        return self.not_before <= when and (self.not_after is None or when < self.not_after)

    def to_json(self) -> dict[str, Any]:
        return {
            "key_id": self.key_id,
            "public_key": base64.b64encode(self.public_key).decode(),
            "created": _iso(self.created),
            "not_before": _iso(self.not_before),
            "not_after": _iso(self.not_after),
        }

    @classmethod
    def from_json(cls, row: dict[str, Any]) -> KeyInfo:
        created = _parse(row["created"])
        not_before = _parse(row["not_before"])
        assert created is not None and not_before is not None
        public = base64.b64decode(row["public_key"], validate=True)
        if len(public) != 32:
            raise ValueError(f"key {row['key_id']}: public key is not 32 bytes")
        return cls(row["key_id"], public, created, not_before, _parse(row.get("not_after")))


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` atomically to ``path`` with mode 0600 (never readable by others)."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def check_private(path: Path) -> None:
    """Refuse a secret file that its group or others can read or write."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyStoreError(f"{path}: cannot read ({exc.strerror})") from None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyStoreError(
            f"{path} is accessible to others (mode {stat.S_IMODE(mode):04o}): chmod 600 {path}"
        )


class KeyStore:
    """The key directory: create, rotate, load private keys, export the gateways' trust file."""

    def __init__(self, directory: Path | str) -> None:
        self.directory = Path(directory)

    @property
    def keyring_path(self) -> Path:
        return self.directory / KEYRING

    # -- metadata -------------------------------------------------------------------------
    def entries(self) -> list[KeyInfo]:
        """Every key, oldest first (empty when the directory has no keyring yet)."""
        path = self.keyring_path
        if not path.exists():
            return []
        try:
            doc = json.loads(path.read_text())
            if doc.get("format") != KEYRING_FORMAT:
                raise ValueError(f"format is {doc.get('format')!r}, expected {KEYRING_FORMAT}")
            return [KeyInfo.from_json(row) for row in doc["keys"]]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise KeyStoreError(f"{path}: not a usable keyring ({exc})") from None

    def _save(self, keys: list[KeyInfo]) -> None:
        doc = {"format": KEYRING_FORMAT, "keys": [k.to_json() for k in keys]}
        write_private(self.keyring_path, json.dumps(doc, indent=2).encode() + b"\n")

    def _private_path(self, key_id: str) -> Path:
        return self.directory / f"{key_id}.pem"

    def _new_key(self, now: datetime, not_before: datetime) -> KeyInfo:
        private = Ed25519PrivateKey.generate()
        public = raw_public(private.public_key())
        info = KeyInfo(key_id_for(public, now), public, now, not_before)
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        write_private(self._private_path(info.key_id), pem)
        return info

    # -- lifecycle ------------------------------------------------------------------------
    def create(self, now: datetime, not_before: datetime | None = None) -> KeyInfo:
        """The first key, signing from ``not_before`` (default ``now``); refuses a second."""
        # An earlier not_before is allowed: a simulated clock may start in the past.
        if self.entries():
            raise KeyStoreError(f"{self.keyring_path} already holds keys: use rotate")
        if not_before is not None and not_before.tzinfo is None:
            raise KeyStoreError("valid-from needs a UTC offset, e.g. 2026-03-10T09:30:00+08:00")
        self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(self.directory, 0o700)
        info = self._new_key(now, now if not_before is None else not_before)
        self._save([info])
        return info

    def rotate(self, now: datetime, activate_at: datetime, cut_over: datetime) -> KeyInfo:
        """Add a key that signs from ``activate_at``; older open keys stop at ``cut_over``."""
        if not now <= activate_at <= cut_over:
            raise KeyStoreError("rotation needs now <= activate_at <= cut_over")
        keys = self.entries()
        if not keys:
            raise KeyStoreError(f"{self.keyring_path}: no keys yet: use create")
        # Older keys stop at the cut-over: never before they start signing (a key created with a
        # later valid-from), or a command issued then would have no key.
        for k in keys:
            if (k.not_after is None or k.not_after > cut_over) and k.not_before > activate_at:
                raise KeyStoreError(
                    f"key {k.key_id} signs only from {_iso(k.not_before)}: activate the new key "
                    "at or after that"
                )
        info = self._new_key(now, activate_at)
        if any(k.key_id == info.key_id for k in keys):
            raise KeyStoreError(f"key id {info.key_id} already exists; retry")
        closed = [
            replace(k, not_after=cut_over) if k.not_after is None or k.not_after > cut_over else k
            for k in keys
        ]
        self._save([*closed, info])
        return info

    def current(self, when: datetime) -> KeyInfo:
        """The key that signs a command issued at ``when`` (the newest that may)."""
        eligible = [k for k in self.entries() if k.signs_at(when)]
        if not eligible:
            raise KeyStoreError(f"no signing key is valid at {_iso(when)}: rotate or create one")
        return max(eligible, key=lambda k: k.not_before)

    def private_key(self, key_id: str) -> Ed25519PrivateKey:
        """Load ``key_id``'s private key (refused when others can read the file)."""
        path = self._private_path(key_id)
        check_private(path)
        try:
            key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        except (OSError, ValueError) as exc:
            raise KeyStoreError(f"{path}: not a usable private key ({exc})") from None
        if not isinstance(key, Ed25519PrivateKey):
            raise KeyStoreError(f"{path}: not an Ed25519 key")
        return key

    def prune(self, now: datetime) -> list[str]:
        """Delete private keys past their cut-over (metadata stays for audit); their ids."""
        gone = []
        for k in self.entries():
            path = self._private_path(k.key_id)
            if k.not_after is not None and k.not_after <= now and path.exists():
                path.unlink()
                gone.append(k.key_id)
        return gone

    # -- what gateways install -------------------------------------------------------------
    def trust_document(self, now: datetime) -> dict[str, Any]:
        """The trust file's content: every key not past its cut-over at ``now``."""
        keys = [k for k in self.entries() if k.not_after is None or k.not_after > now]
        return {
            "format": TRUST_FORMAT,
            "keys": [
                {
                    "key_id": k.key_id,
                    "public_key": base64.b64encode(k.public_key).decode(),
                    "not_after": _iso(k.not_after),
                }
                for k in keys
            ],
        }

    def export_trust(self, path: Path, now: datetime) -> Path:
        """Write the gateways' trust file (public, but written 0644 atomically)."""
        data = json.dumps(self.trust_document(now), indent=2).encode() + b"\n"
        write_private(path, data)
        os.chmod(path, 0o644)
        return path
