"""What the daemon relies on from the bus worker: heartbeat, line quality, broadcasts."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import pytest

from gateway.bus.link import MemoryLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker, Priority
from gateway.daemon.notify import Notifier, Watchdog
from gateway.polling.dlt645 import request_exchange
from protocols.dlt645 import BroadcastTimeSync, ReadData, ReadReply, Slave, Version
from protocols.dlt645.messages import ReadReply as Reply

FAST = LineTiming(baud=115200, bits_per_char=11, response_timeout=0.05)
ADDRESS = "202611240001"


def meter_responder(noise: bytes = b"", corrupt_first: int = 0) -> Any:
    """A DL/T 645 meter answering status word 3 (the first ``corrupt_first`` replies garbled)."""
    state = {"replies": 0}

    def respond(request: bytes) -> bytes | None:
        slave = Slave(Version.V2007)
        slave.receive_data(request)
        event = slave.next_event()
        if not isinstance(event, ReadData):
            return None  # broadcasts get no reply
        reply = bytearray(slave.send(Reply(ADDRESS, event.di, {"status.word3": 0x10})))
        state["replies"] += 1
        if state["replies"] <= corrupt_first:
            reply[-2] ^= 0xFF  # the checksum
        return noise + bytes(reply)

    return respond


async def counting_beats(worker: BusWorker) -> list[float]:
    beats: list[float] = []
    worker.heartbeat = lambda: beats.append(time.monotonic())
    worker.start()
    return beats


async def wait_for(predicate: Any, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


async def test_an_idle_worker_and_one_with_its_link_down_keep_beating() -> None:
    idle = BusWorker("idle", MemoryLink(lambda _: None), FAST, beat_interval=0.02)
    down = BusWorker("down", MemoryLink(lambda _: None, fail=True), FAST, beat_interval=0.02)
    idle_beats, down_beats = await counting_beats(idle), await counting_beats(down)
    with pytest.raises(Exception, match="cannot open"):
        await down.transact(lambda: request_exchange(ReadData(ADDRESS, 0x04000503),
                                                     Version.V2007, "UTC"))  # fmt: skip
    await wait_for(lambda: len(idle_beats) >= 5 and len(down_beats) >= 5)
    assert not down.stats.link_up
    await idle.stop()
    await down.stop()


async def test_a_hung_bus_thread_stops_the_beats_and_the_watchdog_withholds_pings() -> None:
    release = threading.Event()

    def hang(_request: bytes) -> bytes | None:
        release.wait(10)  # a write that never returns (a wedged USB adapter)
        return None

    worker = BusWorker("hung", MemoryLink(hang), FAST, beat_interval=0.02)
    dog = Watchdog(Notifier(address=""), 0.2)
    worker.heartbeat = dog.register("bus:hung").beat
    worker.start()
    job = asyncio.ensure_future(
        worker.transact(
            lambda: request_exchange(ReadData(ADDRESS, 0x04000503), Version.V2007, "UTC")
        )
    )
    await wait_for(lambda: dog.stale() == ["bus:hung"])
    assert dog.feed() is False and dog.withheld == 1
    release.set()
    await wait_for(job.done)
    await wait_for(lambda: not dog.stale())
    await worker.stop()


async def test_noise_and_bad_checksums_are_summed_from_each_exchange() -> None:
    link = MemoryLink(meter_responder(noise=b"\x13\x37\x00", corrupt_first=1))
    worker = BusWorker("bus1", link, FAST, retries=1)
    worker.start()
    factory = lambda: request_exchange(ReadData(ADDRESS, 0x04000503), Version.V2007, "UTC")  # noqa: E731
    reply = await worker.transact(factory, Priority.COMMAND)
    assert isinstance(reply, ReadReply)
    assert worker.stats.checksum_errors == 1 and worker.stats.retries == 1
    assert worker.stats.noise_bytes >= 2 * 3  # the noise before both replies
    figures = worker.stats.as_dict()
    assert figures["noise_bytes"] == worker.stats.noise_bytes
    assert figures["checksum_errors"] == 1
    await worker.stop()


async def test_a_broadcast_expects_no_reply_and_returns_none() -> None:
    link = MemoryLink(meter_responder())
    worker = BusWorker("bus1", link, FAST)
    worker.start()
    from datetime import datetime

    sync = BroadcastTimeSync(datetime(2026, 11, 24, 10, 20))
    started = time.monotonic()
    outcome = await worker.transact(lambda: request_exchange(sync, Version.V2007, "UTC"))
    assert outcome is None and link.written
    assert time.monotonic() - started >= FAST.wire_time(len(link.written[-1]))
    assert worker.stats.timeouts == 0
    await worker.stop()
