"""Load records and settlement values from the uplink: stored at their own times (both DBs)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, select

from headend.db.engine import writing
from headend.db.tables import readings
from headend.ingest.store import Ingestor
from protocols.model import ReadingKind
from protocols.uplink import ReadingRecord
from tests.headend.gen import batch, publishable

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
GW, EPOCH = "gw-0001", "5f0c2a9e41d7b3c8"
READ_AT = datetime(2026, 11, 24, 5, 0, 7, tzinfo=UTC)


def _store(engine: Engine, records: list[ReadingRecord]) -> None:
    topic, payload = publishable(batch(GW, EPOCH, 0, list(records)))
    with writing(engine) as conn:
        outcome = Ingestor().handle(conn, topic, payload, NOW, False)
    assert outcome.kind == "data", outcome


def test_load_records_are_interval_readings_at_the_records_own_times(engine: Engine) -> None:
    times = [
        datetime(2026, 11, 24, 4, 15, tzinfo=UTC) + timedelta(minutes=15 * i) for i in range(3)
    ]
    records = [
        ReadingRecord(
            meter="202611240001", kind=ReadingKind.LOAD_PROFILE, gateway_time=READ_AT,
            meter_time=t, freeze_time=t, values={"energy.active.import.total": f"{10 + i}.25"},
        )
        for i, t in enumerate(times)
    ]  # fmt: skip
    _store(engine, records)
    with engine.connect() as conn:
        rows = conn.execute(select(readings).order_by(readings.c.time)).all()
    # three records read in one go are three readings, not one (their own times keep them apart)
    assert [r.time for r in rows] == times
    assert {r.kind for r in rows} == {"interval"} and {r.flags for r in rows} == {"load_profile"}
    assert [r.value for r in rows] == ["10.25", "11.25", "12.25"]
    assert {r.gateway_time for r in rows} == {READ_AT}


def test_a_settlement_value_is_stored_at_the_settlement_instant_once(engine: Engine) -> None:
    instant = datetime(2026, 10, 31, 16, 0, tzinfo=UTC)  # 1 Nov 00:00 +08:00
    record = ReadingRecord(
        meter="202611240001", kind=ReadingKind.SETTLEMENT, gateway_time=READ_AT,
        freeze_time=instant, values={"energy.active.import.total": "1234.50"},
    )  # fmt: skip
    again = record.model_copy(update={"gateway_time": READ_AT + timedelta(days=1)})
    _store(engine, [record])
    topic, payload = publishable(batch(GW, EPOCH, 1, [again]))
    with writing(engine) as conn:
        Ingestor().handle(conn, topic, payload, NOW, False)
    with engine.connect() as conn:
        rows = conn.execute(select(readings)).all()
    assert [(r.kind, r.time, r.value) for r in rows] == [("settlement", instant, "1234.50")]
