"""Several identifiers of one meter found unreadable in one sweep are several events."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, select

from headend.db.engine import writing
from headend.db.tables import events
from headend.ingest.store import Ingestor
from protocols.model import EventType
from protocols.uplink import EventRecord
from tests.headend.gen import batch, publishable

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
AT = datetime(2026, 11, 24, 5, 0, 7, tzinfo=UTC)


def test_unavailable_identifiers_found_in_one_second_are_all_kept(engine: Engine) -> None:
    records = [
        EventRecord(
            meter="202611240002", type=EventType.QUANTITY_UNAVAILABLE, start=AT, detected=AT,
            details={"identifier": di, "reason": "refused", "quantities": [q]},
        )
        for di, q in (("02010200", "voltage.b"), ("02010300", "voltage.c"))
    ]  # fmt: skip
    topic, payload = publishable(batch("gw-0001", "5f0c2a9e41d7b3c8", 0, list(records)))
    with writing(engine) as conn:
        Ingestor().handle(conn, topic, payload, NOW, False)
        Ingestor().handle(conn, topic, payload, NOW, False)  # a re-delivery: stored once
    with engine.connect() as conn:
        rows = conn.execute(select(events.c.details).order_by(events.c.id)).all()
    assert ['"02010200"' in r.details for r in rows] == [True, False]
    assert len(rows) == 2
