"""Messages to the gateways, written in the transaction that decides them, published later.

Whoever decides to send something (an archive push, a command) calls ``enqueue`` inside its own
transaction; the ingest service, which owns the MQTT connection, publishes pending rows in id
order and marks each published only after the broker's PUBACK.  A crash in between re-publishes
(at-least-once), which the contract's messages tolerate (retained archive, command ids).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Connection, insert, select, update

from headend.db.tables import mqtt_outbox


def enqueue(
    conn: Connection,
    topic: str,
    payload: bytes,
    now: datetime,
    *,
    qos: int = 1,
    retain: bool = False,
) -> int:
    """Queue one message; returns its outbox id."""
    result = conn.execute(
        insert(mqtt_outbox)
        .values(topic=topic, payload=payload, qos=qos, retain=retain, created=now)
        .returning(mqtt_outbox.c.id)
    )
    return int(result.scalar_one())


def pending(conn: Connection, limit: int = 100) -> list[tuple[int, str, bytes, int, bool]]:
    """The oldest unpublished messages."""
    rows = conn.execute(
        select(
            mqtt_outbox.c.id,
            mqtt_outbox.c.topic,
            mqtt_outbox.c.payload,
            mqtt_outbox.c.qos,
            mqtt_outbox.c.retain,
        )
        .where(mqtt_outbox.c.published_at.is_(None))
        .order_by(mqtt_outbox.c.id)
        .limit(limit)
    ).all()
    return [(int(i), str(t), bytes(p), int(q), bool(r)) for i, t, p, q, r in rows]


def mark_published(conn: Connection, ids: list[int], now: datetime) -> None:
    """Record the broker's acceptance of ``ids``."""
    if ids:
        conn.execute(update(mqtt_outbox).where(mqtt_outbox.c.id.in_(ids)).values(published_at=now))
