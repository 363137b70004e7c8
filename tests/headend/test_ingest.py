"""The ingest store against the contract fixtures and generated batches (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, func, insert, select

from headend.db.engine import writing
from headend.db.tables import (
    areas,
    dead_letters,
    events,
    gaps,
    gateway_sessions,
    gateway_state,
    meters,
    readings,
    streams,
    unregistered,
)
from headend.ingest.store import Ingestor, Outcome
from headend.ingest.streams import held_runs
from protocols.uplink import Ack, ResendRequest, Topics, decode, encode
from tests.fixtures import mqtt_fixtures
from tests.headend.gen import T0, batch, cover_event, meter_ids, publishable, reading

NOW = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
GW, EPOCH = "gw-0001", "5f0c2a9e41d7b3c8"


def store(
    engine: Engine, ing: Ingestor, topic: str, payload: bytes, retained: bool = False
) -> Outcome:
    with writing(engine) as conn:
        return ing.handle(conn, topic, payload, NOW, retained)


def count(engine: Engine, table, *where) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table).where(*where)).scalar_one())


def acks(outcome: Outcome) -> list[Ack]:
    return [decode(p, Ack) for t, p in outcome.publish if t.endswith("/down/ack")]


def resends(outcome: Outcome) -> list[ResendRequest]:
    return [decode(p, ResendRequest) for t, p in outcome.publish if t.endswith("/down/resend")]


@pytest.mark.parametrize(
    "fixture", [f for f in mqtt_fixtures("valid") if "/up/" in f.topic], ids=lambda f: f.name
)
def test_every_valid_uplink_fixture_is_stored_not_dead_lettered(engine: Engine, fixture) -> None:
    outcome = store(engine, Ingestor(), fixture.topic, fixture.payload)
    assert outcome.kind != "dead", outcome.reason
    assert count(engine, dead_letters) == 0


@pytest.mark.parametrize("fixture", mqtt_fixtures("invalid"), ids=lambda f: f.name)
def test_every_invalid_fixture_lands_in_dead_letters_with_reason_and_raw_bytes(
    engine: Engine, fixture
) -> None:
    outcome = store(engine, Ingestor(), fixture.topic, fixture.payload)
    assert outcome.kind == "dead"
    with engine.connect() as conn:
        row = conn.execute(select(dead_letters)).one()
    assert fixture.reason.lower() in row.reason.lower()
    assert row.payload == fixture.payload
    assert row.topic == fixture.topic
    assert count(engine, readings) == 0


def test_downlink_topics_are_refused_into_dead_letters(sqlite_engine: Engine) -> None:
    ack = encode(Ack(epoch=EPOCH, upto=3))
    outcome = store(sqlite_engine, Ingestor(), Topics(GW).ack, ack)
    assert outcome.kind == "dead"


def test_fixture_batch_stores_frozen_reading_gap_and_exact_values(engine: Engine) -> None:
    fixture = next(f for f in mqtt_fixtures("valid") if f.name == "batch_daily_frozen_and_gap")
    outcome = store(engine, Ingestor(), fixture.topic, fixture.payload)
    assert outcome.readings == 2
    with engine.connect() as conn:
        rows = conn.execute(select(readings).order_by(readings.c.quantity)).all()
        gap = conn.execute(select(gaps)).one()
        ev = conn.execute(select(events)).one()
    assert [r.value for r in rows] == ["0.00", "1240.00"]  # exact text, trailing zeros kept
    assert rows[0].kind == "daily_frozen"
    assert rows[0].time == datetime(2026, 11, 24, 16, 0, tzinfo=UTC)  # the freeze time, in UTC
    assert rows[0].flags == "backfilled"
    assert (gap.first, gap.last, gap.readings, gap.reason) == (20, 29, 50, "disk budget exceeded")
    assert ev.type == "gap_announced"
    # records 40 (reading) and 41 (the gap 20-29): the Ack claims exactly those, never seqs the
    # head-end has not seen (the stream does not start at 1: earlier ones may be in flight)
    assert acks(outcome) == [Ack(epoch=EPOCH, upto=0, ranges=((20, 29), (40, 41)))]
    assert resends(outcome) == [ResendRequest(epoch=EPOCH, first=30, last=39)]


def test_duplicates_are_stored_once_and_acked_again(engine: Engine) -> None:
    ing = Ingestor()
    b = batch(GW, EPOCH, 0, [reading(m, 0) for m in meter_ids(10)])
    topic, payload = publishable(b)
    first = store(engine, ing, topic, payload)
    again = store(engine, ing, topic, payload)
    fresh = store(engine, Ingestor(), topic, payload)  # a restarted ingest (cache empty)
    assert (first.records, again.records, fresh.records) == (10, 0, 0)
    assert again.duplicates == 10 and fresh.duplicates == 10
    assert count(engine, readings) == 10 * 5
    with engine.connect() as conn:
        assert held_runs(conn, GW, EPOCH) == [(0, 9)]
    assert acks(again) == acks(fresh) == [Ack(epoch=EPOCH, upto=9)]


def test_overlapping_resend_stores_only_the_new_records(engine: Engine) -> None:
    ing = Ingestor()
    ms = meter_ids(6)
    store(engine, ing, *publishable(batch(GW, EPOCH, 0, [reading(m, 0) for m in ms[:4]])))
    out = store(engine, ing, *publishable(batch(GW, EPOCH, 2, [reading(m, 0) for m in ms[2:]])))
    assert (out.records, out.duplicates) == (2, 2)
    assert count(engine, readings) == 6 * 5


def test_a_hole_is_detected_asked_for_and_acked_with_ranges(engine: Engine) -> None:
    ing = Ingestor(resend_after=3600)
    ms = meter_ids(20)
    store(engine, ing, *publishable(batch(GW, EPOCH, 0, [reading(m, 0) for m in ms[:5]])))
    out = store(engine, ing, *publishable(batch(GW, EPOCH, 10, [reading(m, 0) for m in ms[10:15]])))
    assert acks(out) == [Ack(epoch=EPOCH, upto=4, ranges=((10, 14),))]
    assert resends(out) == [ResendRequest(epoch=EPOCH, first=5, last=9)]
    # asked once: the next batch does not repeat the request within resend_after
    out = store(engine, ing, *publishable(batch(GW, EPOCH, 15, [reading(m, 0) for m in ms[15:]])))
    assert resends(out) == []
    assert acks(out) == [Ack(epoch=EPOCH, upto=4, ranges=((10, 19),))]
    # the re-sent records close the hole
    out = store(
        engine,
        ing,
        *publishable(batch(GW, EPOCH, 5, [reading(m, 0) for m in ms[5:10]], resend=True)),
    )
    assert acks(out) == [Ack(epoch=EPOCH, upto=19)]
    with engine.connect() as conn:
        assert conn.execute(select(streams.c.upto, streams.c.highest)).one() == (19, 19)


def test_open_holes_are_asked_for_again_after_resend_after(engine: Engine) -> None:
    ing = Ingestor(resend_after=0.0)
    store(engine, ing, *publishable(batch(GW, EPOCH, 0, [reading("202600000001", 0)])))
    store(engine, ing, *publishable(batch(GW, EPOCH, 3, [reading("202600000001", 1)])))
    again = [decode(p, ResendRequest) for _, p in ing.due_resends()]
    assert again == [ResendRequest(epoch=EPOCH, first=1, last=2)]


def test_announced_gap_closes_the_hole_and_survives_a_restart(engine: Engine) -> None:
    from protocols.uplink import GapRecord

    ing = Ingestor()
    store(engine, ing, *publishable(batch(GW, EPOCH, 0, [reading("202600000001", 0)])))
    out = store(
        engine,
        ing,
        *publishable(
            batch(
                GW,
                EPOCH,
                6,
                [
                    GapRecord(first=1, last=5, reason="disk budget exceeded", readings=25),
                    reading("202600000001", 9),
                ],
            )
        ),
    )
    assert acks(out) == [Ack(epoch=EPOCH, upto=7)]
    assert resends(out) == []
    restarted = Ingestor()
    out = store(engine, restarted, *publishable(batch(GW, EPOCH, 8, [reading("202600000001", 10)])))
    assert acks(out) == [Ack(epoch=EPOCH, upto=8)]
    assert count(engine, gaps) == 1


def test_restart_reloads_holes_beyond_upto(engine: Engine) -> None:
    store(engine, Ingestor(), *publishable(batch(GW, EPOCH, 0, [reading("202600000001", 0)])))
    store(engine, Ingestor(), *publishable(batch(GW, EPOCH, 5, [reading("202600000001", 5)])))
    out = store(engine, Ingestor(), *publishable(batch(GW, EPOCH, 6, [reading("202600000001", 6)])))
    assert acks(out) == [Ack(epoch=EPOCH, upto=0, ranges=((5, 6),))]
    assert resends(out) == [ResendRequest(epoch=EPOCH, first=1, last=4)]


def test_new_epoch_is_a_new_stream(engine: Engine) -> None:
    ing = Ingestor()
    store(engine, ing, *publishable(batch(GW, EPOCH, 0, [reading("202600000001", 0)])))
    out = store(
        engine, ing, *publishable(batch(GW, "0123456789abcdef", 0, [reading("202600000001", 1)]))
    )
    assert acks(out) == [Ack(epoch="0123456789abcdef", upto=0)]
    assert count(engine, streams) == 2


def test_events_are_idempotent_by_meter_record(engine: Engine) -> None:
    ing = Ingestor()
    store(engine, ing, *publishable(batch(GW, EPOCH, 0, [cover_event("202600000001", 1)])))
    # the same meter record reported again in a later record (e.g. after a re-read)
    store(
        engine,
        ing,
        *publishable(
            batch(GW, EPOCH, 1, [cover_event("202600000001", 1), cover_event("202600000001", 2)])
        ),
    )
    assert count(engine, events) == 2


def test_unregistered_meters_are_listed_with_counts(engine: Engine) -> None:
    with writing(engine) as conn:
        conn.execute(insert(areas).values(id="A1", name="A1", gateway=GW, valid_from=T0))
        conn.execute(
            insert(meters).values(
                id="202600000001",
                point="P1",
                area="A1",
                bus="bus1",
                protocol="dlt645-2007",
                address="202600000001",
                valid_from=T0,
            )
        )
    ing = Ingestor()
    recs = [reading("202600000001", 0), reading("202600000002", 0), reading("202600000002", 1)]
    store(engine, ing, *publishable(batch(GW, EPOCH, 0, recs)))
    store(engine, ing, *publishable(batch(GW, EPOCH, 3, [reading("202600000002", 2)])))
    with engine.connect() as conn:
        rows = conn.execute(select(unregistered)).all()
    assert [(r.gateway, r.meter, r.records) for r in rows] == [(GW, "202600000002", 3)]
    assert count(engine, readings, readings.c.meter == "202600000002") == 15  # kept, not lost


def test_status_birth_will_and_redelivered_retained_birth(engine: Engine) -> None:
    fx = {f.name: f for f in mqtt_fixtures("valid")}
    ing = Ingestor()
    store(engine, ing, fx["status_birth"].topic, fx["status_birth"].payload)
    store(engine, ing, fx["status_birth"].topic, fx["status_birth"].payload, retained=True)
    with engine.connect() as conn:
        state = conn.execute(select(gateway_state)).one()
    assert state.online and state.archive_version == 3 and state.software == "0.1.0"
    store(engine, ing, fx["status_will"].topic, fx["status_will"].payload)
    with engine.connect() as conn:
        state = conn.execute(select(gateway_state)).one()
        sessions = (
            conn.execute(select(gateway_sessions.c.state).order_by(gateway_sessions.c.id))
            .scalars()
            .all()
        )
    assert not state.online
    assert state.archive_version == 3  # the will carries none: the last known stays
    assert sessions == ["online", "offline"]


def test_result_goes_to_the_commands_hook(sqlite_engine: Engine) -> None:
    fx = next(f for f in mqtt_fixtures("valid") if f.name == "result_executed")
    seen = []
    ing = Ingestor()
    ing.on_result = lambda conn, gw, result: seen.append((gw, result.id, result.state))
    out = store(sqlite_engine, ing, fx.topic, fx.payload)
    assert out.kind == "result"
    assert len(seen) == 1 and seen[0][0] == fx.topic.split("/")[2]


def test_rollback_leaves_nothing_and_the_retry_stores_everything(sqlite_engine: Engine) -> None:
    ing = Ingestor()
    topic, payload = publishable(batch(GW, EPOCH, 0, [reading(m, 0) for m in meter_ids(5)]))
    with pytest.raises(RuntimeError), writing(sqlite_engine) as conn:
        ing.handle(conn, topic, payload, NOW)
        raise RuntimeError("killed before commit")
    ing.rolled_back()
    assert count(sqlite_engine, readings) == 0
    out = store(sqlite_engine, ing, topic, payload)
    assert out.records == 5 and acks(out) == [Ack(epoch=EPOCH, upto=4)]
