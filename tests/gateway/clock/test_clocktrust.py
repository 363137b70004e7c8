"""The gateway's own clock trust: NTP state, kernel state, head-end time, caching, flags."""

from __future__ import annotations

import sys
from datetime import UTC, datetime, timedelta

import pytest

from gateway.clock.trust import ClockTrust, fixed, kernel_source, timedatectl_source


class Ticks:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def counting(answers):
    calls = []

    def source():
        calls.append(1)
        return answers[min(len(calls), len(answers)) - 1]

    return source, calls


def test_the_first_source_that_answers_decides():
    assert ClockTrust([fixed(None), fixed(True), fixed(False)]).synced() is True
    assert ClockTrust([fixed(None), fixed(False), fixed(True)]).synced() is False
    trust = ClockTrust([fixed(None)])
    assert trust.synced() is False  # nobody can tell: not trusted
    assert trust.flags() == frozenset({"clock_unsynced"})
    assert ClockTrust([fixed(True)]).flags() == frozenset()


def test_answers_are_cached_then_asked_again():
    ticks = Ticks()
    source, calls = counting([False, True])
    trust = ClockTrust([source], cache_s=30, monotonic=ticks)
    assert trust.synced() is False
    ticks.t += 10
    assert trust.synced() is False and len(calls) == 1
    ticks.t += 25
    assert trust.synced() is True and len(calls) == 2
    trust.invalidate()
    trust.synced()
    assert len(calls) == 3


def test_head_end_time_is_accepted_only_when_enabled_and_close():
    ticks = Ticks()
    wall = datetime(2026, 3, 1, tzinfo=UTC)
    kw = dict(monotonic=ticks, now=lambda: wall.timestamp(), headend_valid_s=3600)
    off = ClockTrust([fixed(False)], **kw)
    assert off.headend_time(wall) is False and off.synced() is False
    on = ClockTrust([fixed(False)], accept_headend_time=True, **kw)
    assert on.headend_time(wall + timedelta(minutes=5)) is False  # disagrees: not accepted
    assert on.synced() is False
    assert on.headend_time(wall + timedelta(seconds=3)) is True
    assert on.synced() is True and on.source == "headend"
    ticks.t += 3601
    assert on.synced() is False  # the acceptance lapses: NTP must take over
    with pytest.raises(ValueError):
        on.headend_time(datetime(2026, 3, 1))


def test_timedatectl_is_read_through_a_real_process(tmp_path, monkeypatch):
    fake = tmp_path / "timedatectl"
    for answer, expected in (("yes", True), ("no", False), ("maybe", None)):
        fake.write_text(
            f"#!{sys.executable}\nimport sys\n"
            "assert sys.argv[1:] == ['show', '-p', 'NTPSynchronized', '--value'], sys.argv\n"
            f"print({answer!r})\n"
        )
        fake.chmod(0o755)
        monkeypatch.setenv("PATH", str(tmp_path))
        assert timedatectl_source() is expected


def test_without_timedatectl_the_source_cannot_tell(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))
    assert timedatectl_source() is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="adjtimex is Linux")
def test_the_kernel_answers_on_linux():
    assert kernel_source() in (True, False)
