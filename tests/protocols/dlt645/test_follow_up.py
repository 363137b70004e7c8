"""Follow-up frames and load profile records: golden frames, the master's side, joining.

The vectors are built by hand from the link-layer rules (shared/DLT645.md §1–2: C = 11H read,
91H reply, B1H reply with more frames, 12H read follow-up with DI + SEQ, 92H/B2H its replies;
data +33H; CS = sum mod 256), independent of Taiqu's encoder: one load-profile record of
category 4 (2026-03-15 12:00, 1234.56 kWh forward, 7.89 kWh reverse, reactive 0) in three frames.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import pytest

from protocols.dlt645 import (
    Dlt645ValueError,
    Master,
    ReadFollowUp,
    ReadReply,
    decode_frame,
    decode_reply,
    decode_request,
    encode_frame,
    encode_request,
    join_replies,
    profile_request,
)
from protocols.dlt645.load_profile import parse_params, profile_di

ADDR = "123456789012"
DI = 0x06040001  # category 4 (energy totals), records from a given time


def hx(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


REQUEST = "68 12 90 78 56 34 12 68 11 0A 34 33 37 39 34 33 45 48 36 59 FB 16"
FIRST = "68 12 90 78 56 34 12 68 B1 0C 34 33 37 39 33 45 48 36 59 89 67 45 9E 16"
ASK_1 = "68 12 90 78 56 34 12 68 12 05 34 33 37 39 34 A8 16"
SECOND = "68 12 90 78 56 34 12 68 B2 0D 34 33 37 39 33 BC 3A 33 33 33 33 33 34 78 16"
ASK_2 = "68 12 90 78 56 34 12 68 12 05 34 33 37 39 35 A9 16"
LAST = "68 12 90 78 56 34 12 68 92 0A 34 33 37 39 33 33 33 33 33 35 2D 16"


def test_the_load_profile_request_is_nn_then_the_start_time():
    request = profile_request(ADDR, 4, count=1, start=datetime(2026, 3, 15, 12, 0))
    assert encode_frame(encode_request(request), preamble=0) == hx(REQUEST)
    decoded = decode_request(decode_frame(hx(REQUEST)))
    assert decoded.di == DI and decoded.params == hx("01 00 12 15 03 26")
    count, start = parse_params(DI, decoded.params)
    assert count == 1 and start is not None and start.local == datetime(2026, 3, 15, 12, 0)


@pytest.mark.parametrize(
    ("wire", "seq", "follow_up"),
    [(ASK_1, 1, ReadFollowUp(ADDR, DI, 1)), (ASK_2, 2, ReadFollowUp(ADDR, DI, 2))],
)
def test_follow_up_requests_carry_the_sequence_number(wire, seq, follow_up):
    assert encode_frame(encode_request(follow_up), preamble=0) == hx(wire)
    decoded = decode_request(decode_frame(hx(wire)))
    assert isinstance(decoded, ReadFollowUp) and decoded.seq == seq and decoded.di == DI


def test_the_frames_decode_with_follow_up_bit_and_sequence_and_join_to_the_record():
    first, second, last = (decode_reply(decode_frame(hx(w))) for w in (FIRST, SECOND, LAST))
    assert [r.follow_up for r in (first, second, last)] == [True, True, False]
    assert [r.seq for r in (first, second, last)] == [None, 1, 2]
    assert [len(r.raw or b"") for r in (first, second, last)] == [8, 8, 5]
    assert first.values == {} and last.values == {}  # parts do not decode alone
    (record,) = join_replies([first, second, last]).values["load_profile.4"]
    assert record.time.local == datetime(2026, 3, 15, 12, 0)
    assert record.values == {
        "energy.active.import.total": Decimal("1234.56"),
        "energy.active.export.total": Decimal("7.89"),
        "energy.reactive.combined1.total": Decimal("0.00"),
        "energy.reactive.combined2.total": Decimal("0.00"),
    }


def test_a_master_follows_the_frames_in_order():
    master = Master()
    master.send(profile_request(ADDR, 4, 1, datetime(2026, 3, 15, 12, 0)))
    replies = []
    for ask, wire in ((None, FIRST), (ASK_1, SECOND), (ASK_2, LAST)):
        if ask is not None:
            assert master.send(master.follow_up(replies[-1]))[4:] == hx(ask)
        master.receive_data(hx(wire))
        reply = master.next_event()
        assert isinstance(reply, ReadReply)
        replies.append(reply)
    assert not replies[-1].follow_up and join_replies(replies).values["load_profile.4"]


def test_joining_frames_of_other_identifiers_or_an_incomplete_value_fails():
    first, second = (decode_reply(decode_frame(hx(w))) for w in (FIRST, SECOND))
    with pytest.raises(Dlt645ValueError):
        join_replies([first, second])  # 16 bytes: not a whole 21-byte record
    other = ReadReply(ADDR, profile_di(1), raw=b"", follow_up=False)
    with pytest.raises(Dlt645ValueError):
        join_replies([first, other])
    with pytest.raises(Dlt645ValueError):
        join_replies([])
