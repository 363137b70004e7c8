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
            conn.execute(
                insert(areas).values(id=area, name=area, gateway=gateway, valid_from=SINCE)
            )
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
    forged = batch(
        "gw-0001",
        "0123456789abcdef",
        0,
        [reading(OWN, 0), reading(OTHER, 0), reading(UNKNOWN, 0), cover, own_cover],
    )
    with writing(engine) as conn:
        outcome = ing.handle(conn, *publishable(forged), NOW)
    assert outcome.kind == "data" and outcome.records == 5  # acknowledged: nothing re-sent
    assert stored(engine, readings, readings.c.meter) == {OWN, UNKNOWN}
    assert stored(engine, events, events.c.meter) == {OWN}
    with engine.connect() as conn:
        listed = {
            (row.meter, row.gateway): row.records for row in conn.execute(select(unregistered))
        }
    assert listed == {(OTHER, "gw-0001"): 2, (UNKNOWN, "gw-0001"): 1}


def test_the_owning_gateway_still_writes_its_meter(engine: Engine) -> None:
    seed(engine)
    with writing(engine) as conn:
        Ingestor().handle(
            conn, *publishable(batch("gw-0003", "fedcba9876543210", 0, [reading(OTHER, 0)])), NOW
        )
    assert stored(engine, readings, readings.c.meter) == {OTHER}
    assert stored(engine, unregistered, unregistered.c.meter) == set()


def test_binding_follows_the_archive_in_force_at_the_readings_time(engine: Engine) -> None:
    """A meter moved from gw-0001 to gw-0003 at T: gw-0001's readings and events before T are
    stored, its later ones go to unregistered; gw-0003's the other way round."""
    from headend.archive.effective import change

    seed(engine)
    stay = "202600000002"
    moved_at = reading(OWN, 4).gateway_time  # T: the 5th quarter-hour
    with writing(engine) as conn:
        conn.execute(
            insert(meters).values(
                id=stay, point=f"P-{stay}", area="A1", bus="bus1", protocol="dlt645-2007",
                address=stay, valid_from=SINCE,
            )
        )  # fmt: skip
        change(conn, meters, OWN, {"area": "B1", "bus": "bus9"}, moved_at, "test")
    before, after = reading(OWN, 3), reading(OWN, 5)

    def cover(step: int) -> EventRecord:
        at = reading(OWN, step).gateway_time
        return EventRecord(meter=OWN, type=EventType.METER_COVER_OPEN, start=at, detected=at)

    ing = Ingestor()
    a = batch("gw-0001", "0123456789abcdef", 0,
              [reading(stay, 5), before, after, reading(stay, 6), cover(3), cover(5)])  # fmt: skip
    b = batch("gw-0003", "fedcba9876543210", 0, [before, after, cover(3), cover(5)])
    with writing(engine) as conn:
        assert ing.handle(conn, *publishable(a), NOW).records == 6
        assert ing.handle(conn, *publishable(b), NOW).records == 4
    with engine.connect() as conn:
        rows = conn.execute(select(readings.c.meter, readings.c.time, readings.c.gateway)).all()
        got = {(m, t, g) for m, t, g in rows}
        evs = {(r.gateway, r.time) for r in conn.execute(select(events))}
        listed = {(r.meter, r.gateway): r.records for r in conn.execute(select(unregistered))}
    t3, t5 = before.gateway_time, after.gateway_time
    assert {(m, t, g) for m, t, g in got if m == OWN} == {
        (OWN, t3, "gw-0001"),
        (OWN, t5, "gw-0003"),
    }
    assert {m for m, _, _ in got} == {OWN, stay}
    assert evs == {("gw-0001", t3), ("gw-0003", t5)}
    assert listed == {(OWN, "gw-0001"): 2, (OWN, "gw-0003"): 2}


def test_ownership_spans_join_a_meters_versions() -> None:
    from headend.ingest.registry import _merge

    t = [NOW + timedelta(hours=h) for h in range(5)]
    assert _merge([(t[2], None), (t[0], t[1]), (t[1], t[2])]) == ((t[0], None),)
    assert _merge([(t[0], t[1]), (t[2], t[3]), (t[3], t[4])]) == ((t[0], t[1]), (t[2], t[4]))
    assert _merge([(t[0], None), (t[2], t[3])]) == ((t[0], None),)


def test_a_retired_meter_is_not_anyones_to_write(engine: Engine) -> None:
    """Found by review: a meter retired from the archive counted as "unknown to the archive", so
    any gateway's readings and events for it were stored — at times it was another gateway's
    too, filling that gateway's holes (first writer wins).  Only a meter the archive has never
    known is stored for whoever reports it; a retired one only for its gateway at the time."""
    from headend.archive.effective import retire

    seed(engine)
    retired_at = reading(OTHER, 4).gateway_time
    with writing(engine) as conn:
        retire(conn, meters, OTHER, retired_at)
    theirs, late = reading(OTHER, 3), reading(OTHER, 6)  # gw-0003's before, nobody's after
    cover = EventRecord(
        meter=OTHER, type=EventType.METER_COVER_OPEN, start=theirs.gateway_time,
        detected=theirs.gateway_time,
    )  # fmt: skip
    ing = Ingestor()
    forged = batch("gw-0001", "0123456789abcdef", 0, [theirs, late, cover, reading(UNKNOWN, 0)])
    own = batch("gw-0003", "fedcba9876543210", 0, [theirs])
    with writing(engine) as conn:
        assert ing.handle(conn, *publishable(forged), NOW).records == 4
        assert ing.handle(conn, *publishable(own), NOW).records == 1
    with engine.connect() as conn:
        rows = {(r.meter, r.gateway) for r in conn.execute(select(readings))}
        listed = {(r.meter, r.gateway): r.records for r in conn.execute(select(unregistered))}
    assert rows == {(OTHER, "gw-0003"), (UNKNOWN, "gw-0001")}
    assert stored(engine, events, events.c.meter) == set()
    assert listed == {(OTHER, "gw-0001"): 3, (UNKNOWN, "gw-0001"): 1}


def test_history_before_a_meters_first_version_is_its_first_gateways(engine: Engine) -> None:
    """A meter added to the archive today with its history backfilled (read before its entry, or
    delivered late): its first gateway's readings from before are stored, another's are not.
    Before, both were refused once the entry existed (tests/headend/test_api_archive_readings.py
    failed on the merged branch)."""
    seed(engine)
    early = reading(OWN, -(31 * 96))  # a month before SINCE
    ing = Ingestor()
    with writing(engine) as conn:
        ing.handle(conn, *publishable(batch("gw-0001", "0123456789abcdef", 0, [early])), NOW)
        ing.handle(conn, *publishable(batch("gw-0003", "fedcba9876543210", 0, [early])), NOW)
    with engine.connect() as conn:
        rows = {(r.meter, r.gateway) for r in conn.execute(select(readings))}
        listed = {(r.meter, r.gateway) for r in conn.execute(select(unregistered))}
    assert rows == {(OWN, "gw-0001")} and listed == {(OWN, "gw-0003")}
