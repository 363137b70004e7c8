"""First contact with a meter whose counters are already above zero (issue 23).

The demo's area3 meter-cover opening happens seconds after the simulator starts, before the
gateway's first events sweep: the counter reads 1 at first sight and the cover is closed again.
That opening, recorded by the meter with its times, must reach the head-end; history older than
the horizon (first contact minus the back-fill window) must not flood it.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gateway.events import (
    RECORDS_KEPT,
    Counter,
    EventDetector,
    MeterEventState,
    PollResult,
    records_to_read,
)
from protocols.dlt645.layouts import EventRecord
from protocols.model import EventType, MeterTime
from simulators.meter import Cover, Meter, MeterSpec

ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=ZONE).timestamp()
DAY = 86400.0


def mt(ts: float) -> MeterTime:
    return MeterTime(datetime.fromtimestamp(ts, ZONE).replace(tzinfo=None))


def sweep(
    det: EventDetector,
    meter: Meter,
    state: MeterEventState,
    ts: float,
    *,
    lose: set[int] = frozenset(),  # type: ignore[assignment]
    reads: list[int] | None = None,
) -> tuple[list, MeterEventState]:
    """One two-step sweep of the meter cover counter (records numbered in ``lose`` not read;
    the record numbers read are appended to ``reads``)."""
    spans = [(r.start, r.end) for r in meter.cover_records(Cover.METER, ts)]
    counts = {Counter.METER_COVER: len(spans)}
    status = dict(enumerate(meter.status_words(ts), start=1))
    plan = records_to_read(state, counts, status)
    if reads is not None:
        reads.extend(plan.get(Counter.METER_COVER, []))
    records = {
        c: {
            n: EventRecord(mt(spans[n - 1][0]), mt(e) if (e := spans[n - 1][1]) else None)
            for n in ns
            if n not in lose
        }
        for c, ns in plan.items()
    }
    poll = PollResult(datetime.fromtimestamp(ts, UTC), mt(ts), counts, records, status)
    events, new = det.detect(meter.address, state, poll)
    return events, MeterEventState.from_json(json.loads(json.dumps(new.to_json())))


@pytest.fixture
def meter() -> Meter:
    return Meter(MeterSpec(address="202603000500"), origin=T0 - 30 * DAY)


def test_an_opening_closed_before_the_first_sweep_is_reported_once_with_the_meters_times(meter):
    meter.open_cover(Cover.METER, T0 - 90, T0 - 30)  # the demo: opened and closed, bit clear
    events, state = sweep(EventDetector(), meter, MeterEventState(), T0)
    (ev,) = events
    assert ev.type is EventType.METER_COVER_OPEN
    assert (ev.start, ev.end) == (mt(T0 - 90).aware, mt(T0 - 30).aware)
    assert ev.details == {"phase": "complete", "count": 1, "first_contact": True}
    for k in range(1, 4):  # never again
        events, state = sweep(EventDetector(), meter, state, T0 + 300 * k)
        assert events == []


def test_history_before_the_horizon_is_not_reported_but_the_window_is(meter):
    meter.open_cover(Cover.METER, T0 - 20 * DAY, T0 - 20 * DAY + 60)  # before the horizon
    meter.open_cover(Cover.METER, T0 - 3 * DAY, T0 - 3 * DAY + 60)  # within the back-fill window
    meter.open_cover(Cover.METER, T0 - 600, T0 - 500)
    det, reads = EventDetector(), []
    events, state = sweep(det, meter, MeterEventState(), T0, reads=reads)
    assert [e.start for e in events] == [mt(T0 - 600).aware] and reads == [1]
    events, state = sweep(det, meter, state, T0 + 300, reads=reads)  # the newest was news: look on
    assert [e.start for e in events] == [mt(T0 - 3 * DAY).aware]
    assert [e.details["count"] for e in events] == [2] and reads == [1, 2, 3]
    assert state.scan == {}  # record 3 is older than the horizon: the look-back is over
    assert sweep(det, meter, state, T0 + 600, reads=reads)[0] == [] and reads == [1, 2, 3]


def test_a_meter_with_only_old_history_costs_one_read(meter):
    for k in range(12):  # more than the meter keeps, all of them weeks old
        meter.open_cover(Cover.METER, T0 - (28 - k) * DAY, T0 - (28 - k) * DAY + 60)
    det, reads = EventDetector(), []
    events, state = sweep(det, meter, MeterEventState(), T0, reads=reads)
    assert events == [] and reads == [1] and state.scan == {}
    assert state.counts["meter_cover"] == 12  # the baseline
    meter.open_cover(Cover.METER, T0 + 100, T0 + 160)  # and from now on, as ever
    (ev,), state = sweep(det, meter, state, T0 + 300, reads=reads)
    assert ev.details == {"phase": "complete", "count": 13} and reads == [1, 1]


def test_an_opening_during_the_look_back_is_reported_once_and_the_look_back_goes_on(meter):
    meter.open_cover(Cover.METER, T0 - 2 * DAY, T0 - 2 * DAY + 60)
    meter.open_cover(Cover.METER, T0 - 90, T0 - 30)
    det = EventDetector()
    (first,), state = sweep(det, meter, MeterEventState(), T0)
    meter.open_cover(Cover.METER, T0 + 100, T0 + 200)  # record numbers shift by one
    events, state = sweep(det, meter, state, T0 + 300)
    got = sorted((e.details["count"], e.details.get("first_contact", False)) for e in events)
    assert got == [(1, True), (3, False)]
    assert first.details["count"] == 2 and state.scan == {}
    assert sweep(det, meter, state, T0 + 600)[0] == []


def test_a_cover_open_for_longer_than_the_window_is_still_reported_as_started(meter):
    meter.open_cover(Cover.METER, T0 - 10 * DAY)
    (ev,), state = sweep(EventDetector(), meter, MeterEventState(), T0)
    assert ev.details["phase"] == "start" and ev.end is None
    meter.close_cover(Cover.METER, T0 + 100)
    (end,), _ = sweep(EventDetector(), meter, state, T0 + 300)
    assert end.key == ev.key and end.details["phase"] == "end"


def test_records_unread_at_first_contact_are_read_again_and_reported_once(meter):
    meter.open_cover(Cover.METER, T0 - 900, T0 - 800)
    meter.open_cover(Cover.METER, T0 - 300, T0 - 200)
    det = EventDetector()
    events, state = sweep(det, meter, MeterEventState(), T0)
    assert [e.start for e in events] == [mt(T0 - 300).aware]
    events, state = sweep(det, meter, state, T0 + 300, lose={2})  # bus trouble
    assert events == [] and state.scan["meter_cover"][1] == 1  # still to look at
    events, state = sweep(det, meter, state, T0 + 600)
    assert [e.start for e in events] == [mt(T0 - 900).aware]
    assert state.scan == {} and state.counts["meter_cover"] == 2
    assert sweep(det, meter, state, T0 + 900)[0] == []


def test_first_contact_reads_at_most_the_records_the_meter_keeps():
    state = MeterEventState()
    assert records_to_read(state, {Counter.METER_COVER: 0}, {}) == {}
    assert records_to_read(state, {Counter.METER_COVER: 2}, {}) == {Counter.METER_COVER: [1]}
    looking = MeterEventState(counts={"power_down": 40}, scan={"power_down": [40, 39, 0]})
    plan = records_to_read(looking, {Counter.POWER_DOWN: 40}, {})
    assert plan == {Counter.POWER_DOWN: list(range(2, RECORDS_KEPT + 1))}
    with pytest.raises(ValueError):
        EventDetector(first_contact_window=timedelta(seconds=-1))


def test_a_replaced_meter_starts_its_own_look_back(meter):
    meter.open_cover(Cover.METER, T0 - 600, T0 - 500)
    meter.open_cover(Cover.METER, T0 - 300, T0 - 200)
    det = EventDetector()
    _, state = sweep(det, meter, MeterEventState(), T0)
    assert state.scan  # the older record is still to be looked at
    fresh = Meter(MeterSpec(address="202603000501"), origin=T0 - 30 * DAY)  # the new meter
    spans = {Counter.METER_COVER: 0}
    poll = PollResult(datetime.fromtimestamp(T0 + 300, UTC), mt(T0 + 300), spans, replaced=True)
    events, state = det.detect(fresh.address, state, poll)
    assert events == [] and state.scan == {} and state.counts == {"meter_cover": 0}
    assert records_to_read(state, spans, {}) == {}
