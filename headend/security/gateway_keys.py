"""The gateways' uplink signing keys, as the head-end knows them (table ``gateway_keys``).

``taiqu headend enrol-gateway`` generates a gateway's Ed25519 key pair, writes the private key
into the gateway's bundle and registers the public key here (``register``).  Registering a new
key for a gateway revokes its older ones at once: after a re-enrolment (``--replace``) messages
signed with the old key are refused (``unknown_key``), so a stolen gateway key dies with the
re-enrolment.  A gateway whose keys were all revoked (``revoke-gateway``) is refused whatever
``[ingest] require_signatures`` says: a revoked gateway never falls back to unverified.  The
ingest reads the current keys (``current``) to verify every ``up/*`` message
(``headend.ingest.keys``); revoked rows stay for audit.
"""

from __future__ import annotations

from datetime import datetime

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from sqlalchemy import Connection, insert, select, update

from headend.db.tables import gateway_keys, gateway_state
from headend.security.errors import EnrolmentError
from protocols.uplink.envelope import key_id as key_id_of
from protocols.uplink.topics import GATEWAY_ID


def register(conn: Connection, gateway: str, public_key: bytes, now: datetime, by: str = "") -> str:
    """Make ``public_key`` (raw, 32 bytes) ``gateway``'s signing key; older keys are revoked.

    Returns the key id.  Registering the key it already has is a no-op; a key registered for
    another gateway, or revoked, is refused (``EnrolmentError``).
    """
    if not GATEWAY_ID.match(gateway):
        raise EnrolmentError(f"{gateway!r} is not a gateway id")
    try:
        Ed25519PublicKey.from_public_bytes(public_key)
    except ValueError as exc:
        raise EnrolmentError(f"not an Ed25519 public key ({exc})") from None
    kid = key_id_of(public_key)
    if kid in current(conn, gateway):
        return kid
    for holder, revoked in conn.execute(
        select(gateway_keys.c.gateway, gateway_keys.c.revoked).where(gateway_keys.c.key_id == kid)
    ):
        if holder != gateway:  # one key, two gateways: either could sign as the other
            raise EnrolmentError(f"key {kid} is registered for gateway {holder}, not {gateway}")
        if revoked is not None:
            raise EnrolmentError(f"key {kid} of {gateway} was revoked: it is never reinstated")
    conn.execute(
        update(gateway_keys)
        .where(gateway_keys.c.gateway == gateway, gateway_keys.c.revoked.is_(None))
        .values(revoked=now)
    )
    conn.execute(
        insert(gateway_keys).values(
            gateway=gateway, key_id=kid, public_key=public_key, registered=now, registered_by=by
        )
    )
    return kid


def revoke(conn: Connection, gateway: str, now: datetime) -> int:
    """Revoke every key of ``gateway`` (with ``revoke-gateway``); how many were open."""
    result = conn.execute(
        update(gateway_keys)
        .where(gateway_keys.c.gateway == gateway, gateway_keys.c.revoked.is_(None))
        .values(revoked=now)
    )
    return int(result.rowcount or 0)


def current(conn: Connection, gateway: str) -> dict[str, bytes]:
    """``gateway``'s keys that are not revoked: key id → raw public key."""
    rows = conn.execute(
        select(gateway_keys.c.key_id, gateway_keys.c.public_key).where(
            gateway_keys.c.gateway == gateway, gateway_keys.c.revoked.is_(None)
        )
    )
    return {row.key_id: bytes(row.public_key) for row in rows}


def ever_keyed(conn: Connection, gateway: str) -> bool:
    """Whether ``gateway`` has ever had a key (current or revoked)."""
    query = select(gateway_keys.c.key_id).where(gateway_keys.c.gateway == gateway).limit(1)
    return conn.execute(query).first() is not None


def revoked_gateways(conn: Connection) -> set[str]:
    """Gateways that had keys and have none current (``revoke-gateway``): all refused."""
    return set(conn.execute(select(gateway_keys.c.gateway).distinct()).scalars()) - keyed_gateways(
        conn
    )


def keyed_gateways(conn: Connection) -> set[str]:
    """Gateways with a current key."""
    query = select(gateway_keys.c.gateway).where(gateway_keys.c.revoked.is_(None)).distinct()
    return set(conn.execute(query).scalars())


def overview(conn: Connection) -> list[tuple[str, str | None, datetime | None]]:
    """Every gateway the head-end has heard from or held a key of: (gateway, current key id or
    None, when that key was registered), by gateway id.  The gateways without a key are the ones
    ``[ingest] require_signatures = true`` would refuse."""
    keys = {
        row.gateway: (row.key_id, row.registered)
        for row in conn.execute(select(gateway_keys).where(gateway_keys.c.revoked.is_(None)))
    }
    seen = set(conn.execute(select(gateway_state.c.gateway)).scalars())
    seen |= set(conn.execute(select(gateway_keys.c.gateway).distinct()).scalars())  # revoked too
    return [(gw, *keys.get(gw, (None, None))) for gw in sorted(seen | set(keys))]
