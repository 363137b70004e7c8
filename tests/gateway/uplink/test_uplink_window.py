"""The in-flight window (pure logic) and batch runs."""

from __future__ import annotations

from gateway.store import StoredRecord
from gateway.uplink import Window
from gateway.uplink.drain import _run


def test_window_bounds_what_is_in_flight() -> None:
    w = Window(size=2, base_timeout=10, max_timeout=40)
    w.sent(1, 10, now=0)
    assert not w.full
    w.sent(11, 20, now=1)
    assert w.full and w.cursor == 20 and w.deadline() == 10


def test_acks_free_covered_batches_only() -> None:
    w = Window(size=3, base_timeout=10, max_timeout=40)
    w.sent(1, 10, 0)
    w.sent(11, 20, 0)
    w.sent(21, 30, 0)
    assert w.acked(15) == 1  # 11…20 is only partly stored
    assert [b.first for b in w.inflight] == [11, 21]
    assert w.acked(10, ranges=((21, 30),)) == 1
    assert [b.first for b in w.inflight] == [11]
    assert w.acked(20) == 1 and w.deadline() is None


def test_timeout_rewinds_and_backs_off_until_progress() -> None:
    w = Window(size=2, base_timeout=10, max_timeout=25)
    w.sent(1, 10, 0)
    assert not w.expire(9.9)
    assert w.expire(10) and w.cursor == 0 and not w.inflight and w.timeout == 20
    w.sent(1, 10, 10)
    assert not w.expire(29) and w.expire(30) and w.timeout == 25  # capped
    w.sent(1, 10, 30)
    w.acked(10)
    assert w.timeout == 10 and w.rewinds == 2


def test_reconnect_restarts_the_timers() -> None:
    w = Window(size=2, base_timeout=10, max_timeout=40)
    w.sent(1, 10, 0)
    w.restart_timers(100)
    assert not w.expire(105) and w.deadline() == 110


def test_a_run_is_consecutive_and_size_capped() -> None:
    rows = [StoredRecord(s, "rd", b"x" * 10) for s in (3, 4, 5, 7, 8)]
    assert [r.seq for r in _run(rows, 1000)] == [3, 4, 5]
    assert [r.seq for r in _run(rows, 25)] == [3, 4]
    assert [r.seq for r in _run(rows, 5)] == [3]  # one record always goes, whatever its size
    assert _run([], 100) == []
