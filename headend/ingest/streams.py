"""Per-(gateway, epoch) stream state, exact with one ingest process or several sharing the load.

A stream is what is held of one gateway epoch — every sequence number stored or announced lost —
kept in its ``streams`` row: the gap-free run ``[base, upto]``, ``highest``, and the runs held
beyond ``upto`` as text (``ranges``: ``"41-60,75-80"``; empty while the stream has no hole).
A gateway numbers its records gap-free and the ingest stores whole batches, so a stream is a
handful of runs however many records it holds: the row replaces the per-record ``ingested`` table
(160 bytes a record) that migration 0010 folded into it.  The contract ``Ack`` and the
``ResendRequest`` for holes are computed from it.

Several ingest processes may share the gateways' messages (``$share/<group>/…``: mosquitto hands
each message to one member, round robin per message), so one gateway's consecutive batches may be
stored by different processes, in either order.  The book therefore never trusts a cache for
what is held:

- ``get`` locks the stream for the transaction (its ``streams`` row ``FOR UPDATE``, or an
  advisory lock while it has no row, on PostgreSQL; SQLite's write lock already serialises
  writers) and reads it from the database, so duplicates, holes and the ``Ack`` are exact
  whoever stored the other batches.  The caller stores a group's messages in gateway order, so
  two processes take the locks in one global order.
- ``record`` writes the stream's new runs in the same transaction as the records they cover, so
  the row says exactly what is committed; a record whose seq is held is a duplicate and skipped.
- ``base`` is the lowest seq held; a late lower seq lowers it.
- The ``Ack`` claims only what is held: ``upto`` covers the prefix only when the stream starts
  at seq 1 or below (a gateway numbers every epoch from 1); otherwise the held runs go in
  ``ranges``, so a gateway never drops a record that is still in flight at another process (or
  that this head-end never stored, e.g. after a database restore).
- A hole is asked for at once by a lone consumer; a ``patient`` book (shared subscription) asks
  only once it stayed open ``resend_after`` seconds (usually it is a batch another process is
  committing).  ``all`` (for the periodic re-send requests) reloads streams with holes first, so
  a process never asks a gateway again for records another process has stored.

Nothing here depends on the order in which messages arrive.  After a rollback the caller calls
``invalidate()``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, bindparam, insert, select, text, update

from headend.db.engine import reading
from headend.db.tables import streams
from headend.ingest.ranges import SeqRanges
from protocols.uplink import Ack, ResendRequest

MAX_ACK_RANGES = 32

# Built once: these run for every message.
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_STREAM_ROW = select(streams.c.base, streams.c.upto, streams.c.highest, streams.c.ranges).where(
    streams.c.gateway == bindparam("g"), streams.c.epoch == bindparam("e")
)
_STREAM_ROW_LOCKED = _STREAM_ROW.with_for_update()  # SQLite compiles it away (one writer)
_STREAM_UPDATE = (
    update(streams)
    .where(streams.c.gateway == bindparam("g"), streams.c.epoch == bindparam("e"))
    .values(
        base=bindparam("base"),
        upto=bindparam("upto"),
        highest=bindparam("highest"),
        ranges=bindparam("ranges"),
        last_received=bindparam("last_received"),
    )
)


def format_runs(runs: list[tuple[int, int]]) -> str:
    """Runs as the ``ranges`` column keeps them: ``"41-60,75-75"``."""
    return ",".join(f"{first}-{last}" for first, last in runs)


def parse_runs(text: str) -> list[tuple[int, int]]:
    """The runs of a ``ranges`` column."""
    out = []
    for run in text.split(",") if text else ():
        first, _, last = run.partition("-")
        out.append((int(first), int(last)))
    return out


def stream_lock_key(gateway: str, epoch: str) -> int:
    """The advisory-lock key of one stream (signed 64-bit)."""
    digest = hashlib.sha256(f"taiqu-stream|{gateway}|{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


@dataclass
class Stream:
    """What is stored of one (gateway, epoch)."""

    gateway: str
    epoch: str
    base: int
    held: SeqRanges
    highest: int
    persisted: bool
    asked: dict[int, float] = field(default_factory=dict)  # hole start → monotonic time asked
    patient: bool = False  # ask for a hole only after it stayed open ``every`` seconds

    @property
    def upto(self) -> int:
        return self.held.prefix_end(self.base)

    def ack(self) -> Ack:
        """The contract acknowledgement of exactly what is stored."""
        if self.base > 1:  # seqs below base may be in flight elsewhere: claim only stored runs
            return Ack(epoch=self.epoch, upto=0, ranges=tuple(self.held.after(0)[:MAX_ACK_RANGES]))
        upto = max(self.upto, 0)
        beyond = self.held.after(upto + 1)[:MAX_ACK_RANGES]
        return Ack(epoch=self.epoch, upto=upto, ranges=tuple(beyond))

    def resends(self, now: float, every: float, limit: int) -> list[ResendRequest]:
        """Requests for holes not asked for within ``every`` seconds."""
        holes = self.held.holes(self.upto + 1, limit)
        if self.patient:
            for first, _last in holes:
                self.asked.setdefault(first, now)
        out = []
        for first, last in holes:
            if now - self.asked.get(first, float("-inf")) >= every:
                self.asked[first] = now
                out.append(ResendRequest(epoch=self.epoch, first=first, last=last))
        return out


class StreamBook:
    """The streams, read from their ``streams`` rows under a lock.

    ``engine`` is used only to refresh streams with holes before periodic re-send requests;
    ``patient`` delays the first request for a hole (several consumers share the gateways).
    """

    def __init__(self, engine: Engine | None = None, *, patient: bool = False) -> None:
        self.engine = engine
        self.patient = patient
        self._streams: dict[tuple[str, str], Stream] = {}

    def invalidate(self) -> None:
        """Forget the streams seen (after a rollback: their state may not have been committed)."""
        self._streams.clear()

    def get(self, conn: Connection, gateway: str, epoch: str, first_seq: int) -> Stream:
        """The stream as the database has it now (locked for this transaction).

        On PostgreSQL the lock is the ``streams`` row (``FOR UPDATE``: after waiting, the row
        read is the committed one); a stream without a row yet is created under an advisory lock
        on its key, then read again.  SQLite's write lock serialises writers on its own.
        """
        stream = self._load(conn, gateway, epoch, lock=True)
        if stream is None and conn.dialect.name == "postgresql":
            conn.execute(_ADVISORY_LOCK, {"k": stream_lock_key(gateway, epoch)})
            stream = self._load(conn, gateway, epoch, lock=True)
        if stream is None:
            stream = Stream(gateway, epoch, first_seq, SeqRanges(), first_seq - 1, persisted=False)
        self._keep(stream)
        return stream

    def _keep(self, stream: Stream) -> None:
        key = (stream.gateway, stream.epoch)
        if (cached := self._streams.get(key)) is not None:
            stream.asked = cached.asked
        stream.patient = self.patient
        self._streams[key] = stream

    def all(self) -> list[Stream]:
        """The streams seen; those with holes reloaded first (another process may fill them)."""
        holed = [s for s in self._streams.values() if s.held.holes(s.upto + 1, 1)]
        if holed and self.engine is not None:
            with reading(self.engine) as conn:
                for old in holed:
                    if (fresh := self._load(conn, old.gateway, old.epoch)) is not None:
                        self._keep(fresh)
        return list(self._streams.values())

    def _load(
        self, conn: Connection, gateway: str, epoch: str, *, lock: bool = False
    ) -> Stream | None:
        key = {"g": gateway, "e": epoch}
        row = conn.execute(_STREAM_ROW_LOCKED if lock else _STREAM_ROW, key).first()
        if row is None:
            return None
        held = SeqRanges([(row.base, row.upto)] if row.upto >= row.base else [])
        for first, last in parse_runs(row.ranges):
            held.add(first, last)
        return Stream(gateway, epoch, row.base, held, row.highest, persisted=True)

    def record(
        self, conn: Connection, stream: Stream, ranges: list[tuple[int, int]], now: datetime
    ) -> None:
        """Mark ``ranges`` stored or announced lost (a late lower seq lowers the base)."""
        for first, last in ranges:
            stream.held.add(first, last)
            stream.highest = max(stream.highest, last)
            stream.base = min(stream.base, first)
        upto = stream.upto
        values = {
            "base": stream.base,
            "upto": upto,
            "highest": stream.highest,
            "ranges": format_runs(stream.held.after(upto)),
            "last_received": now,
        }
        if stream.persisted:
            conn.execute(_STREAM_UPDATE, {"g": stream.gateway, "e": stream.epoch, **values})
        else:
            conn.execute(
                insert(streams).values(
                    gateway=stream.gateway, epoch=stream.epoch, first_received=now, **values
                )
            )
            stream.persisted = True


def held_runs(conn: Connection, gateway: str, epoch: str) -> list[tuple[int, int]]:
    """The runs of seqs a stream holds (stored or announced lost), as committed."""
    stream = StreamBook()._load(conn, gateway, epoch)
    return list(stream.held) if stream is not None else []
