"""One clock: accelerated time is a pure function of the wall clock."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta

import pytest

from taiqu.clock import AcceleratedClock, AcceleratedSetting, ManualClock, RealClock, make_clock

START = datetime(2026, 1, 1, tzinfo=UTC)


def test_accelerated_clock_runs_factor_times_faster():
    wall = [START.timestamp()]
    clock = AcceleratedClock(START, 60, wall=lambda: wall[0])
    assert clock.now() == START
    wall[0] += 10
    assert clock.now() == START + timedelta(minutes=10)
    assert clock.wall_seconds(3600) == 60


def test_anchor_lets_a_clock_start_in_the_past():
    anchor = datetime(2026, 11, 24, 6, 0, tzinfo=UTC)
    clock = AcceleratedClock(START, 1440, anchor=anchor, wall=lambda: anchor.timestamp() + 60)
    assert clock.now() == START + timedelta(days=1)


def test_two_processes_agree_without_talking():
    setting = {"start": datetime.now(UTC).isoformat(), "factor": 3600}
    code = (
        "from taiqu.clock import make_clock; import sys, json; "
        f"print(make_clock({setting!r}).now().timestamp())"
    )
    ours = make_clock(setting).now().timestamp()
    theirs = float(subprocess.check_output([sys.executable, "-c", code], text=True))
    # an hour of clock time per wall second: a few wall seconds of start-up at most
    assert abs(theirs - ours) < 5 * 3600


def test_settings_are_validated():
    assert isinstance(make_clock("real"), RealClock)
    with pytest.raises(ValueError):
        make_clock("fast")
    with pytest.raises(ValueError, match="UTC offset"):
        AcceleratedSetting(start=datetime(2026, 1, 1), factor=2)
    with pytest.raises(ValueError):
        AcceleratedSetting(start=START, factor=0)


async def test_sleep_uses_clock_time():
    manual = ManualClock(START)
    await manual.sleep(90)
    assert manual.now() == START + timedelta(seconds=90)
    fast = AcceleratedClock(datetime.now(UTC), 1000)
    before = fast.now()
    await fast.sleep(50)  # 50 ms of wall time
    assert fast.now() - before >= timedelta(seconds=50)
