"""Ports on a real board: one owner, RS-485 mode only where it works, link changes told at once."""

from __future__ import annotations

import asyncio
import logging
import os
import pty

import pytest

from gateway.bus.link import LinkError, LinkSettings, MemoryLink, SerialLink
from gateway.bus.worker import BusWorker
from gateway.polling.dlt645 import request_exchange
from protocols.dlt645 import ReadData, Version
from tests.gateway.bus.test_worker import FAST, meter_responder


def settings(path: str, **kw) -> LinkSettings:
    # 8N1: a Linux pty refuses a second tcsetattr with parity set after a close (EINVAL), a
    # quirk of ptys, not of the serial adapters the gateway meets
    return LinkSettings(path, 9600, "N", **kw)


@pytest.fixture
def pty_path():
    master, slave = pty.openpty()
    yield os.ttyname(slave)
    os.close(master)
    os.close(slave)


def test_a_port_is_opened_exclusively_and_a_second_open_says_who_holds_it(pty_path) -> None:
    first = SerialLink(settings(pty_path))
    first.open()
    try:
        with pytest.raises(LinkError, match="in use by another program"):
            SerialLink(settings(pty_path)).open()
    finally:
        first.close()
    again = SerialLink(settings(pty_path))  # free again once closed
    again.open()
    again.close()


def test_a_missing_device_names_the_fix() -> None:
    with pytest.raises(LinkError, match="no such device"):
        SerialLink(LinkSettings("/dev/ttyUSB-taiqu-missing")).open()


def test_an_adapter_refusing_rs485_mode_opens_without_it_and_says_so_once(pty_path, caplog) -> None:
    link = SerialLink(settings(pty_path, rs485=True))
    with caplog.at_level(logging.ERROR):
        link.open()  # a pty, like most USB adapters, has no kernel RS-485 mode
        link.close()
        link.open()
        link.close()
    assert link.rs485_refused
    refusals = [r for r in caplog.records if "refuses kernel RS-485 mode" in r.message]
    assert len(refusals) == 1 and "rs485 = false" in refusals[0].message


async def test_link_down_and_up_are_told_at_once() -> None:
    link = MemoryLink(meter_responder())
    changes: list[tuple[bool, str]] = []
    worker = BusWorker(
        "bus1",
        link,
        FAST,
        retries=0,
        reopen_delay=0.05,
        on_link=lambda up, why: changes.append((up, why)),
    )
    worker.start()
    read = lambda: request_exchange(ReadData("202611240001", 0x04000503), Version.V2007, "UTC")  # noqa: E731
    try:
        await worker.transact(read)
        link.fail = True
        with pytest.raises(LinkError):
            await worker.transact(read)
        with pytest.raises(LinkError):
            await worker.transact(read)  # still down: told once
        link.fail = False
        await asyncio.sleep(0.1)
        await worker.transact(read)
    finally:
        await worker.stop()
    assert [up for up, _ in changes] == [False, True]
    assert "link lost" in changes[0][1]


async def test_the_frame_trace_logs_both_directions_when_on_and_limits_its_rate(caplog) -> None:
    worker = BusWorker("bus1", MemoryLink(meter_responder()), FAST, retries=0)
    worker.trace.per_second = 4
    worker.start()
    read = lambda: request_exchange(ReadData("202611240001", 0x04000503), Version.V2007, "UTC")  # noqa: E731
    try:
        with caplog.at_level(logging.INFO, logger="gateway.trace.bus1"):
            await worker.transact(read)
            assert not [r for r in caplog.records if r.name == "gateway.trace.bus1"]  # off
            worker.trace.toggle()
            for _ in range(5):
                await worker.transact(read)
    finally:
        await worker.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "gateway.trace.bus1"]
    assert lines[0] == "frame trace on"
    assert lines[1].startswith("TX fe fe fe fe 68 01 00 24 11 26 20 68 11 04")
    assert lines[2].startswith("RX ") and " 68 91 " in lines[2]
    assert len(lines) == 1 + 4  # ten frames in the second: four logged, the rest counted
    assert worker.trace.suppressed == 6


class PtyMeter:
    """A DL/T 645 meter behind a pty's master side (the adapter's other end)."""

    def __init__(self) -> None:
        import threading

        self.master, slave = pty.openpty()
        self.path = os.ttyname(slave)
        self._slave = slave
        self._stop = False
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        import select as sel

        from protocols.dlt645 import ReadReply, Slave

        slave = Slave()
        while not self._stop:
            ready, _, _ = sel.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 1024)
            except OSError:
                return
            slave.receive_data(data)
            request = slave.next_event()
            if isinstance(request, ReadData):
                reply = ReadReply(request.address, request.di, {"status.word3": 0})
                os.write(self.master, slave.send(reply))

    def unplug(self) -> None:
        self._stop = True
        self._thread.join(1)
        os.close(self.master)
        os.close(self._slave)


async def test_an_adapter_unplugged_and_replugged_is_found_again_by_its_stable_path(
    tmp_path,
) -> None:
    stable = tmp_path / "rs485-bus1"  # what a udev rule or /dev/serial/by-path gives
    first = PtyMeter()
    stable.symlink_to(first.path)
    changes: list[tuple[bool, str]] = []
    worker = BusWorker(
        "bus1", SerialLink(settings(str(stable))), FAST, retries=0, reopen_delay=0.05,
        on_link=lambda up, why: changes.append((up, why)),
    )  # fmt: skip
    worker.start()
    read = lambda: request_exchange(ReadData("202611240001", 0x04000503), Version.V2007, "UTC")  # noqa: E731
    second = None
    try:
        assert await worker.transact(read) is not None
        first.unplug()  # the adapter is pulled: its device node goes away
        stable.unlink()
        for _ in range(3):
            with pytest.raises(LinkError):
                await worker.transact(read)
        second = PtyMeter()  # plugged in again: a new node, the same stable name
        stable.symlink_to(second.path)
        for _ in range(100):
            await asyncio.sleep(0.02)
            try:
                if await worker.transact(read) is not None:
                    break
            except LinkError:
                continue
        else:
            raise AssertionError("the replugged adapter was not found again")
    finally:
        await worker.stop()
        if second is not None:
            second.unplug()
    assert [up for up, _ in changes] == [False, True]  # told once each way, at once
