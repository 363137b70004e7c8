"""Group commits: a bus's readings, events and meter state committed together (SD-card wear).

A sweep used to commit once per meter visit, and once more for the meter's event state: about
23,000 fsyncs a simulated day for 20 meters, scaling with the meter count.  A ``GroupCommit``
collects what one bus produces and commits it in one transaction (one fsync) when the poller
says the group is due — at the end of the bus's sweep, or between meters once the oldest
pending item is ``seconds`` old (default 10 s), whichever comes first — in one commit thread, so
the event loop never waits for the card.

Guarantees (docs/gateway-store.md): seqs are assigned inside the committing transaction, so the
stream stays gap-free; the uplink hears of records only after their commit, so nothing is
published (let alone acknowledged) before it is on the card; a power cut loses at most what was
read since the last group commit.  State written to the group is visible to ``get_state`` at
once (pending, then being committed, then stored), so event detection never reads stale counters.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Protocol

from gateway.store.local import Json
from gateway.store.outbox import Encoded, encode
from protocols.model import Event, Reading
from protocols.uplink import events_to_records, readings_to_records

DEFAULT_GROUP_SECONDS = 10.0
# One thread commits for every bus: commits serialise on the store's lock anyway, and a single
# thread keeps to one malloc arena (the default executor's threads each grew their own: RSS).
_COMMITTER = ThreadPoolExecutor(1, thread_name_prefix="store-commit")


class GroupStore(Protocol):
    """What a group commits into (``gateway.store.Store``)."""

    def commit_group(self, records: Sequence[Encoded], states: Mapping[str, Any]) -> int: ...

    def get_state(self, key: str, default: Any = None) -> Any: ...


class GroupCommit:
    """Pending readings, events and state of one bus, committed in one transaction."""

    def __init__(
        self,
        store: GroupStore,
        seconds: float = DEFAULT_GROUP_SECONDS,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.seconds = seconds
        self._monotonic = monotonic
        # rows and JSON text, not models: a bus's sweep waits here (RAM on a Pi)
        self._records: list[Encoded] = []
        self._states: dict[str, Json] = {}
        self._committing: dict[str, Json] = {}
        self._since: float | None = None
        self._lock = asyncio.Lock()
        self.groups = 0  # transactions committed

    def _touch(self) -> None:
        if self._since is None:
            self._since = self._monotonic()

    def add_readings(self, readings: Sequence[Reading], command: str | None = None) -> None:
        """Readings of one visit (one record per meter and time, as ``append_readings``)."""
        if readings:
            now = datetime.now(UTC)
            self._records += [encode(r, now) for r in readings_to_records(readings, command)]
            self._touch()

    def add_events(self, events: Sequence[Event]) -> None:
        """Events of one visit."""
        if events:
            now = datetime.now(UTC)  # only for an event with neither start nor detection time
            self._records += [encode(r, now) for r in events_to_records(events)]
            self._touch()

    def set_state(self, key: str, value: Any) -> None:
        """Persist ``value`` under ``key`` with the group's next commit."""
        self._states[key] = Json(json.dumps(value, separators=(",", ":")))
        self._touch()

    def get_state(self, key: str, default: Any = None) -> Any:
        """The newest value of ``key``: pending, being committed, or stored."""
        text = self._states.get(key) or self._committing.get(key)
        if text is not None:
            return json.loads(text)
        return self.store.get_state(key, default)

    @property
    def pending(self) -> int:
        """Records and state values waiting for the next commit."""
        return len(self._records) + len(self._states)

    def due(self) -> bool:
        """Whether the oldest pending item has waited ``seconds``."""
        return self._since is not None and self._monotonic() - self._since >= self.seconds

    async def flush(self) -> int | None:
        """Commit what is pending (in a worker thread); the last seq, or None if nothing was.

        Cancelled meanwhile (shutdown), it still waits for the thread: the commit either
        happened or not, never half-known, so nothing is lost or stored twice."""
        async with self._lock:
            if not self._records and not self._states:
                return None
            records, self._records = self._records, []
            self._committing, self._states = self._states, {}
            self._since = None
            loop = asyncio.get_running_loop()
            job = asyncio.ensure_future(
                loop.run_in_executor(_COMMITTER, self.store.commit_group, records, self._committing)
            )
            try:
                await asyncio.wait([job])
            finally:
                if not job.done():  # cancelled while waiting: let the thread finish first
                    await asyncio.wait([job])
                error = job.exception()
                if error is not None:  # not committed: back in front, retried in order
                    self._records = records + self._records
                    self._states = {**self._committing, **self._states}
                    self._touch()
                self._committing = {}
            if error is not None:
                raise error
            self.groups += 1
            return int(job.result())
