"""Which meters the archive knows; readings of others are listed in ``unregistered``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, text

from headend.db.bulk import driver_errors, sqlite_time
from headend.db.tables import meters

REFRESH_SECONDS = 5.0


class MeterRegistry:
    """A cached set of the archive's current meter ids (refreshed every few seconds)."""

    def __init__(self, refresh: float = REFRESH_SECONDS) -> None:
        self._known: set[str] = set()
        self._absent: set[str] = set()  # checked since the last reload and not found
        self._loaded = float("-inf")
        self._refresh = refresh

    def invalidate(self) -> None:
        self._loaded = float("-inf")

    def _reload(self, conn: Connection) -> None:
        self._known = set(
            conn.execute(select(meters.c.id).where(meters.c.valid_to.is_(None))).scalars()
        )
        self._absent = set()
        self._loaded = time.monotonic()

    def unknown(self, conn: Connection, ids: Iterable[str]) -> set[str]:
        """The ids among ``ids`` that are not current meters of the archive."""
        if time.monotonic() - self._loaded > self._refresh:
            self._reload(conn)
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
