"""When the head-end last heard from a gateway: any message, and the last status message.

``gateway_state.last_seen`` is the receipt time of the gateway's latest message of any kind
(data, status, command result): readings arriving at 02:00 mean the gateway is alive even if its
hourly status came at 01:37.  The receipt time of the latest *status* message is kept in the
row's ``health`` JSON under ``STATUS_KEY`` (no schema change), and the gateway's own time of
its latest online status under ``SENT_KEY`` (``sent_of``: the ingest ignores an online status
not later than it, a broker's replay); ``split_health`` separates both again for the API and the
console.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, update

from headend.db.tables import gateway_state

STATUS_KEY = "status_received"
SENT_KEY = "status_sent"


def touch(conn: Connection, gateway: str, now: datetime) -> None:
    """Move ``last_seen`` of a known gateway forward to ``now`` (never backward)."""
    conn.execute(
        update(gateway_state)
        .where(gateway_state.c.gateway == gateway, gateway_state.c.last_seen < now)
        .values(last_seen=now)
    )


def health_with_status(health: dict[str, Any], now: datetime, sent: datetime | None = None) -> str:
    """The ``health`` column for a status message received at ``now`` (``sent``: the gateway's
    time of its latest online status)."""
    marks = {STATUS_KEY: now.isoformat()} | ({SENT_KEY: sent.isoformat()} if sent else {})
    return json.dumps({**health, **marks}, sort_keys=True, default=str)


def split_health(text: str | None) -> tuple[dict[str, Any], datetime | None]:
    """The gateway's own health dict and when its last status message was received."""
    health = json.loads(text) if text else {}
    received = health.pop(STATUS_KEY, None)
    health.pop(SENT_KEY, None)
    return health, datetime.fromisoformat(received) if isinstance(received, str) else None


def sent_of(text: str | None) -> datetime | None:
    """The gateway's own time of its latest online status the ingest applied (None: unknown)."""
    sent = (json.loads(text) if text else {}).get(SENT_KEY)
    return datetime.fromisoformat(sent) if isinstance(sent, str) else None
