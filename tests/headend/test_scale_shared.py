"""Two ingest processes (two Ingestors) storing one gateway's batches out of order, interleaved."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import Engine, func, select

from headend.db.engine import writing
from headend.db.tables import readings
from headend.ingest.store import Ingestor, Outcome
from headend.ingest.streams import StreamBook, held_runs
from protocols.uplink import Ack, ResendRequest, decode
from tests.headend.gen import meter_ids, publishable, reading_batches

NOW = datetime(2026, 11, 24, 6, tzinfo=UTC)
EPOCH = "abcdabcdabcdabcd"


def from_one(batches):  # type: ignore[no-untyped-def]
    """A gateway numbers an epoch from seq 1."""
    return [b.model_copy(update={"seq": b.seq + 1}) for b in batches]


def consumer(engine: Engine) -> Ingestor:
    return Ingestor(resend_after=5.0, streams=StreamBook(engine, patient=True))


def store(engine: Engine, ingestor: Ingestor, b) -> Outcome:  # type: ignore[no-untyped-def]
    with writing(engine) as conn:
        return ingestor.handle(conn, *publishable(b), NOW)


def claimed(outcome: Outcome) -> set[int]:
    """The seqs an outcome's Ack tells the gateway it may delete."""
    (ack,) = [decode(p, Ack) for t, p in outcome.publish if t.endswith("/ack")]
    seqs = set(range(1, ack.upto + 1))
    for first, last in ack.ranges:
        seqs |= set(range(first, last + 1))
    return seqs


def asked(outcome: Outcome) -> list[tuple[int, int]]:
    return [
        (r.first, r.last)
        for r in (decode(p, ResendRequest) for t, p in outcome.publish if t.endswith("/resend"))
    ]


def test_acks_claim_only_stored_seqs_whichever_consumer_stored_them(engine: Engine) -> None:
    a, b = consumer(engine), consumer(engine)
    batches = from_one(
        reading_batches("gw-1", EPOCH, meter_ids(4), steps=4, per_batch=4)
    )  # seqs 1..16
    stored: set[int] = set()
    # round robin out of order: b gets 5-8 first, a gets 9-12, b 1-4, a 13-16
    for ingestor, batch in ((b, batches[1]), (a, batches[2]), (b, batches[0]), (a, batches[3])):
        outcome = store(engine, ingestor, batch)
        stored |= set(range(batch.seq, batch.seq + len(batch.records)))
        assert claimed(outcome) <= stored  # never a seq another consumer has not committed
    assert claimed(outcome) == set(range(1, 17))
    with writing(engine) as conn:
        assert held_runs(conn, "gw-1", EPOCH) == [(1, 16)]
        assert conn.execute(select(func.count()).select_from(readings)).scalar_one() == 80


def test_duplicates_across_consumers_are_stored_once(engine: Engine) -> None:
    a, b = consumer(engine), consumer(engine)
    batches = from_one(reading_batches("gw-1", EPOCH, meter_ids(3), steps=2, per_batch=3))
    assert store(engine, a, batches[0]).records == 3
    assert store(engine, b, batches[0]).duplicates == 3  # re-delivered to the other consumer
    assert store(engine, b, batches[1]).records == 3
    assert store(engine, a, batches[1]).duplicates == 3  # a's cache is stale; the database rules
    with writing(engine) as conn:
        assert conn.execute(select(func.count()).select_from(readings)).scalar_one() == 30


def test_a_hole_filled_by_the_other_consumer_is_not_asked_for_again(engine: Engine) -> None:
    a, b = consumer(engine), consumer(engine)
    batches = from_one(
        reading_batches("gw-1", EPOCH, meter_ids(2), steps=3, per_batch=2)
    )  # 1-2, 3-4, 5-6
    store(engine, a, batches[0])
    assert asked(store(engine, a, batches[2])) == []  # at first sight it may be in flight
    for stream in a.streams.all():  # resend_after passes (the hole was first seen 6 s ago)
        stream.asked = {k: v - 6.0 for k, v in stream.asked.items()}
    assert [t for t, _ in a.due_resends()] == ["taiqu/v1/gw-1/down/resend"]  # still open: ask
    for stream in a.streams.all():
        stream.asked = {k: v - 6.0 for k, v in stream.asked.items()}
    store(engine, b, batches[1])  # b stores it (the gateway re-sent it, or it was in flight)
    assert [s for s in a.due_resends() if s[0].endswith("/resend")] == []  # a re-reads first
    assert claimed(store(engine, a, batches[2])) == set(range(1, 7))
