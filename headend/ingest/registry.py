"""Which meters the archive knows, and which gateway each belongs to when.

A gateway may write only its own meters: a reading or event is stored for a meter that was in the
gateway's archive *at the reading's time* (the archive is effective-dated: the meter's version in
force then names an area whose version in force then names the gateway; ``Ownership``).  So a
meter moved from gateway A to B at T keeps A's readings taken before T, and A's readings after T
— or B's before T — are not stored but listed in ``unregistered`` with the gateway that reported
them.  The time is the gateway's reading time (``gt``: when it read the meter, which it can only
do while the meter is on its bus), for an event when the gateway detected it (else its start,
else its reception).  Before a meter's first archive version it is the gateway's of that first
version (it was wired, read and its history backfilled before its archive entry: nobody else
had it then).  Readings of a meter the archive has never known are stored (a meter wired
before its archive entry loses nothing) and listed there too; a meter the archive knows only in
past versions (retired, or ended before the reading) is not: it was some gateway's or nobody's.

The registry caches the archive's current meter ids.  Reading them all costs about 1 s of the
ingest's CPU per million meters, so the whole set is reloaded only every ``reload`` seconds
(5 minutes: a meter taken out of the archive is noticed within that); an id the cache lacks is
looked up in the message's own query, and one found absent is asked again after ``recheck``
seconds (5: a meter just added is recognised within that).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, func, select, text

from headend.db.bulk import driver_errors, sqlite_time
from headend.db.tables import areas, meters

RELOAD_SECONDS = 300.0
BEFORE_ARCHIVE = datetime.min.replace(tzinfo=UTC)  # a first version's span reaches back to here
RECHECK_SECONDS = 5.0


Span = tuple[datetime, datetime | None]  # [from, to); None: open-ended


@dataclass(frozen=True)
class Ownership:
    """When each meter belonged to one gateway (its archive's effective-dated history).

    ``current``: meters it owns now (an open span) and ``floor``, the latest start of those open
    spans, so a sweep of current meters taken at or after ``floor`` is owned without a lookup per
    row (``covers``).
    """

    spans: dict[str, tuple[Span, ...]]
    current: frozenset[str]
    floor: datetime | None

    def owns(self, meter: str, at: datetime) -> bool:
        """Whether ``meter`` was this gateway's at ``at``."""
        for start, end in self.spans.get(meter, ()):
            if start <= at and (end is None or at < end):
                return True
        return False

    def covers(self, meters: Sequence[str], times: Sequence[datetime]) -> bool:
        """Whether every (meter, time) pair is owned, proven without a lookup per row."""
        if not times or not self.current.issuperset(meters):
            return False
        return self.floor is None or min(times) >= self.floor


def _merge(spans: list[Span]) -> tuple[Span, ...]:
    """Spans sorted and joined where one ends as the next starts (a meter's other changes)."""
    out: list[Span] = []
    for start, end in sorted(spans, key=lambda s: s[0]):
        last_end = out[-1][1] if out else start
        if out and (last_end is None or last_end >= start):
            joined = None if last_end is None or end is None else max(end, last_end)
            out[-1] = (out[-1][0], joined)
        else:
            out.append((start, end))
    return tuple(out)


def _ownership(conn: Connection, gateway: str) -> Ownership:
    m, a = meters.c, areas.c
    first = (
        select(m.id.label("id"), func.min(m.valid_from).label("first")).group_by(m.id).subquery()
    )
    query = (
        select(m.id, m.valid_from, m.valid_to, a.valid_from, a.valid_to, first.c.first)
        .join(areas, a.id == m.area)
        .join(first, first.c.id == m.id)
        .where(a.gateway == gateway)
    )
    raw: dict[str, list[Span]] = {}
    firsts: dict[str, datetime] = {}
    for meter, m_from, m_to, a_from, a_to, m_first in conn.execute(query):
        start = max(m_from, a_from)
        ends = [t for t in (m_to, a_to) if t is not None]
        end = min(ends) if ends else None
        if end is None or start < end:
            raw.setdefault(meter, []).append((start, end))
            firsts[meter] = m_first
    spans = {meter: _merge(s) for meter, s in raw.items()}
    for meter, own in spans.items():  # its first gateway also owns it before its first version
        if own[0][0] <= firsts[meter]:
            spans[meter] = ((BEFORE_ARCHIVE, own[0][1]), *own[1:])
    opened = {m: s[-1][0] for m, s in spans.items() if s[-1][1] is None}
    return Ownership(spans, frozenset(opened), max(opened.values(), default=None))


class MeterRegistry:
    """A cached set of the archive's current meter ids (see the module docstring)."""

    def __init__(self, reload: float = RELOAD_SECONDS, recheck: float = RECHECK_SECONDS) -> None:
        self._owned: dict[str, tuple[float, Ownership]] = {}  # gateway → (loaded, ownership)
        self._known: set[str] = set()
        self._absent: set[str] = set()  # looked up since ``_checked`` and not found
        self._loaded = self._checked = float("-inf")
        self._reload_every = reload
        self._recheck_every = recheck

    def invalidate(self) -> None:
        self._loaded = float("-inf")
        self._owned.clear()

    def ownership(self, conn: Connection, gateway: str) -> Ownership:
        """When each meter was ``gateway``'s (cached for ``recheck`` seconds)."""
        cached = self._owned.get(gateway)
        if cached is not None and time.monotonic() - cached[0] <= self._recheck_every:
            return cached[1]
        owned = _ownership(conn, gateway)
        self._owned[gateway] = (time.monotonic(), owned)
        return owned

    def owned(self, conn: Connection, gateway: str) -> frozenset[str]:
        """The meters ``gateway`` owns now."""
        return self.ownership(conn, gateway).current

    def _reload(self, conn: Connection) -> None:
        self._known = set(
            conn.execute(select(meters.c.id).where(meters.c.valid_to.is_(None))).scalars()
        )
        self._absent = set()
        self._loaded = self._checked = time.monotonic()

    def unknown(self, conn: Connection, ids: Iterable[str]) -> set[str]:
        """The ids among ``ids`` that are not current meters of the archive."""
        now = time.monotonic()
        if now - self._loaded > self._reload_every:
            self._reload(conn)
        elif now - self._checked > self._recheck_every:
            self._absent = set()
            self._checked = now
        missing = set(ids) - self._known
        check = missing - self._absent
        if check:  # maybe added since the last refresh
            found = set(
                conn.execute(
                    select(meters.c.id).where(
                        meters.c.id.in_(sorted(check)), meters.c.valid_to.is_(None)
                    )
                ).scalars()
            )
            self._known |= found
            self._absent |= check - found
            missing -= found
        return missing

    @staticmethod
    def ever_archived(conn: Connection, meter: str) -> bool:
        """Whether the archive holds any version of ``meter`` (current, past or retired)."""
        query = select(meters.c.id).where(meters.c.id == meter).limit(1)
        return conn.execute(query).first() is not None

    def note(self, conn: Connection, gateway: str, counts: dict[str, int], now: datetime) -> None:
        """Record reading records of unregistered meters (``counts``: meter → records).

        One upsert per message: a first sighting inserts the meter, a later one adds its records
        and moves ``last_seen``; two ingest processes cannot race on it.
        """
        meters = sorted(counts)
        if conn.dialect.name == "postgresql":
            conn.execute(
                _PG_NOTE,
                {"g": gateway, "now": now, "m": meters, "n": [counts[m] for m in meters]},
            )
            return
        stamp = sqlite_time(now)
        raw: Any = conn.connection.driver_connection
        with driver_errors("INSERT INTO unregistered"):
            raw.executemany(_SQLITE_NOTE, [(gateway, m, stamp, stamp, counts[m]) for m in meters])


_CONFLICT = (
    "ON CONFLICT (gateway, meter) DO UPDATE SET last_seen = excluded.last_seen, "
    "records = unregistered.records + excluded.records"
)
_PG_NOTE = text(
    "INSERT INTO unregistered (gateway, meter, first_seen, last_seen, records) "
    "SELECT :g, u.m, :now, :now, u.n FROM unnest(CAST(:m AS varchar[]), CAST(:n AS bigint[])) "
    f"AS u(m, n) {_CONFLICT}"
)
_SQLITE_NOTE = (
    "INSERT INTO unregistered (gateway, meter, first_seen, last_seen, records) "
    f"VALUES (?, ?, ?, ?, ?) {_CONFLICT}"
)
