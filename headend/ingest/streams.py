"""Per-(gateway, epoch) stream state, exact with one ingest process or several sharing the load.

A stream is what is stored of one gateway epoch: which sequence numbers (``ingested``), which
were announced lost (``gaps``), and a summary row in ``streams`` (``base``, ``upto``,
``highest``).  The contract ``Ack`` and the ``ResendRequest`` for holes are computed from it.

Several ingest processes may share the gateways' messages (``$share/<group>/…``: mosquitto hands
each message to one member, round robin per message), so one gateway's consecutive batches may be
stored by different processes, in either order.  The book therefore never trusts a cache for
what is stored:

- ``get`` locks the stream for the transaction (its ``streams`` row ``FOR UPDATE``, or an
  advisory lock while it has no row, on PostgreSQL; SQLite's write lock already serialises
  writers) and reads it from the database, so duplicates, holes and the ``Ack`` are exact
  whoever stored the other batches.  The caller stores a group's messages in gateway order, so
  two processes take the locks in one global order.
- ``base`` is the lowest seq stored; a late lower seq lowers it, and ``record`` writes the exact
  summary, which the lock makes safe.
- The ``Ack`` claims only what is stored: ``upto`` covers the prefix only when the stream starts
  at seq 1 or below (a gateway numbers every epoch from 1); otherwise the stored runs go in
  ``ranges``, so a gateway never drops a record that is still in flight at another process (or
  that this head-end never stored, e.g. after a database restore).
- A hole is asked for at once by a lone consumer; a ``patient`` book (shared subscription) asks
  only once it stayed open ``resend_after`` seconds (usually it is a batch another process is
  committing).  ``all`` (for the periodic re-send requests) reloads streams with holes first, so
  a process never asks a gateway again for records another process has stored.

Idempotency stays with ``ingested (gateway, epoch, seq)``; nothing here depends on the order in
which messages arrive.  After a rollback the caller calls ``invalidate()``.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, Engine, and_, bindparam, insert, select, text, update

from headend.db.engine import reading
from headend.db.tables import gaps, ingested, streams
from headend.ingest.ranges import SeqRanges
from protocols.uplink import Ack, ResendRequest

MAX_ACK_RANGES = 32

# Built once: these run for every message.
_ADVISORY_LOCK = text("SELECT pg_advisory_xact_lock(:k)")
_STREAM_ROW = select(streams.c.base, streams.c.upto, streams.c.highest).where(
    streams.c.gateway == bindparam("g"), streams.c.epoch == bindparam("e")
)
_STREAM_ROW_LOCKED = _STREAM_ROW.with_for_update()  # SQLite compiles it away (one writer)
_STORED_BEYOND = (
    select(ingested.c.seq)
    .where(ingested.c.gateway == bindparam("g"), ingested.c.epoch == bindparam("e"))
    .where(ingested.c.seq > bindparam("upto"))
    .order_by(ingested.c.seq)
)
_GAPS_BEYOND = select(gaps.c.first, gaps.c.last).where(
    gaps.c.gateway == bindparam("g"),
    gaps.c.epoch == bindparam("e"),
    gaps.c.last > bindparam("upto"),
)


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
    """The streams, read from the ``streams``, ``ingested`` and ``gaps`` tables under a lock.

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
        if row.highest > row.upto:  # only then can rows beyond the gap-free run exist
            for seq in conn.execute(_STORED_BEYOND, {**key, "upto": row.upto}).scalars():
                held.add(seq, seq)
            for first, last in conn.execute(_GAPS_BEYOND, {**key, "upto": row.upto}):
                held.add(first, last)
        return Stream(gateway, epoch, row.base, held, row.highest, persisted=True)

    def stored_among(self, conn: Connection, stream: Stream, first: int, last: int) -> set[int]:
        """Which of ``first``…``last`` are already stored (a query only when it may matter)."""
        if first > stream.highest:
            return set()
        if first >= stream.base and stream.held.covers(first, last):
            return set(range(first, last + 1))
        rows = conn.execute(
            select(ingested.c.seq).where(
                and_(
                    ingested.c.gateway == stream.gateway,
                    ingested.c.epoch == stream.epoch,
                    ingested.c.seq.between(first, last),
                )
            )
        ).scalars()
        return set(rows)

    def record(
        self, conn: Connection, stream: Stream, ranges: list[tuple[int, int]], now: datetime
    ) -> None:
        """Mark ``ranges`` stored or announced lost (a late lower seq lowers the base)."""
        for first, last in ranges:
            stream.held.add(first, last)
            stream.highest = max(stream.highest, last)
            stream.base = min(stream.base, first)
        values = {
            "base": stream.base,
            "upto": stream.upto,
            "highest": stream.highest,
            "last_received": now,
        }
        if stream.persisted:
            conn.execute(
                update(streams)
                .where(streams.c.gateway == stream.gateway, streams.c.epoch == stream.epoch)
                .values(**values)
            )
        else:
            conn.execute(
                insert(streams).values(
                    gateway=stream.gateway, epoch=stream.epoch, first_received=now, **values
                )
            )
            stream.persisted = True
