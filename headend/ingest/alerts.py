"""Security alerts from the ingest: gateways whose messages failed their signature check.

A message refused by signature (dead letter ``signature: …``, ``headend.ingest.keys``) is either
forged — someone publishes on the gateway's topics: its broker password is stolen, or the broker
itself — or signed with a key the head-end revoked (a re-enrolled gateway not yet given its new
bundle).  Either way an operator must look, so each such gateway is a critical alert
(``uplink.forged``) while it has such dead letters in the last ``window`` (24 h), listed with the
archive alerts (``GET /api/v1/gateways/alerts`` and the console's overview).

A gateway the head-end hears from without a registered uplink key is a warning
(``uplink.unsigned``): its messages are accepted unverified while ``[ingest] require_signatures``
is false (and refused once it is true), so a broker attacker could still forge its readings.
A gateway whose keys were all revoked (``revoke-gateway``) is not one of them: everything on its
topics is refused (``signature: revoked``), so anything still arriving is ``uplink.forged``.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from headend.archive.push import ArchiveAlert
from headend.db.tables import dead_letters, gateway_state
from headend.security.gateway_keys import keyed_gateways, revoked_gateways

WINDOW = timedelta(hours=24)


def forged_uplink(
    conn: Connection, now: datetime, gateways: list[str] | None = None, window: timedelta = WINDOW
) -> list[ArchiveAlert]:
    """One ``uplink.forged`` alert per gateway with signature refusals since ``now - window``."""
    query = (
        select(dead_letters.c.gateway, func.count(), func.min(dead_letters.c.received))
        .where(
            dead_letters.c.reason.like("signature:%"),
            dead_letters.c.received >= now - window,
            dead_letters.c.gateway.is_not(None),
        )
        .group_by(dead_letters.c.gateway)
        .order_by(dead_letters.c.gateway)
    )
    if gateways is not None:
        query = query.where(dead_letters.c.gateway.in_(gateways))
    return [
        ArchiveAlert(
            gateway,
            "uplink.forged",
            "critical",
            f"{count} message(s) on gateway {gateway}'s topics failed its signature check in the "
            f"last {window.total_seconds() / 3600:g} h: forged (its broker password or the broker "
            "is compromised) or signed with a revoked key; see the dead letters",
            None,
            None,
            since,
            count,
        )
        for gateway, count, since in conn.execute(query)
    ]


def unsigned_uplink(
    conn: Connection, now: datetime, gateways: list[str] | None = None
) -> list[ArchiveAlert]:
    """One ``uplink.unsigned`` warning per gateway heard from that has no current key."""
    heard = set(conn.execute(select(gateway_state.c.gateway)).scalars())
    if gateways is not None:
        heard &= set(gateways)
    message = (
        "gateway {gw} has no uplink signing key registered: its messages are accepted unverified "
        "while [ingest] require_signatures = false (refused once true); enrol it again or run "
        "taiqu headend rekey-gateway"
    )
    return [
        ArchiveAlert(gw, "uplink.unsigned", "warning", message.format(gw=gw), None, None, None)
        for gw in sorted(heard - keyed_gateways(conn) - revoked_gateways(conn))
    ]
