"""The ingest's view of the gateways' signing keys: verify each ``up/*`` message before using it.

``GatewayKeys`` caches each gateway's current public keys (``headend.security.gateway_keys``) for
``recheck`` seconds (5: a key just registered, or revoked by a re-enrolment, is in force within
that), so verifying costs one Ed25519 check per message and a query per gateway every few
seconds.  A gateway whose keys were all revoked is refused (``revoked``) whatever the policy for
gateways never given one.  ``authentic`` returns the body to decode, or raises
``ContractError("signature: …")`` — the message then goes to the dead letters, before it
touches a stream or a command.
"""

from __future__ import annotations

import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection

from headend.security.gateway_keys import current, ever_keyed
from protocols.errors import ContractError
from protocols.uplink.envelope import UplinkRefusal, check, unseal

RECHECK_SECONDS = 5.0
MAX_CACHED = 10_000  # gateways whose keys are cached before expired entries are dropped


class GatewayKeys:
    """Cached current keys per gateway, and the policy for gateways without one."""

    def __init__(self, *, require: bool = False, recheck: float = RECHECK_SECONDS) -> None:
        self.require = require
        self._recheck = recheck
        self._keys: dict[str, tuple[float, dict[str, Ed25519PublicKey], bool]] = {}

    def invalidate(self) -> None:
        self._keys.clear()

    def of(self, conn: Connection, gateway: str) -> dict[str, Ed25519PublicKey]:
        """``gateway``'s current keys by id (empty: none registered)."""
        return self._lookup(conn, gateway)[0]

    def _lookup(self, conn: Connection, gateway: str) -> tuple[dict[str, Ed25519PublicKey], bool]:
        """(current keys by id, whether every key it had is revoked)."""
        cached = self._keys.get(gateway)
        if cached is not None and time.monotonic() - cached[0] <= self._recheck:
            return cached[1], cached[2]
        keys = {
            kid: Ed25519PublicKey.from_public_bytes(raw)
            for kid, raw in current(conn, gateway).items()
        }
        revoked = not keys and ever_keyed(conn, gateway)
        if len(self._keys) >= MAX_CACHED:  # invented gateway ids (a broker attacker): forget
            self._keys = {  # the expired entries, so the cache cannot grow without bound
                gw: entry
                for gw, entry in self._keys.items()
                if time.monotonic() - entry[0] <= self._recheck
            }
        self._keys[gateway] = (time.monotonic(), keys, revoked)
        return keys, revoked

    def authentic(self, conn: Connection, gateway: str, topic: str, payload: bytes) -> bytes:
        """The body of ``payload`` if ``gateway`` may have sent it; ``ContractError`` otherwise."""
        keys, revoked = self._lookup(conn, gateway)
        refusal, body = check(topic, payload, keys, required=self.require, revoked=revoked)
        if refusal is UplinkRefusal.UNKNOWN_KEY and (sealed := unseal(payload)) is not None:
            # a revoked key's id is in gateway_keys: a re-enrolled gateway, not a forger
            raise ContractError(f"signature: {refusal.value} (key {sealed.key_id})")
        if refusal is not None:
            raise ContractError(f"signature: {refusal.value}")
        return body
