"""The gateway's local store: every record it will send, numbered with a gap-free ``seq``.

Life of a record::

    append_*  ──►  outbox row, acked = 0  ──(head-end Ack covers seq)──►  acked = 1
                          │                                                  │
                          │ disk budget: unacked alone exceed it             │ disk budget:
                          ▼                                                  ▼ oldest first
                 dropped + GapRecord + gap_announced event             pruned (deleted)

``seq`` is assigned inside the appending transaction (``head.last_seq``), so a crash leaves
either the whole sweep with its seqs or none of it: never a hole.  Methods are thread-safe (one
connection behind a lock), so an asyncio caller may run them in ``asyncio.to_thread``.
"""

from __future__ import annotations

import logging
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlite_utils

from gateway.errors import StoreClosedError, StoreError
from gateway.store import budget as budget_mod
from gateway.store import local, outbox
from gateway.store.outbox import AnyRecord, Encoded
from gateway.store.records import AckOutcome, StoredRecord, StoreStats
from gateway.store.schema import connect, initialise
from protocols.model import Event, Reading
from protocols.uplink import (
    Ack,
    events_to_records,
    readings_to_records,
)
from taiqu.clock import Clock

log = logging.getLogger(__name__)

DEFAULT_BUDGET_BYTES = 512 * 1024 * 1024


