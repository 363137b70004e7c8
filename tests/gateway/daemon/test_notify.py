"""sd_notify over a fake notification socket; the watchdog is fed only while every bus task lives."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import tempfile
import time
from pathlib import Path

import pytest

from gateway.daemon.notify import Notifier, Watchdog, from_environment, watchdog_seconds


@pytest.fixture
def notify_socket():
    """A datagram socket standing in for systemd's (short path: AF_UNIX has a 108-byte limit)."""
    directory = tempfile.mkdtemp(prefix="tq-")
    path = Path(directory) / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.setblocking(False)
    yield sock, str(path)
    sock.close()
    path.unlink(missing_ok=True)
    os.rmdir(directory)


def drain(sock: socket.socket) -> list[str]:
    out = []
    while True:
        try:
            out.append(sock.recv(4096).decode())
        except BlockingIOError:
            return out


async def until(predicate, deadline_s: float = 10.0) -> None:
    """Wait for a condition (never a fixed sleep), failing after a generous deadline."""
    end = time.monotonic() + deadline_s
    while not predicate():
        assert time.monotonic() < end, "condition not reached before the deadline"
        await asyncio.sleep(0.005)


def test_messages_are_key_value_lines(notify_socket):
    sock, path = notify_socket
    n = Notifier(path)
    assert n.ready("polling 3 buses") and n.ping() and n.status("bus1: link down")
    assert n.stopping()
    assert drain(sock) == [
        "READY=1\nSTATUS=polling 3 buses",
        "WATCHDOG=1",
        "STATUS=bus1: link down",
        "STOPPING=1",
    ]
    n.close()


def test_abstract_namespace_sockets_are_supported():
    name = f"taiqu-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    notifier = Notifier("@" + name)
    try:
        assert notifier.ping()
        assert sock.recv(100) == b"WATCHDOG=1"
    finally:
        sock.close()
        notifier.close()


def test_without_systemd_nothing_is_sent(monkeypatch):
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)
    n = Notifier()
    assert not n.enabled and n.ready() is False


def test_a_vanished_socket_is_reported_not_raised(tmp_path):
    n = Notifier(str(tmp_path / "gone"))
    assert n.ping() is False and n.failures == 1
    n.close()


def test_watchdog_settings_come_from_the_environment():
    assert watchdog_seconds({"WATCHDOG_USEC": "30000000"}) == 30.0
    assert watchdog_seconds({"WATCHDOG_USEC": "0"}) is None
    assert watchdog_seconds({}) is None
    assert watchdog_seconds({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None  # not us
    mine = {"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": str(os.getpid())}
    assert watchdog_seconds(mine) == 1.0
    with pytest.raises(ValueError):
        Watchdog(Notifier(""), 0)


def test_from_environment_builds_the_watchdog_systemd_asked_for(monkeypatch, notify_socket):
    monkeypatch.setenv("NOTIFY_SOCKET", notify_socket[1])
    monkeypatch.setenv("WATCHDOG_USEC", "4000000")
    monkeypatch.delenv("WATCHDOG_PID", raising=False)
    dog = from_environment()
    assert dog is not None and dog.timeout_s == 4.0 and dog.interval == 2.0
    dog.notifier.close()
    monkeypatch.delenv("WATCHDOG_USEC")
    assert from_environment() is None


async def test_the_service_loop_feeds_the_watchdog_until_a_bus_task_hangs(notify_socket):
    sock, path = notify_socket
    notifier = Notifier(path)
    dog = Watchdog(notifier, timeout_s=0.3)
    hang = asyncio.Event()
    link_down = asyncio.Event()
    turns = {"bus1": 0, "bus2": 0}

    async def bus_task(name: str) -> None:
        heartbeat = dog.register(name)
        while True:
            heartbeat.beat()
            turns[name] += 1
            if name == "bus2" and hang.is_set():
                await asyncio.Event().wait()  # stuck forever: no more beats
            if name == "bus1" and link_down.is_set():
                with contextlib.suppress(OSError):
                    raise OSError("cable cut")  # the turn fails, the task lives on
            await asyncio.sleep(0.01)

    async def service() -> None:
        notifier.ready("polling")
        await asyncio.gather(bus_task("bus1"), bus_task("bus2"), dog.run())

    task = asyncio.create_task(service())
    received: list[str] = []

    def collect() -> list[str]:
        received.extend(drain(sock))
        return received

    try:
        await until(lambda: collect().count("WATCHDOG=1") >= 3)
        assert received[0].startswith("READY=1")
        # a cut cable is a health problem, not a hang: pings go on
        link_down.set()
        before = received.count("WATCHDOG=1")
        await until(lambda: collect().count("WATCHDOG=1") >= before + 3)
        assert dog.withheld == 0
        # a hung bus task: pings stop
        hang.set()
        await until(lambda: dog.withheld >= 1)
        collect()
        stopped_at = received.count("WATCHDOG=1")
        await until(lambda: dog.withheld >= 4)
        assert collect().count("WATCHDOG=1") == stopped_at
        assert dog.stale() == ["bus2"]
        assert turns["bus1"] > turns["bus2"]
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        notifier.close()
