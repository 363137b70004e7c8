"""Events end to end through the codec: the gateway's master ↔ the simulators' DL/T 645 meter."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from gateway.events import (
    RECORD_KEY,
    SWEEP_IDENTIFIERS,
    EventDetector,
    MeterEventState,
    poll_from_values,
    record_identifiers,
    records_to_read,
)
from protocols.dlt645 import NEED_DATA, Master, ReadData, ReadReply, Version
from protocols.model import EventType, MeterTime
from simulators.dlt645.meter import Dlt645Listener
from simulators.meter import Cover, Meter, MeterSpec

ZONE = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 3, 1, 10, 0, tzinfo=ZONE).timestamp()
ADDRESS = "202611240001"


class Gateway:
    """An events sweep as the poller runs it, on a byte-level link with no port."""

    def __init__(self, meter: Meter) -> None:
        self.listener = Dlt645Listener(Version.V2007, [meter])
        self.master = Master()
        self.detector = EventDetector()
        self.stored: dict | None = None  # what store.set_state would hold (JSON)
        self.frames = 0

    def read(self, di: int, ts: float) -> ReadReply:
        self.frames += 1
        for answer in self.listener.feed(self.master.send(ReadData(ADDRESS, di)), ts):
            self.master.receive_data(answer.data)
        reply = self.master.next_event()
        assert reply is not NEED_DATA and isinstance(reply, ReadReply), reply
        return reply

    def sweep(self, ts: float) -> list:
        values: dict = {}
        for di in SWEEP_IDENTIFIERS:
            values.update(self.read(di, ts).values)
        state = MeterEventState.from_json(self.stored)
        first = poll_from_values(datetime.fromtimestamp(ts, UTC), values)
        plan = records_to_read(state, first.counts, first.status_words)
        records: dict = {}
        for counter, numbers in plan.items():
            for n, di in zip(numbers, record_identifiers({counter: numbers}), strict=True):
                records.setdefault(counter, {})[n] = self.read(di, ts).values[RECORD_KEY[counter]]
        poll = poll_from_values(datetime.fromtimestamp(ts, UTC), values, records)
        events, state = self.detector.detect(ADDRESS, state, poll)
        self.stored = json.loads(json.dumps(state.to_json()))
        return events


def local(ts: float) -> datetime:
    return MeterTime(datetime.fromtimestamp(ts, ZONE).replace(tzinfo=None)).aware


def test_cover_open_and_power_down_between_polls_are_reported_once_with_their_times():
    meter = Meter(MeterSpec(address=ADDRESS), T0 - 86400)
    meter.set_time(T0, datetime.fromtimestamp(T0, ZONE).replace(tzinfo=None))
    gw = Gateway(meter)
    assert gw.sweep(T0) == []
    quiet = gw.frames
    assert gw.sweep(T0 + 300) == [] and gw.frames - quiet == len(SWEEP_IDENTIFIERS)
    meter.open_cover(Cover.METER, T0 + 320, T0 + 380)
    meter.set_power(T0 + 400, False)
    meter.set_power(T0 + 460, True)
    events = gw.sweep(T0 + 600)
    got = sorted((e.type, e.start, e.end, e.details["phase"]) for e in events)
    assert got == sorted(
        [
            (EventType.METER_COVER_OPEN, local(T0 + 320), local(T0 + 380), "complete"),
            (EventType.POWER_DOWN, local(T0 + 400), local(T0 + 460), "complete"),
        ]
    )
    for k in range(1, 4):
        assert gw.sweep(T0 + 600 + 300 * k) == []


def test_a_cover_left_open_is_reported_when_seen_and_again_when_closed():
    meter = Meter(MeterSpec(address=ADDRESS), T0 - 86400)
    meter.set_time(T0, datetime.fromtimestamp(T0, ZONE).replace(tzinfo=None))
    gw = Gateway(meter)
    gw.sweep(T0)
    meter.open_cover(Cover.TERMINAL, T0 + 100)
    (start,) = gw.sweep(T0 + 300)
    assert start.details["phase"] == "start" and start.end is None
    assert gw.sweep(T0 + 600) == []
    meter.close_cover(Cover.TERMINAL, T0 + 700)
    (end,) = gw.sweep(T0 + 900)
    assert end.key == start.key and end.end == local(T0 + 700)
    assert gw.sweep(T0 + 1200) == []


def test_a_trip_seen_by_the_sweep_is_one_relay_change():
    from simulators.meter import Control

    meter = Meter(MeterSpec(address=ADDRESS), T0 - 86400)
    meter.set_time(T0, datetime.fromtimestamp(T0, ZONE).replace(tzinfo=None))
    gw = Gateway(meter)
    gw.sweep(T0)
    meter.control(T0 + 10, Control.TRIP)
    (ev,) = gw.sweep(T0 + 300)
    assert ev.type is EventType.RELAY_CHANGE and ev.details["to"] == "open"
    assert gw.sweep(T0 + 600) == []
