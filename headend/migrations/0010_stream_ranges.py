"""Streams keep what they hold as runs: ``streams.ranges``; the per-record ``ingested`` table goes.

``ingested`` held one row per contract record (160 bytes on PostgreSQL) to de-duplicate
re-deliveries.  A gateway numbers its records gap-free and a stream is locked while a batch is
stored, so the ``streams`` row can say exactly what is held: ``[base, upto]`` plus the runs beyond
``upto`` (stored records, from ``ingested``, and announced gaps, from ``gaps``), folded here into
the new ``ranges`` column.  Then ``ingested`` is dropped.  A database created after the column
was declared already has it and never had ``ingested``.
"""

from __future__ import annotations

from sqlalchemy import Connection, inspect, text

from headend.ingest.ranges import SeqRanges
from headend.ingest.streams import format_runs


def upgrade(conn: Connection) -> None:
    """Add ``streams.ranges``, fold ``ingested`` and open gaps into it, drop ``ingested``."""
    inspector = inspect(conn)
    present = {c["name"] for c in inspector.get_columns("streams")}
    if "ranges" not in present:
        conn.exec_driver_sql("ALTER TABLE streams ADD COLUMN ranges TEXT NOT NULL DEFAULT ''")
    if not inspector.has_table("ingested"):
        return
    rows = conn.execute(text("SELECT gateway, epoch, base, upto FROM streams WHERE highest > upto"))
    for gateway, epoch, base, upto in rows.all():
        key = {"g": gateway, "e": epoch, "u": upto}
        beyond = SeqRanges()
        seqs = conn.execute(
            text("SELECT seq FROM ingested WHERE gateway = :g AND epoch = :e AND seq > :u"), key
        ).scalars()
        for seq in seqs:
            beyond.add(seq, seq)
        lost = conn.execute(
            text(
                'SELECT "first", "last" FROM gaps WHERE gateway = :g AND epoch = :e AND "last" > :u'
            ),
            key,
        )
        for first, last in lost:
            beyond.add(max(first, upto + 1), last)
        # the prefix may now run further (a gap or a stored seq right after upto)
        held = SeqRanges([(base, upto)] if upto >= base else [])
        for first, last in beyond:
            held.add(first, last)
        new_upto = held.prefix_end(base)
        conn.execute(
            text("UPDATE streams SET upto = :n, ranges = :r WHERE gateway = :g AND epoch = :e"),
            {**key, "n": new_upto, "r": format_runs(held.after(new_upto))},
        )
    conn.exec_driver_sql("DROP TABLE ingested")
