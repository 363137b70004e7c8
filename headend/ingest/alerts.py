"""Security alerts from the ingest: gateways whose messages failed their signature check.

A message refused by signature (dead letter ``signature: …``, ``headend.ingest.keys``) is either
forged — someone publishes on the gateway's topics: its broker password is stolen, or the broker
itself — or signed with a key the head-end revoked (a re-enrolled gateway not yet given its new
bundle).  Either way an operator must look, so each such gateway is a critical alert
(``uplink.forged``) while it has such dead letters in the last ``window`` (24 h), listed with the
archive alerts (``GET /api/v1/gateways/alerts`` and the console's overview).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Connection, func, select

from headend.archive.push import ArchiveAlert
from headend.db.tables import dead_letters

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
