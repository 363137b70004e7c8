"""Keeping the store within its disk budget.

Order of sacrifice: first head-end-acknowledged rows, oldest first (they are safe at the
head-end); only when unacknowledged rows alone exceed the budget, the oldest unacknowledged rows
are dropped, and each contiguous dropped range is announced in the stream by a ``GapRecord``
(with the readings and events it held) plus one ``gap_announced`` event, so the loss is never
silent.  Gap records are never dropped.  Each pass frees a chunk below the budget
(``drop_fraction`` of it, default 10 %, at least 32 KiB), so a long outage makes few, large
announcements: passes ≈ overflow ÷ chunk, not one per append (with 1 % a simulated week over a
3 MiB budget made ~370 gap records).
"""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass

PRUNE_TO = 0.95  # prune acknowledged rows down to this share of the budget (hysteresis)
DROP_FRACTION = 0.10  # default: a drop pass frees this share of the budget below it …
DROP_MIN_BYTES = 32 * 1024  # … and at least this much
MAX_DROP_FRACTION = 0.5
_CHUNK = 2000


@dataclass
class Dropped:
    """One contiguous range of dropped seqs and what it held."""

    first: int
    last: int
    readings: int = 0
    events: int = 0


@dataclass
class Freed:
    """What a budget pass removed: pruned acknowledged rows, dropped unacknowledged ranges."""

    pruned: int = 0
    pruned_bytes: int = 0
    dropped: int = 0
    dropped_bytes: int = 0
    ranges: tuple[Dropped, ...] = ()


def prune_acked(conn: sqlite3.Connection, excess: int) -> tuple[int, int]:
    """Delete acknowledged rows, oldest first, until ``excess`` bytes are freed: (rows, bytes)."""
    rows = freed = 0
    while freed < excess:
        chunk = conn.execute(
            "SELECT seq, size FROM outbox WHERE acked = 1 ORDER BY seq LIMIT ?", (_CHUNK,)
        ).fetchall()
        if not chunk:
            break
        cut = chunk[-1][0]
        for seq, size in chunk:
            freed += size
            rows += 1
            if freed >= excess:
                cut = seq
                break
        conn.execute("DELETE FROM outbox WHERE acked = 1 AND seq <= ?", (cut,))
    return rows, freed


def drop_unacked(conn: sqlite3.Connection, excess: int, before: int) -> Freed:
    """Drop the oldest unacknowledged rows below seq ``before`` until ``excess`` bytes are freed.

    Gap announcements themselves are never dropped (they are tiny and say what was lost), so a
    dropped run may be split around them into several ranges.
    """
    ranges: list[Dropped] = []
    rows = freed = 0
    after = 0
    while freed < excess:
        chunk = conn.execute(
            "SELECT seq, type, kind, readings, size FROM outbox"
            " WHERE acked = 0 AND seq > ? AND seq < ? AND type != 'gap' ORDER BY seq LIMIT ?",
            (after, before, _CHUNK),
        ).fetchall()
        if not chunk:
            break
        cut = chunk[-1][0]
        for seq, kind, detail, readings, size in chunk:
            _account(ranges, seq, kind, detail, readings)
            freed += size
            rows += 1
            if freed >= excess:
                cut = seq
                break
        conn.execute(
            "DELETE FROM outbox WHERE acked = 0 AND seq > ? AND seq <= ? AND type != 'gap'",
            (after, cut),
        )
        after = cut
    return Freed(dropped=rows, dropped_bytes=freed, ranges=tuple(merge(ranges)))


def drop_excess(budget: int, fraction: float = DROP_FRACTION) -> int:
    """How far below the budget a drop pass goes (hysteresis: few passes, few announcements)."""
    return max(int(budget * fraction), DROP_MIN_BYTES)


def _account(ranges: list[Dropped], seq: int, kind: str, detail: str, readings: int) -> None:
    if ranges and ranges[-1].last == seq - 1:
        current = ranges[-1]
        current.last = seq
    else:
        current = Dropped(seq, seq)
        ranges.append(current)
    if kind == "rd":
        current.readings += readings
    elif detail != "gap_announced":  # a dropped announcement event is not a meter event
        current.events += 1


def merge(ranges: list[Dropped]) -> list[Dropped]:
    """Sort and merge overlapping or adjacent ranges, summing what they held."""
    out: list[Dropped] = []
    for r in sorted(ranges, key=lambda r: (r.first, r.last)):
        if out and r.first <= out[-1].last + 1:
            last = out[-1]
            last.last = max(last.last, r.last)
            last.readings += r.readings
            last.events += r.events
        else:
            out.append(Dropped(r.first, r.last, r.readings, r.events))
    return out
