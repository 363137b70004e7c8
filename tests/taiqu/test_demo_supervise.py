"""The demo's supervisor restarts what fails, as systemd's Restart=on-failure would (issue 23)."""

from __future__ import annotations

import os
import signal
import sys
import time
from pathlib import Path

from taiqu.demo.supervise import RestartPolicy, Supervisor

SLEEPER = [sys.executable, "-c", "import time; time.sleep(60)"]


def poll_until(sup: Supervisor, done, timeout: float = 10.0) -> list[str]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        gone = sup.poll()
        if done(gone):
            return gone
        time.sleep(0.02)
    raise AssertionError(f"not done within {timeout}s; supervisor said {sup.poll()}")


def test_a_killed_process_is_restarted_and_logged(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(tmp_path, RestartPolicy(delay_s=0.1), say=said.append)
    first = sup.start("headend", SLEEPER)
    try:
        os.kill(first.pid, signal.SIGKILL)
        first.wait(5)
        poll_until(sup, lambda _: sup.proc("headend") is not first)
        again = sup.proc("headend")
        assert again.poll() is None  # running again
        assert said[0].startswith("headend killed by signal 9; restarting in 0.1 s")
        assert said[1] == f"headend restarted (pid {again.pid})"
        log = (tmp_path / "supervisor.log").read_text().splitlines()
        assert [line.split(" ", 1)[1] for line in log] == said
        assert sup.poll() == []  # still supervised
    finally:
        sup.stop()
    assert sup.proc("headend").poll() is not None


def test_a_process_failing_too_often_is_given_up(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(tmp_path, RestartPolicy(delay_s=0.0, burst=3, interval_s=60), say=said.append)
    sup.start("gw-0001", [sys.executable, "-c", "import sys; print('bad config'); sys.exit(3)"])
    try:
        gone = poll_until(sup, lambda gone: gone == ["gw-0001"])
        assert gone == ["gw-0001"]
        assert sum("restarted" in m for m in said) == 3  # StartLimitBurst
        assert said[-1] == "gw-0001 failed 4 times within 60 s: giving up (start limit hit)"
        assert said[0].startswith("gw-0001 exited with status 3")
        assert (tmp_path / "gw-0001.log").read_text().count("bad config") == 4  # appended
    finally:
        sup.stop()


def test_restarts_spread_over_more_than_the_interval_are_not_limited(tmp_path: Path) -> None:
    sup = Supervisor(
        tmp_path, RestartPolicy(delay_s=0.0, burst=1, interval_s=5), say=lambda m: None
    )
    sup.start("simulators", SLEEPER, restart_args=[*SLEEPER[:2], "import time; time.sleep(61)"])
    try:
        t = 1000.0
        for _ in range(3):  # one failure every 6 s of supervisor time
            proc = sup.proc("simulators")
            proc.kill()
            proc.wait(5)
            t += 6
            assert sup.poll(now=t) == []
            assert sup.proc("simulators") is not proc
        assert sup.proc("simulators").args[-1] == "import time; time.sleep(61)"  # restart_args
    finally:
        sup.stop()


def test_a_clean_exit_is_not_restarted(tmp_path: Path) -> None:
    said: list[str] = []
    sup = Supervisor(tmp_path, RestartPolicy(delay_s=0.0), say=said.append)
    sup.start("once", [sys.executable, "-c", "pass"])
    try:
        assert poll_until(sup, lambda gone: gone == ["once"]) == ["once"]
        assert said == ["once exited cleanly (status 0): not restarted"]
    finally:
        sup.stop()
