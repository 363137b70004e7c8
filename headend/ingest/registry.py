"""Which meters the archive knows, and which gateway each belongs to.

A gateway may write only its own meters (those of its areas in the archive in force now): a
reading or event it sends for a meter of another gateway is not stored but listed in
``unregistered`` with the gateway that reported it (``owned``).  Readings of a meter the archive
does not know at all are stored (a meter wired before its archive entry loses nothing) and listed
there too.

The registry caches the archive's current meter ids.  Reading them all costs about 1 s of the
ingest's CPU per million meters, so the whole set is reloaded only every ``reload`` seconds
(5 minutes: a meter taken out of the archive is noticed within that); an id the cache lacks is
looked up in the message's own query, and one found absent is asked again after ``recheck``
seconds (5: a meter just added is recognised within that).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text

from headend.db.bulk import driver_errors, sqlite_time
from headend.db.tables import areas, meters

RELOAD_SECONDS = 300.0
RECHECK_SECONDS = 5.0


class MeterRegistry:
    """A cached set of the archive's current meter ids (see the module docstring)."""

    def __init__(self, reload: float = RELOAD_SECONDS, recheck: float = RECHECK_SECONDS) -> None:
        self._owned: dict[str, tuple[float, frozenset[str]]] = {}  # gateway → (loaded, meters)
        self._known: set[str] = set()
        self._absent: set[str] = set()  # looked up since ``_checked`` and not found
        self._loaded = self._checked = float("-inf")
        self._reload_every = reload
        self._recheck_every = recheck

    def invalidate(self) -> None:
        self._loaded = float("-inf")
        self._owned.clear()

    def owned(self, conn: Connection, gateway: str) -> frozenset[str]:
        """The current meters of ``gateway``'s areas (cached for ``recheck`` seconds)."""
        cached = self._owned.get(gateway)
        if cached is not None and time.monotonic() - cached[0] <= self._recheck_every:
            return cached[1]
        query = (
            select(meters.c.id)
            .join(areas, (areas.c.id == meters.c.area) & areas.c.valid_to.is_(None))
            .where(meters.c.valid_to.is_(None), areas.c.gateway == gateway)
        )
        ids = frozenset(conn.execute(query).scalars())
        self._owned[gateway] = (time.monotonic(), ids)
        return ids

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
