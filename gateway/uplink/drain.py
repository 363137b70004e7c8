"""The uplink's drain: pending store rows → size-capped ``Batch`` messages within the window.

``Uplink`` (``gateway.uplink.client``) inherits this; the drain wakes on an append, an Ack or a
deadline of the window, rewinds after an Ack timeout and serves re-send requests (gaps included).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque

from pydantic import BaseModel

from gateway.store import Store, StoredRecord
from gateway.uplink.settings import UplinkSettings
from gateway.uplink.window import Window
from protocols.uplink import Batch, Topics
from taiqu.clock import Clock

log = logging.getLogger("gateway.uplink.client")


class Drain:
    """The drain half of ``Uplink``: the attributes below are set by ``Uplink``."""

    gateway_id: str
    store: Store
    clock: Clock
    topics: Topics
    settings: UplinkSettings
    window: Window
    counters: dict[str, int]
    _connected: bool
    _stopping: bool
    _wake: asyncio.Event
    _resends: deque[tuple[int, int]]
    _outstanding: set[int]

    def _publish(self, topic: str, message: BaseModel, *, retain: bool = False) -> bool:
        raise NotImplementedError  # Uplink's

    async def _drain(self) -> None:
        while not self._stopping:
            self._wake.clear()
            if self._connected:
                try:
                    if self.window.expire(time.monotonic()):
                        self.counters["rewinds"] += 1
                        log.info("no Ack within %.0fs: re-sending from the oldest unacknowledged",
                                 self.window.timeout / 2)  # fmt: skip
                    await self._serve_resends()
                    await self._fill_window()
                except Exception:  # a bad row or a store error must not kill the uplink
                    log.exception("uplink drain failed; retrying")
            deadline = self.window.deadline() if self._connected else None
            delay = self.settings.poll_interval
            if deadline is not None:
                delay = min(delay, max(0.0, deadline - time.monotonic()))
            try:  # asyncio.timeout, not wait_for: 3.11's wait_for can swallow a cancellation
                async with asyncio.timeout(delay):
                    await self._wake.wait()
            except TimeoutError:
                pass

    async def _fill_window(self) -> None:
        s = self.settings
        while (
            self._connected and not self.window.full and len(self._outstanding) < s.max_outstanding
        ):
            rows = await asyncio.to_thread(self.store.pending, self.window.cursor, s.batch_records)
            run = _run(rows, s.batch_bytes)
            if not run:
                return
            if not self._publish(self.topics.data, self._batch(run, resend=False)):
                return
            self.window.sent(run[0].seq, run[-1].seq, time.monotonic())
            self.counters["batches"] += 1
            self.counters["records"] += len(run)

    def _room(self) -> bool:
        return len(self._outstanding) < self.settings.max_outstanding

    async def _serve_resends(self) -> None:
        s = self.settings
        while self._resends and self._connected:
            first, last = self._resends.popleft()
            last = min(last, first + s.resend_max_records - 1)
            rows = await asyncio.to_thread(self.store.records, first, last)
            have = {r.seq for r in rows}
            if len(have) < last - first + 1:  # dropped or pruned seqs: send what announced them
                gaps = await asyncio.to_thread(self.store.gaps_covering, first, last)
                rows = sorted([*rows, *(g for g in gaps if g.seq not in have)], key=lambda r: r.seq)
            while rows:
                while not self._room() and self._connected:
                    self._wake.clear()
                    await self._wake.wait()
                run = _run(rows[: s.batch_records], s.batch_bytes)
                rows = rows[len(run) :]
                if not self._publish(self.topics.data, self._batch(run, resend=True)):
                    return
                self.counters["resent_batches"] += 1

    def _batch(self, run: list[StoredRecord], *, resend: bool) -> Batch:
        return Batch(
            gateway=self.gateway_id,
            epoch=self.store.epoch,
            seq=run[0].seq,
            sent=self.clock.now(),
            records=tuple(r.record() for r in run),
            resend=resend,
        )


def _run(rows: list[StoredRecord], max_bytes: int) -> list[StoredRecord]:
    """The longest prefix of ``rows`` with consecutive seqs and at most ``max_bytes`` of bodies."""
    run: list[StoredRecord] = []
    size = 0
    for row in rows:
        if run and (row.seq != run[-1].seq + 1 or size + len(row.body) > max_bytes):
            break
        run.append(row)
        size += len(row.body)
    return run
