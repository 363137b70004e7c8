"""A gateway writes only its own meters: another gateway's go to ``unregistered``, not stored."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine, insert, select

from headend.db.engine import writing
from headend.db.tables import areas, events, meters, readings, unregistered
from headend.ingest.store import Ingestor
from protocols.model import EventType
from protocols.uplink import EventRecord
from tests.headend.gen import batch, publishable, reading

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
SINCE = NOW - timedelta(days=30)
OWN, OTHER, UNKNOWN = "202600000001", "202600000009", "202600000042"


def seed(engine: Engine) -> None:
    with writing(engine) as conn:
        for area, gateway in (("A1", "gw-0001"), ("B1", "gw-0003")):
            conn.execute(insert(areas).values(id=area, name=area, gateway=gateway, valid_from=SINCE))
        for meter, area in ((OWN, "A1"), (OTHER, "B1")):
            conn.execute(
                insert(meters).values(
                    id=meter, point=f"P-{meter}", area=area, bus="bus1", protocol="dlt645-2007",
                    address=meter, valid_from=SINCE,
                )
            )  # fmt: skip


def stored(engine: Engine, table, column) -> set:
    with engine.connect() as conn:
        return set(conn.execute(select(column).select_from(table)).scalars())


def test_a_gateway_cannot_write_another_gateways_meter(engine: Engine) -> None:
    seed(engine)
    ing = Ingestor()
    cover = EventRecord(meter=OTHER, type=EventType.METER_COVER_OPEN, start=NOW, detected=NOW)
    own_cover = EventRecord(meter=OWN, type=EventType.METER_COVER_OPEN, start=NOW, detected=NOW)
    forged = batch("gw-0001", "0123456789abcdef", 0,
                   [reading(OWN, 0), reading(OTHER, 0), reading(UNKNOWN, 0), cover, own_cover])
    with writing(engine) as conn:
        outcome = ing.handle(conn, *publishable(forged), NOW)
    assert outcome.kind == "data" and outcome.records == 5  # acknowledged: nothing re-sent
    assert stored(engine, readings, readings.c.meter) == {OWN, UNKNOWN}
    assert stored(engine, events, events.c.meter) == {OWN}
    with engine.connect() as conn:
        listed = {
            (row.meter, row.gateway): row.records
            for row in conn.execute(select(unregistered))
        }
    assert listed == {(OTHER, "gw-0001"): 2, (UNKNOWN, "gw-0001"): 1}


def test_the_owning_gateway_still_writes_its_meter(engine: Engine) -> None:
    seed(engine)
    with writing(engine) as conn:
        Ingestor().handle(conn, *publishable(batch("gw-0003", "fedcba9876543210", 0,
                                                   [reading(OTHER, 0)])), NOW)
    assert stored(engine, readings, readings.c.meter) == {OTHER}
    assert stored(engine, unregistered, unregistered.c.meter) == set()
