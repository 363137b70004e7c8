"""Where commands and archive pushes get signed: the ``Signer`` protocol, the no-op default and
``Ed25519Signer``.

The signature covers the message's ``signing_bytes()``: for a ``Command`` the canonical JSON of
everything but the signature (id, gateway, meters, action, params, issued, valid-until, nonce);
for an ``ArchivePush`` a domain tag and the canonical JSON (gateway, version, issued, meters).
``Ed25519Signer`` signs with the key of ``headend.security.keys.KeyStore`` that is valid at the
message's ``issued`` time, so a rotation takes effect at its activation time with no restart.
"""

from __future__ import annotations

import base64
import threading
from datetime import datetime
from pathlib import Path
from typing import Protocol

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from headend.security.keys import KeyStore
from protocols.uplink import Command, Signature


class Signable(Protocol):
    """A contract message that carries a signature: a ``Command`` or an ``ArchivePush``."""

    @property
    def issued(self) -> datetime: ...

    def signing_bytes(self) -> bytes: ...


class Signer(Protocol):
    """Signs a contract message (or declines, returning None)."""

    def sign(self, command: Signable) -> Signature | None: ...


class NoSigner:
    """Sends messages unsigned (gateways that require signatures refuse them)."""

    def sign(self, command: Signable) -> Signature | None:
        return None


class Ed25519Signer:
    """Signs with the key store's key valid at ``command.issued`` (private keys cached)."""

    def __init__(self, store: KeyStore | Path | str) -> None:
        self.store = store if isinstance(store, KeyStore) else KeyStore(store)
        self._cache: dict[str, Ed25519PrivateKey] = {}
        self._lock = threading.Lock()

    def _key(self, key_id: str) -> Ed25519PrivateKey:
        with self._lock:
            key = self._cache.get(key_id)
            if key is None:
                key = self._cache[key_id] = self.store.private_key(key_id)
            return key

    def sign(self, command: Signable) -> Signature:
        """The signature over ``command.signing_bytes()``; raises ``KeyStoreError`` if no key."""
        info = self.store.current(command.issued)
        value = self._key(info.key_id).sign(command.signing_bytes())
        return Signature(alg="ed25519", key_id=info.key_id, value=base64.b64encode(value).decode())


def sign_command(command: Command, signer: Signer) -> Command:
    """``command`` with its signature attached (unchanged when the signer declines)."""
    signature = signer.sign(command)
    return command if signature is None else command.model_copy(update={"signature": signature})
