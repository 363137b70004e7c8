"""Exchanges that write more than once before their outcome (``Conversation``): the worker writes
``data_to_send()`` after each ``feed`` and restarts the reply window from that write."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from gateway.bus.link import MemoryLink
from gateway.bus.timing import LineTiming
from gateway.bus.worker import BusWorker, TransactionTimeout

FAST = LineTiming(baud=115200, bits_per_char=10, response_timeout=0.05)


@dataclass
class Steps:
    """Asks ``rounds`` times: each answer ``ok<n>`` is fed, then ``next<n>`` is written."""

    rounds: int
    request: bytes = b"first"
    reply_len: int = 8
    expects_reply: bool = True
    seen: list[bytes] = field(default_factory=list)
    _out: bytes = b""

    def feed(self, data: bytes) -> Any | None:
        self.seen.append(data)
        if len(self.seen) == self.rounds:
            return tuple(self.seen)
        self._out = b"next%d" % len(self.seen)
        return None

    def data_to_send(self) -> bytes:
        out, self._out = self._out, b""
        return out


class Device:
    def __init__(self) -> None:
        self.silent: set[bytes] = set()

    def __call__(self, request: bytes) -> bytes | None:
        return None if request in self.silent else b"ok-" + request


@pytest.fixture
async def worker():
    device = Device()
    link = MemoryLink(device, delay=0.03)  # each answer takes most of one reply window
    w = BusWorker("bus1", link, FAST, retries=0)
    w.start()
    yield w, link, device
    await w.stop()


async def test_each_write_gets_its_own_reply_window(worker) -> None:
    w, link, _ = worker
    outcome = await w.transact(lambda: Steps(4))
    assert outcome == (b"ok-first", b"ok-next1", b"ok-next2", b"ok-next3")
    assert link.written == [b"first", b"next1", b"next2", b"next3"]
    assert w.stats.transactions == 1 and w.stats.timeouts == 0


async def test_silence_after_a_later_write_is_a_timeout(worker) -> None:
    w, link, device = worker
    device.silent.add(b"next2")
    with pytest.raises(TransactionTimeout):
        await w.transact(lambda: Steps(4))
    assert link.written == [b"first", b"next1", b"next2"]


async def test_a_conversation_that_never_ends_is_cut_off(worker) -> None:
    from gateway.bus.worker import MAX_WRITES, TransactionError

    w, link, _ = worker
    link.delay = 0.001
    with pytest.raises(TransactionError, match="writes in one exchange"):
        await w.transact(lambda: Steps(MAX_WRITES + 10))
    assert len(link.written) == MAX_WRITES and w.stats.garbled == 1
