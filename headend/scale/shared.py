"""Stream state that stays exact when several ingest processes share the gateways' messages.

A shared subscription (``$share/<group>/taiqu/v1/+/up/#``) hands each message to one of the
group's consumers; mosquitto picks round robin per message, so consecutive batches of one gateway
may be stored by different processes, in either order.  The single-process ``StreamBook`` caches
what it stored itself and takes the first seq it sees as the stream's base ("everything before
was acknowledged earlier"), which only holds when one consumer receives a gateway's messages in
order.  Here:

- ``get`` takes a transaction-level lock on the (gateway, epoch) stream (a PostgreSQL advisory
  lock; SQLite's write lock already serialises writers), then reloads the stream from the
  database: which seqs are stored, the holes and the ``Ack`` are exact whoever stored them.
- A seq below the base lowers the base (it was in flight at another consumer), and ``record``
  writes the exact summary, which the lock makes safe.
- The ``Ack`` claims only what is stored: ``upto`` covers the prefix only when the stream starts
  at seq 1 (a gateway numbers every epoch from 1); otherwise the stored runs go in ``ranges``,
  so a gateway never drops a record another consumer has not committed yet.
- A hole is asked for only once it has stayed open ``resend_after`` seconds (it is usually a
  batch in flight at another consumer); ``all`` (for the periodic re-send requests) reloads
  streams that look like they have holes, so a process never asks a gateway again for records
  another process has stored.

Idempotency stays with ``ingested (gateway, epoch, seq)``; nothing here depends on the order in
which messages arrive.  Locks are taken in the order a group's messages are stored; two processes
taking two gateways' locks in opposite orders is a deadlock PostgreSQL breaks by aborting one
transaction, which the ingest retries (sorting a group by gateway before storing avoids it).
"""

from __future__ import annotations

import hashlib
from datetime import datetime

from sqlalchemy import Connection, Engine, insert, text, update

from headend.db.engine import reading
from headend.db.tables import streams
from headend.ingest.ranges import SeqRanges
from headend.ingest.streams import MAX_ACK_RANGES, Stream, StreamBook
from protocols.uplink import Ack, ResendRequest

__all__ = ["SharedStream", "SharedStreamBook", "stream_lock_key"]


def stream_lock_key(gateway: str, epoch: str) -> int:
    """The advisory-lock key of one stream (signed 64-bit)."""
    digest = hashlib.sha256(f"taiqu-stream|{gateway}|{epoch}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


class SharedStream(Stream):
    """A stream whose acknowledgement never claims a seq that is not stored."""

    def ack(self) -> Ack:
        if self.base <= 1:
            return super().ack()
        runs = self.held.after(0)[:MAX_ACK_RANGES]
        return Ack(epoch=self.epoch, upto=0, ranges=tuple(runs))

    def resends(self, now: float, every: float, limit: int) -> list[ResendRequest]:
        """Requests for holes still open ``every`` seconds after they were first seen.

        With several consumers a hole is usually a batch another process is storing right now;
        asking at first sight (as one in-order consumer may) would make the gateway send it twice.
        """
        for first, _last in self.held.holes(self.upto + 1, limit):
            self.asked.setdefault(first, now)
        return super().resends(now, every, limit)


def _shared(stream: Stream) -> SharedStream:
    return SharedStream(
        stream.gateway, stream.epoch, stream.base, stream.held, stream.highest, stream.persisted
    )


class SharedStreamBook(StreamBook):
    """A ``StreamBook`` for one of several ingest processes on the same database."""

    def __init__(self, engine: Engine | None = None) -> None:
        super().__init__()
        self.engine = engine  # for refreshing before periodic re-send requests

    def get(self, conn: Connection, gateway: str, epoch: str, first_seq: int) -> Stream:
        """The stream as the database has it now (locked for this transaction)."""
        if conn.dialect.name == "postgresql":
            conn.execute(
                text("SELECT pg_advisory_xact_lock(:k)"), {"k": stream_lock_key(gateway, epoch)}
            )
        key = (gateway, epoch)
        loaded = self._load(conn, gateway, epoch)
        stream = (
            _shared(loaded)
            if loaded is not None
            else SharedStream(gateway, epoch, first_seq, SeqRanges(), first_seq - 1, False)
        )
        if (cached := self._streams.get(key)) is not None:
            stream.asked = cached.asked
        self._streams[key] = stream
        return stream

    def record(
        self, conn: Connection, stream: Stream, ranges: list[tuple[int, int]], now: datetime
    ) -> None:
        """Mark ``ranges`` stored (lowering the base for late lower seqs); write the summary."""
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

    def all(self) -> list[Stream]:
        """The streams; those with holes reloaded first (another process may have filled them)."""
        holed = [s for s in self._streams.values() if s.held.holes(s.upto + 1, 1)]
        if holed and self.engine is not None:
            with reading(self.engine) as conn:
                for old in holed:
                    if (fresh := self._load(conn, old.gateway, old.epoch)) is not None:
                        stream = _shared(fresh)
                        stream.asked = old.asked
                        self._streams[(old.gateway, old.epoch)] = stream
        return list(self._streams.values())
