"""The bus worker: the one owner of an RS-485 port.

Callers submit *exchanges* (one request, one expected reply) with a priority; the worker runs
them one at a time on its own thread (blocking pyserial I/O never touches the event loop and a
slow bus never waits for another bus's thread).  Between two transactions it takes the most
urgent waiting job, so commands and on-demand reads overtake a sweep at the next gap::

    submit(factory, priority) ──► PriorityQueue ──► worker task ──► bus thread: gap, write, read…
                                  (priority, seq)                      feed() until complete

A transaction is retried ``retries`` times on timeout or a garbled reply.  A lost link is
re-opened with back-off; while it is down every transaction fails at once with ``LinkError``
(the bus is at fault, not the meters, so meters are not backed off for it).

The worker task calls ``heartbeat()`` once per loop turn, also while idle (it waits on its queue
at most ``beat_interval`` seconds) and while its link is down, so the systemd watchdog
(``gateway.daemon.notify``) sees a hung bus thread but not a cut cable.  Line quality is summed from
each exchange's codec after it finishes (``noise_bytes``, ``checksum_errors``).

Exchanges, priorities and the transaction errors are ``gateway.bus.exchange`` (re-exported here).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

from gateway.bus.exchange import (
    MAX_WRITES,
    Conversation,
    Exchange,
    ExchangeFactory,
    Priority,
    TransactionError,
    TransactionTimeout,
)
from gateway.bus.link import Line, Link, LinkError
from gateway.bus.timing import LineTiming
from gateway.bus.trace import FrameTrace

__all__ = [  # the exchange vocabulary is re-exported: callers import it from here
    "MAX_WRITES",
    "BusStats",
    "BusWorker",
    "Conversation",
    "Exchange",
    "ExchangeFactory",
    "Priority",
    "TransactionError",
    "TransactionTimeout",
]

log = logging.getLogger(__name__)


@dataclass
class BusStats:
    """Counters of one bus (reported in the health status)."""

    transactions: int = 0
    timeouts: int = 0
    retries: int = 0
    garbled: int = 0
    link_errors: int = 0
    noise_bytes: int = 0  # line noise the codecs skipped
    checksum_errors: int = 0  # frames dropped for a bad checksum
    busy_seconds: float = 0.0
    line_switches: int = 0  # port re-configured for a meter with other line settings
    link_up: bool = False

    def as_dict(self) -> dict[str, Any]:
        return {
            "transactions": self.transactions,
            "timeouts": self.timeouts,
            "retries": self.retries,
            "garbled": self.garbled,
            "link_errors": self.link_errors,
            "noise_bytes": self.noise_bytes,
            "checksum_errors": self.checksum_errors,
            "busy_s": round(self.busy_seconds, 3),
            "line_switches": self.line_switches,
            "link_up": self.link_up,
        }


@dataclass(order=True)
class _Job:
    priority: int
    seq: int
    factory: ExchangeFactory = field(compare=False)
    future: asyncio.Future[Any] = field(compare=False)
    line: Line | None = field(default=None, compare=False)


class _Garbled(Exception):
    pass


class BusWorker:
    """Runs every transaction of one bus, most urgent first, on a thread of its own."""

    def __init__(
        self,
        name: str,
        link: Link,
        timing: LineTiming,
        *,
        retries: int = 1,
        echo: bool = False,
        reopen_delay: float = 1.0,
        beat_interval: float = 1.0,
        heartbeat: Callable[[], None] | None = None,
        on_link: Callable[[bool, str], None] | None = None,
    ) -> None:
        self.name = name
        self.on_link = on_link  # (up, reason) from the bus thread when the port goes or comes
        self.trace = FrameTrace(name)  # off by default; SIGUSR1 toggles it in the daemon
        self.link = link
        self.timing = timing
        self.base_timing = timing  # the bus's own line; per-meter lines derive from it
        self.line: Line | None = None  # the line the port is at (None: the bus's own)
        self.retries = retries
        self.echo = echo
        self.reopen_delay = reopen_delay
        self.beat_interval = beat_interval
        self.heartbeat = heartbeat  # called once per loop turn (the watchdog's proof of life)
        self.stats = BusStats()
        self._queue: asyncio.PriorityQueue[_Job] = asyncio.PriorityQueue()
        self._seq = itertools.count()
        self._executor = ThreadPoolExecutor(1, thread_name_prefix=f"bus-{name}")
        self._task: asyncio.Task[None] | None = None
        self._last_end = 0.0  # monotonic end of the last transaction (bus thread only)
        self._link_down_since: float | None = None
        self._next_open = 0.0

    # -- the event-loop side -----------------------------------------------------------------

    def start(self) -> None:
        """Start the worker task on the running loop."""
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(
                self._run(), name=f"bus-{self.name}"
            )

    async def stop(self) -> None:
        """Stop taking jobs, fail the waiting ones, close the link."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        while not self._queue.empty():
            job = self._queue.get_nowait()
            if not job.future.done():
                job.future.cancel()
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.link.close)
        self._executor.shutdown(wait=False)

    @property
    def pending(self) -> int:
        """Jobs waiting for the bus."""
        return self._queue.qsize()

    async def transact(
        self,
        factory: ExchangeFactory,
        priority: Priority = Priority.SCHEDULED,
        line: Line | None = None,
    ) -> Any:
        """Run one exchange (with retries) and return its outcome.

        ``line``: the meter's own line settings when they differ from the bus's; the port is
        switched before the exchange (and stays so until another line is asked for)."""
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Job(int(priority), next(self._seq), factory, future, line))
        return await future

    def _beat(self) -> None:
        if self.heartbeat is not None:
            self.heartbeat()

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        getter: asyncio.Task[_Job] | None = None
        try:
            while True:
                self._beat()
                if getter is None:
                    getter = loop.create_task(self._queue.get())
                # the same getter survives a timeout, so no job is lost between turns
                done, _ = await asyncio.wait({getter}, timeout=self.beat_interval)
                if not done:
                    continue
                job, getter = getter.result(), None
                await self._run_job(loop, job)
        finally:
            if getter is not None:
                if getter.done() and not getter.cancelled():
                    getter.result().future.cancel()  # taken just as we stopped
                getter.cancel()

    async def _run_job(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        if job.future.done():  # the caller gave up
            return
        try:
            outcome = await loop.run_in_executor(
                self._executor, self._attempts, job.factory, job.line
            )
        except asyncio.CancelledError:
            job.future.cancel()
            raise
        except Exception as exc:
            if not job.future.done():
                job.future.set_exception(exc)
        else:
            if not job.future.done():
                job.future.set_result(outcome)

    # -- the bus thread ------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        if self.stats.link_up:
            return
        now = time.monotonic()
        if now < self._next_open:
            raise LinkError(f"bus {self.name}: link {self.link.name} is down")
        try:
            self.link.open()
        except LinkError as exc:
            self._next_open = now + self.reopen_delay
            self.stats.link_errors += 1
            if self._link_down_since is None:
                self._link_down_since = now
                log.error("bus %s: %s; retrying every %.0f s", self.name, exc, self.reopen_delay)
                self._tell(False, str(exc))
            raise
        self.stats.link_up = True
        if self._link_down_since is not None:
            log.warning("bus %s: link %s is back", self.name, self.link.name)
            self._link_down_since = None
            self._tell(True, "re-opened")

    def _tell(self, up: bool, reason: str) -> None:
        if self.on_link is not None:
            try:
                self.on_link(up, reason)
            except Exception:  # a listener must not break the bus thread
                log.exception("bus %s: link listener failed", self.name)

    def _link_lost(self, exc: LinkError) -> None:
        self.stats.link_up = False
        self.stats.link_errors += 1
        self.link.close()
        self._next_open = time.monotonic() + self.reopen_delay
        if self._link_down_since is None:
            self._link_down_since = time.monotonic()
            log.error("bus %s: %s; re-opening every %.0f s", self.name, exc, self.reopen_delay)
            self._tell(False, str(exc))

    def _switch(self, line: Line | None) -> None:
        """Put the port at ``line`` (None: the bus's own) before an exchange."""
        if line == self.line:
            return
        target = line or self.default_line
        if target is not None and (self.line or self.default_line) != target:
            self.link.configure(target)
            self.stats.line_switches += 1
        self.line = line
        base = self.base_timing
        self.timing = (
            base
            if line is None
            else replace(base, baud=line.baud, bits_per_char=line.bits_per_char)
        )

    @property
    def default_line(self) -> Line | None:
        """The bus's own line settings (what the link was opened with)."""
        settings = getattr(self.link, "settings", None)
        return getattr(settings, "line", None)

    def _attempts(self, factory: ExchangeFactory, line: Line | None = None) -> Any:
        self._ensure_open()
        try:
            self._switch(line)
        except LinkError as exc:
            self._link_lost(exc)
            raise
        last: TransactionError | None = None
        for attempt in range(self.retries + 1):
            if attempt:
                self.stats.retries += 1
            try:
                return self._once(factory())
            except _Garbled as exc:
                self.stats.garbled += 1
                last = TransactionError(f"bus {self.name}: garbled reply ({exc})")
            except TransactionTimeout as exc:
                self.stats.timeouts += 1
                last = exc
            except LinkError as exc:
                self._link_lost(exc)
                raise
        assert last is not None
        raise last

    def _once(self, exchange: Exchange) -> Any:
        gap = self.timing.inter_frame_gap() - (time.monotonic() - self._last_end)
        if gap > 0:
            time.sleep(gap)
        started = time.monotonic()
        self.stats.transactions += 1
        try:
            self.link.discard_input()
            self.link.write(exchange.request)
            if self.trace.on:
                self.trace.frame("TX", exchange.request)
            if not exchange.expects_reply:  # broadcast: wait for it to leave the wire
                time.sleep(self.timing.wire_time(len(exchange.request)))
                return None
            deadline = started + self.timing.deadline(len(exchange.request), exchange.reply_len)
            echo = len(exchange.request) if self.echo else 0
            writes = 1
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    if getattr(exchange, "listens", False):  # hears the whole window (搜表)
                        return exchange.feed(b"")
                    raise TransactionTimeout(
                        f"bus {self.name}: no complete reply within "
                        f"{self.timing.deadline(len(exchange.request), exchange.reply_len):.3f} s"
                    )
                chunk = self.link.read(remaining)
                if self.trace.on and chunk:
                    self.trace.frame("RX", chunk)
                if echo and chunk:
                    skip = min(echo, len(chunk))
                    chunk, echo = chunk[skip:], echo - skip
                if not chunk:
                    continue
                try:
                    outcome = exchange.feed(chunk)
                except LinkError:
                    raise
                except Exception as exc:  # the codec rejected the reply: count and retry
                    raise _Garbled(str(exc)) from exc
                if outcome is not None:
                    return outcome
                send = getattr(exchange, "data_to_send", None)  # a ``Conversation``
                more = send() if send is not None else b""
                if more:
                    writes += 1
                    if writes > MAX_WRITES:
                        raise _Garbled(f"more than {MAX_WRITES} writes in one exchange")
                    self.link.write(more)
                    if self.trace.on:
                        self.trace.frame("TX", more)
                    echo += len(more) if self.echo else 0
                    deadline = time.monotonic() + self.timing.deadline(
                        len(more), exchange.reply_len
                    )
        finally:
            self._last_end = time.monotonic()
            self.stats.busy_seconds += self._last_end - started
            self._line_quality(exchange)

    def _line_quality(self, exchange: Exchange) -> None:
        """Add the noise and bad checksums the exchange's codec saw to the bus counters."""
        master = getattr(exchange, "master", None)
        if master is None:
            return
        noise = getattr(master, "dropped_bytes", 0)
        bad = getattr(master, "bad_checksums", 0)
        self.stats.noise_bytes += noise if isinstance(noise, int) else 0
        self.stats.checksum_errors += bad if isinstance(bad, int) else 0