class Store:
    """SQLite outbox + local bookkeeping; see the module docstring."""

    def __init__(
        self,
        db: sqlite_utils.Database,
        path: Path,
        budget_bytes: int,
        clock: Clock,
        drop_fraction: float = budget_mod.DROP_FRACTION,
    ):
        self._db: sqlite_utils.Database | None = db
        self.path = path
        self.budget_bytes = budget_bytes
        self.drop_fraction = drop_fraction
        self.clock = clock
        self._lock = threading.RLock()
        self._listeners: list[Callable[[int], None]] = []
        self.epoch: str = db.execute("SELECT epoch FROM head").fetchone()[0]
        self.commits = 0  # write transactions since open (each one fsync of the WAL)

    @classmethod
    def open(
        cls,
        path: Path,
        *,
        budget_bytes: int = DEFAULT_BUDGET_BYTES,
        clock: Clock,
        drop_fraction: float = budget_mod.DROP_FRACTION,
    ) -> Store:
        """Open the store at ``path``, creating it (with a new random epoch) on first use.

        ``drop_fraction``: the share of the budget one over-budget pass frees of unacknowledged
        data (oldest first), so a long outage makes few, large gap announcements."""
        if budget_bytes < 64 * 1024:
            raise StoreError(f"budget_bytes={budget_bytes} is too small: give at least 64 KiB")
        if not 0 < drop_fraction <= budget_mod.MAX_DROP_FRACTION:
            raise StoreError(
                f"drop_fraction={drop_fraction} must be above 0 and at most "
                f"{budget_mod.MAX_DROP_FRACTION}, e.g. 0.1"
            )
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        db = connect(path)
        try:
            initialise(db, path, clock.now())
        except BaseException:
            db.close()
            raise
        return cls(db, path, budget_bytes, clock, drop_fraction)

    # -- plumbing -------------------------------------------------------------------------------

    @contextmanager
    def _conn(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        with self._lock:
            if self._db is None:
                raise StoreClosedError(f"{self.path}: the store is closed")
            try:
                if write:
                    with self._db.atomic():
                        yield self._db.conn
                    self.commits += 1
                else:
                    yield self._db.conn
            except sqlite3.Error as exc:
                raise StoreError(f"{self.path}: {exc}") from exc

    def add_listener(self, callback: Callable[[int], None]) -> None:
        """Call ``callback(last_seq)`` after every append (from the appending thread)."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Callable[[int], None]) -> None:
        if callback in self._listeners:
            self._listeners.remove(callback)

    def close(self) -> None:
        """Checkpoint the WAL and close the file (idempotent)."""
        with self._lock:
            if self._db is not None:
                try:
                    self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    self._db.close()
                    self._db = None

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- appending -----------------------------------------------------------------------------

    def append_readings(self, readings: Sequence[Reading], command: str | None = None) -> int:
        """Store a sweep's readings as records in one transaction; return the last seq.

        ``command``: the head-end command the readings answer (an on-demand read).
        """
        return self.append_records(readings_to_records(readings, command))

    def append_events(self, events: Sequence[Event]) -> int:
        """Store events as records in one transaction; return the last seq."""
        return self.append_records(events_to_records(events))

    def append_records(self, records: Sequence[AnyRecord]) -> int:
        """Store contract records with consecutive seqs in one transaction; return the last seq."""
        return self.commit_group(records, {})

    def commit_group(
        self, records: Sequence[AnyRecord | Encoded], states: Mapping[str, Any]
    ) -> int:
        """Store ``records`` and the ``states`` values in ONE transaction (one fsync); return
        the last seq.  Listeners hear of the records only once they are committed."""
        now = self.clock.now()
        with self._conn(write=True) as conn:
            done = outbox.append(conn, records, now, self.budget_bytes, self.drop_fraction)
            for key, value in states.items():
                local.set_state(conn, key, value, now)
        freed = done.freed
        if freed.ranges:
            log.warning(
                "disk budget %d B exceeded by unacknowledged data: dropped %d records (%s)",
                self.budget_bytes,
                freed.dropped,
                ", ".join(f"{r.first}-{r.last}" for r in freed.ranges),
            )
        if records:
            for listener in list(self._listeners):
                listener(done.last)
        return done.last

    # -- sending and acknowledging --------------------------------------------------------------

    def pending(self, after_seq: int, limit: int) -> list[StoredRecord]:
        """Unacknowledged records with seq > ``after_seq``, in order (may skip acked seqs)."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT seq, type, body FROM outbox WHERE acked = 0 AND seq > ?"
                " ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [StoredRecord(seq, kind, bytes(body)) for seq, kind, body in rows]

    def records(self, first: int, last: int, limit: int = 100_000) -> list[StoredRecord]:
        """Stored records in ``first``…``last`` (acknowledged or not), for re-sends."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT seq, type, body, acked FROM outbox WHERE seq BETWEEN ? AND ?"
                " ORDER BY seq LIMIT ?",
                (first, last, limit),
            ).fetchall()
        return [
            StoredRecord(seq, kind, bytes(body), bool(acked)) for seq, kind, body, acked in rows
        ]

    def gaps_covering(self, first: int, last: int) -> list[StoredRecord]:
        """Stored gap announcements whose dropped range meets ``first``…``last``."""
        with self._conn() as conn:
            rows = conn.execute(
                "SELECT seq, type, body, acked FROM outbox WHERE type = 'gap'"
                " AND gap_first <= ? AND gap_last >= ? ORDER BY seq",
                (last, first),
            ).fetchall()
        return [
            StoredRecord(seq, kind, bytes(body), bool(acked)) for seq, kind, body, acked in rows
        ]

    def first_unacked(self) -> int | None:
        """The lowest unacknowledged seq, if any."""
        with self._conn() as conn:
            row = conn.execute("SELECT min(seq) FROM outbox WHERE acked = 0").fetchone()
        return None if row[0] is None else int(row[0])

    def acknowledge(self, ack: Ack) -> AckOutcome:
        """Mark every record the head-end's ``ack`` covers as acknowledged (one transaction)."""
        if ack.epoch != self.epoch:
            return AckOutcome(0, stale_epoch=True)
        with self._conn(write=True) as conn:
            last_seq, acked_upto = conn.execute("SELECT last_seq, acked_upto FROM head").fetchone()
            spans = [(0, ack.upto), *ack.ranges]
            beyond = any(b > last_seq for _, b in spans)
            count = size = 0
            for a, b in spans:
                if a > b:
                    continue
                b = min(b, last_seq)
                n, s = conn.execute(
                    "SELECT count(*), coalesce(sum(size), 0) FROM outbox"
                    " WHERE acked = 0 AND seq BETWEEN ? AND ?",
                    (a, b),
                ).fetchone()
                if n:
                    conn.execute(
                        "UPDATE outbox SET acked = 1 WHERE acked = 0 AND seq BETWEEN ? AND ?",
                        (a, b),
                    )
                    count, size = count + n, size + s
            upto = max(acked_upto, min(ack.upto, last_seq))
            if count or upto != acked_upto:
                conn.execute(
                    "UPDATE head SET acked_upto = ?, unacked_bytes = unacked_bytes - ?",
                    (upto, size),
                )
        return AckOutcome(count, beyond_last=beyond)

    @property
    def last_seq(self) -> int:
        with self._conn() as conn:
            return int(conn.execute("SELECT last_seq FROM head").fetchone()[0])

    def stats(self) -> StoreStats:
        """Counts, bytes and the oldest unacknowledged record."""
        with self._conn() as conn:
            head = conn.execute(
                "SELECT last_seq, acked_upto, bytes, unacked_bytes, dropped_records,"
                " pruned_records FROM head"
            ).fetchone()
            records, unacked = conn.execute(
                "SELECT count(*), coalesce(sum(acked = 0), 0) FROM outbox"
            ).fetchone()
            oldest = conn.execute(
                "SELECT seq, at FROM outbox WHERE acked = 0 ORDER BY seq LIMIT 1"
            ).fetchone()
            pages = conn.execute("PRAGMA page_count").fetchone()[0]
            page_size = conn.execute("PRAGMA page_size").fetchone()[0]
        wal = self.path.with_name(self.path.name + "-wal")
        file_bytes = pages * page_size + (wal.stat().st_size if wal.exists() else 0)
        return StoreStats(
            epoch=self.epoch,
            last_seq=head[0],
            acked_upto=head[1],
            first_unacked=oldest[0] if oldest else None,
            oldest_unacked_at=local.from_stamp(oldest[1]) if oldest else None,
            records=records,
            unacked=unacked,
            bytes=head[2],
            unacked_bytes=head[3],
            budget_bytes=self.budget_bytes,
            dropped_records=head[4],
            pruned_records=head[5],
            file_bytes=file_bytes,
        )

    def pragma(self, name: str) -> Any:
        """The value of a PRAGMA (tests and diagnostics)."""
        if not name.replace("_", "").isalpha():
            raise StoreError(f"not a pragma name: {name!r}")
        with self._conn() as conn:
            return conn.execute(f"PRAGMA {name}").fetchone()[0]

    # -- local bookkeeping for the polling side ------------------------------------------------

    def last_frozen(self, meter: str) -> datetime | None:
        """The newest freeze time of ``meter``'s daily frozen records stored (back-fill)."""
        with self._conn() as conn:
            return local.last_frozen(conn, meter)

    def has_frozen(self, meter: str, freeze_time: datetime) -> bool:
        """Whether ``meter``'s daily frozen record for ``freeze_time`` is stored."""
        with self._conn() as conn:
            return local.has_frozen(conn, meter, freeze_time)

    def set_state(self, key: str, value: Any) -> None:
        """Persist a small JSON-able value under ``key``."""
        with self._conn(write=True) as conn:
            local.set_state(conn, key, value, self.clock.now())

    def get_state(self, key: str, default: Any = None) -> Any:
        """The value stored under ``key``, or ``default``."""
        with self._conn() as conn:
            return local.get_state(conn, key, default)

    def log_command(
        self,
        command_id: str,
        state: str,
        *,
        at: datetime | None = None,
        meter: str | None = None,
        reason: str | None = None,
        detail: dict[str, Any] | None = None,
    ) -> None:
        """Append a lifecycle step of a head-end command to the command log."""
        with self._conn(write=True) as conn:
            local.log_command(
                conn, command_id, str(state), at or self.clock.now(), meter, reason, detail
            )

    def command_seen(self, command_id: str) -> bool:
        """Whether any step of ``command_id`` is in the log (duplicate delivery check)."""
        with self._conn() as conn:
            return local.command_seen(conn, command_id)

    def command_log(self, command_id: str) -> list[dict[str, Any]]:
        """Every logged step of ``command_id``, oldest first."""
        with self._conn() as conn:
            return local.command_log(conn, command_id)


__all__ = [
    "DEFAULT_BUDGET_BYTES",
    "AckOutcome",
    "Store",
    "StoreStats",
    "StoredRecord",
]
