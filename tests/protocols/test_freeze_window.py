"""The freeze window: ten minutes either side of every whole hour, on the master's and the
meter's own time (the rule the gateway's time sync and the head-end's clock sets share)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocols.freeze_window import freeze_retry_at, in_freeze_window, leave_window

ZONE = ZoneInfo("Asia/Shanghai")
DAY = datetime(2026, 3, 1, tzinfo=ZONE)


def at(h: int, m: int, s: int = 0, day: int = 0) -> datetime:
    return DAY + timedelta(days=day, hours=h, minutes=m, seconds=s)


@pytest.mark.parametrize(
    ("local", "forbidden"),
    [
        (at(0, 0), True),
        (at(0, 9, 59), True),
        (at(0, 10), False),
        (at(13, 30), False),
        (at(13, 50), False),
        (at(13, 50, 1), True),
        (at(23, 59, 59), True),
    ],
)
def test_the_freeze_window_is_ten_minutes_either_side_of_every_whole_hour(local, forbidden):
    assert in_freeze_window(local) is forbidden


@given(st.integers(0, 2 * 86400 - 1))
def test_leaving_the_window_gives_the_first_clear_time(offset):
    local = DAY + timedelta(seconds=offset)
    clear = leave_window(local)
    assert not in_freeze_window(clear)
    assert clear >= local and clear - local <= timedelta(minutes=20)
    if clear > local:  # nothing clear in between
        assert in_freeze_window(clear - timedelta(seconds=1))


def test_a_slow_meter_is_held_until_its_own_midnight_freeze_is_past():
    slow = timedelta(minutes=-4)  # the meter reads 23:56 at the master's 00:00
    assert freeze_retry_at(at(23, 48), slow) is None  # the meter reads 23:44: both clear
    assert freeze_retry_at(at(23, 55), slow) == at(0, 14, day=1)  # the meter then reads 00:10
    assert freeze_retry_at(at(0, 12, day=1), slow) == at(0, 14, day=1)  # the meter reads 00:08
    assert freeze_retry_at(at(0, 14, day=1), slow) is None
    assert freeze_retry_at(at(23, 55), slow, timedelta(0)) is None


def test_each_clock_leaves_the_window_it_is_in_and_the_later_one_counts():
    fast = timedelta(minutes=3)
    assert freeze_retry_at(at(12, 5), fast) == at(12, 10)  # master 12:05, meter 12:08
    # master 12:48 is clear, the meter's 12:51 is not: it leaves at its 13:10, the master's 13:07,
    # which is inside the master's own window; asked again then, the answer moves on to 13:10
    assert freeze_retry_at(at(12, 48), fast) == at(13, 7)
    assert freeze_retry_at(at(13, 7), fast) == at(13, 10)
    assert freeze_retry_at(at(13, 10), fast) is None
