"""Long replies: event records and load profile records in follow-up frames (B1H, 12H, 92H/B2H)."""

from __future__ import annotations

import itertools
from datetime import timedelta
from decimal import Decimal

from protocols.dlt645 import (
    AbnormalReply,
    EventRecord,
    ReadData,
    ReadFollowUp,
    ReadReply,
    decode_frame,
    join_replies,
    profile_request,
)
from protocols.dlt645.connection import Master
from protocols.dlt645.load_profile import MOST_RECENT, profile_di
from simulators.meter import Cover, total

from .conftest import BusHarness
from .zoo import A, ask, zoo

COVER_RECORD = 0x03300D01


async def read_all(h: BusHarness, request) -> list[ReadReply]:
    """A read and every follow-up frame, as a master that follows the follow-up bit does."""
    master = Master()
    frames = []
    reply, raw = await ask(h, request)
    frames.append((reply, raw))
    while isinstance(reply, ReadReply) and reply.follow_up:
        reply, raw = await ask(h, master.follow_up(reply))
        frames.append((reply, raw))
    return [r for r, _ in frames]


async def test_event_record_comes_in_follow_up_frames_and_joins_to_the_whole():
    fleet, clock = zoo("follow-up")
    ordinary, _ = zoo("ordinary")
    now = clock.now().timestamp()
    for f in (fleet, ordinary):
        f.meters[A].open_cover(Cover.METER, now - 3600, now - 1800)
    async with BusHarness(fleet.buses["bus1"]) as h:
        frames = await read_all(h, ReadData(A, COVER_RECORD))
    assert [len(r.raw) for r in frames] == [40, 20]
    assert [r.follow_up for r in frames] == [True, False]
    assert [r.seq for r in frames] == [None, 1]
    assert frames[0].values == {}  # one frame of several does not decode on its own
    whole = join_replies(frames)
    async with BusHarness(ordinary.buses["bus1"]) as h:
        single, raw = await ask(h, ReadData(A, COVER_RECORD))
    assert decode_frame(raw).control == 0x91  # the ordinary meter: one frame
    record = whole.values["events.meter_cover.record"]
    assert isinstance(record, EventRecord)
    assert whole.values == single.values


async def test_the_follow_up_bit_and_sequence_are_on_the_wire():
    fleet, clock = zoo("follow-up")
    now = clock.now().timestamp()
    fleet.meters[A].open_cover(Cover.METER, now - 60)
    async with BusHarness(fleet.buses["bus1"]) as h:
        _first, raw = await ask(h, ReadData(A, COVER_RECORD))
        assert decode_frame(raw).control == 0xB1  # 91H | follow-up bit
        _, raw = await ask(h, ReadFollowUp(A, COVER_RECORD, 1))
        frame = decode_frame(raw)
        assert frame.control == 0x92 and frame.data[-1] == 1  # last frame, SEQ echoed
        again, _ = await ask(h, ReadFollowUp(A, COVER_RECORD, 2))  # past the end
        assert isinstance(again, AbnormalReply)
        other, _ = await ask(h, ReadFollowUp(A, 0x00010000, 1))  # nothing pending for it
        assert isinstance(other, AbnormalReply)


async def test_load_profile_energy_records_from_a_given_time():
    fleet, clock = zoo("follow-up")
    meter = fleet.meters[A]
    local_now = meter.meter_time(clock.now().timestamp())
    start = local_now - timedelta(hours=2, minutes=7)
    async with BusHarness(fleet.buses["bus1"]) as h:
        frames = await read_all(h, profile_request(A, 4, count=8, start=start))
    assert len(frames) == 5 and all(r.follow_up for r in frames[:-1])  # 8 × 21 bytes / 40
    records = join_replies(frames).values["load_profile.4"]
    assert len(records) == 8
    times = [r.time.local for r in records]
    assert times[0] > start and times[0] - start < timedelta(minutes=15)
    assert all(t.minute % 15 == 0 and t.second == 0 for t in times)
    assert all(b - a == timedelta(minutes=15) for a, b in itertools.pairwise(times))
    energies = [r.values["energy.active.import.total"] for r in records]
    assert energies == sorted(energies)
    for record in records:  # each record is the register at its instant, truncated
        instant = record.time.aware.timestamp()
        expected = Decimal(str(total(meter.registered(instant)[0]))).quantize(
            Decimal("0.01"), "ROUND_DOWN"
        )
        assert record.values["energy.active.import.total"] == expected


async def test_ordinary_meter_splits_a_long_load_profile_at_200_bytes():
    fleet, clock = zoo("ordinary")
    start = fleet.meters[A].meter_time(clock.now().timestamp()) - timedelta(hours=6)
    async with BusHarness(fleet.buses["bus1"]) as h:
        frames = await read_all(h, profile_request(A, 1, count=24, start=start))
        latest, _ = await ask(h, profile_request(A, 4))
    assert [len(r.raw) for r in frames] == [195, 195, 138]  # 24 × 22 bytes
    records = join_replies(frames).values["load_profile.1"]
    assert len(records) == 24 and all(200 < r.values["voltage.a"] < 240 for r in records)
    assert isinstance(latest, ReadReply) and len(latest.values["load_profile.4"]) == 1
    assert latest.di == profile_di(4, MOST_RECENT)


async def test_load_profile_in_the_future_or_without_a_count_is_refused():
    fleet, clock = zoo("ordinary")
    later = fleet.meters[A].meter_time(clock.now().timestamp()) + timedelta(hours=1)
    async with BusHarness(fleet.buses["bus1"]) as h:
        reply, _ = await ask(h, profile_request(A, 4, count=4, start=later))
        assert isinstance(reply, AbnormalReply)
        reply, _ = await ask(h, ReadData(A, profile_di(4)))  # no NN, no time
        assert isinstance(reply, AbnormalReply)
    assert fleet.meters[A].reads["06040001"] == {"no_data": 2}


async def test_load_records_agree_with_the_daily_freeze_and_the_settlement():
    fleet, clock = zoo("ordinary")
    meter = fleet.meters[A]
    midnight = meter.meter_time(clock.now().timestamp()).replace(hour=0, minute=0, second=0)
    async with BusHarness(fleet.buses["bus1"]) as h:
        frames = await read_all(h, profile_request(A, 4, count=1, start=midnight))
        frozen, _ = await ask(h, ReadData(A, 0x05060101))  # today's 00:00 freeze
        day_one = midnight.replace(day=1)
        frames_day_one = await read_all(h, profile_request(A, 4, count=1, start=day_one))
        settled, _ = await ask(h, ReadData(A, 0x0001FF01))  # 00:00 on day 1 of this month
    (record,) = join_replies(frames).values["load_profile.4"]
    assert record.time.local == midnight
    total_key = "energy.active.import.total"
    assert record.values[total_key] == frozen.values[total_key]
    (first,) = join_replies(frames_day_one).values["load_profile.4"]
    assert first.values[total_key] == settled.values[total_key]
