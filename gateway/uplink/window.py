"""The in-flight window of the store-and-forward drain (pure logic: no I/O, no clock).

State machine (go-back-N with a bounded window)::

    cursor = last seq handed to the broker in this pass (0: start from the oldest unacked)
    send:    while fewer than ``size`` batches await an Ack: send the next pending run after
             cursor; cursor = its last seq
    Ack:     drop in-flight batches the Ack covers; progress resets the back-off
    timeout: the oldest in-flight batch waited ``timeout`` for its Ack: rewind (cursor = 0,
             window empty: re-send from the oldest unacked) and double ``timeout`` up to the cap
    connect: restart the timers (paho re-sends its own unacknowledged PUBLISHes itself)

Memory is bounded by ``size`` × batch size whatever the backlog: the store holds the rest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass
class InFlight:
    """A batch published and not yet covered by an Ack."""

    first: int
    last: int
    sent_at: float


@dataclass
class Window:
    """Go-back-N bookkeeping; times are monotonic seconds supplied by the caller."""

    size: int
    base_timeout: float
    max_timeout: float
    cursor: int = 0
    inflight: list[InFlight] = field(default_factory=list)
    timeout: float = 0.0
    rewinds: int = 0

    def __post_init__(self) -> None:
        self.timeout = self.base_timeout

    @property
    def full(self) -> bool:
        return len(self.inflight) >= self.size

    def sent(self, first: int, last: int, now: float) -> None:
        """A batch ``first``…``last`` was handed to the broker."""
        self.inflight.append(InFlight(first, last, now))
        self.cursor = max(self.cursor, last)

    def acked(self, upto: int, ranges: Iterable[tuple[int, int]] = ()) -> int:
        """Forget batches the Ack covers; return how many."""
        spans = [(0, upto), *ranges]
        keep = [b for b in self.inflight if not any(a <= b.first and b.last <= z for a, z in spans)]
        done = len(self.inflight) - len(keep)
        self.inflight = keep
        if done:
            self.timeout = self.base_timeout
        return done

    def deadline(self) -> float | None:
        """When the oldest in-flight batch times out (None: nothing in flight)."""
        return self.inflight[0].sent_at + self.timeout if self.inflight else None

    def expire(self, now: float) -> bool:
        """Rewind if the oldest batch waited too long; return whether it did."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return False
        self.rewind()
        self.timeout = min(self.timeout * 2, self.max_timeout)
        self.rewinds += 1
        return True

    def rewind(self) -> None:
        """Start again from the oldest unacknowledged record."""
        self.cursor = 0
        self.inflight.clear()

    def restart_timers(self, now: float) -> None:
        """After a reconnect: give in-flight batches a fresh timeout."""
        for batch in self.inflight:
            batch.sent_at = now
