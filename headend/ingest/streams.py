"""Per-(gateway, epoch) stream state: which sequence numbers are stored, and the holes.

A stream's ``base`` is the first seq the head-end saw of that epoch: the gateway only sends what
no head-end has acknowledged, so everything before it was acknowledged earlier.  ``upto`` is the
end of the gap-free run from ``base``; it and the ranges stored beyond it give the contract
``Ack``.  Holes beyond ``upto`` are asked for again with a ``ResendRequest`` (at most once per
``resend_after`` seconds per hole) until they arrive or the gateway announces them as a gap.

State is cached in memory and written to ``streams`` in the same transaction as the records; a
rolled-back transaction must call ``invalidate()`` so the cache is reloaded from the database.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Connection, and_, insert, select, update

from headend.db.tables import gaps, ingested, streams
from headend.ingest.ranges import SeqRanges
from protocols.uplink import Ack, ResendRequest

MAX_ACK_RANGES = 32


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

    @property
    def upto(self) -> int:
        return self.held.prefix_end(self.base)

    def ack(self) -> Ack:
        """The contract acknowledgement of everything stored."""
        upto = max(self.upto, 0)
        beyond = self.held.after(upto + 1)[:MAX_ACK_RANGES]
        return Ack(epoch=self.epoch, upto=upto, ranges=tuple(beyond))

    def resends(self, now: float, every: float, limit: int) -> list[ResendRequest]:
        """Requests for holes not asked for within ``every`` seconds."""
        out = []
        for first, last in self.held.holes(self.upto + 1, limit):
            if now - self.asked.get(first, float("-inf")) >= every:
                self.asked[first] = now
                out.append(ResendRequest(epoch=self.epoch, first=first, last=last))
        return out


class StreamBook:
    """The cache of streams, backed by the ``streams``, ``ingested`` and ``gaps`` tables."""

    def __init__(self) -> None:
        self._streams: dict[tuple[str, str], Stream] = {}

    def invalidate(self) -> None:
        """Forget the cache (after a rollback)."""
        self._streams.clear()

    def all(self) -> list[Stream]:
        return list(self._streams.values())

    def get(self, conn: Connection, gateway: str, epoch: str, first_seq: int) -> Stream:
        """The stream, loaded from the database or started at ``first_seq``."""
        key = (gateway, epoch)
        stream = self._streams.get(key)
        if stream is None:
            stream = self._load(conn, gateway, epoch) or Stream(
                gateway, epoch, first_seq, SeqRanges(), first_seq - 1, persisted=False
            )
            self._streams[key] = stream
        return stream

    def _load(self, conn: Connection, gateway: str, epoch: str) -> Stream | None:
        row = conn.execute(
            select(streams.c.base, streams.c.upto, streams.c.highest).where(
                streams.c.gateway == gateway, streams.c.epoch == epoch
            )
        ).first()
        if row is None:
            return None
        held = SeqRanges([(row.base, row.upto)] if row.upto >= row.base else [])
        seqs = conn.execute(
            select(ingested.c.seq)
            .where(ingested.c.gateway == gateway, ingested.c.epoch == epoch)
            .where(ingested.c.seq > row.upto)
            .order_by(ingested.c.seq)
        ).scalars()
        for seq in seqs:
            held.add(seq, seq)
        for first, last in conn.execute(
            select(gaps.c.first, gaps.c.last).where(
                gaps.c.gateway == gateway, gaps.c.epoch == epoch, gaps.c.last > row.upto
            )
        ):
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
        """Mark ``ranges`` stored (or announced lost) and persist the stream's summary."""
        for first, last in ranges:
            stream.held.add(first, last)
            stream.highest = max(stream.highest, last)
        values = {"upto": stream.upto, "highest": stream.highest, "last_received": now}
        if stream.persisted:
            conn.execute(
                update(streams)
                .where(streams.c.gateway == stream.gateway, streams.c.epoch == stream.epoch)
                .values(**values)
            )
        else:
            conn.execute(
                insert(streams).values(
                    gateway=stream.gateway,
                    epoch=stream.epoch,
                    base=stream.base,
                    first_received=now,
                    **values,
                )
            )
            stream.persisted = True
