"""Which meters the archive knows; readings of others are listed in ``unregistered``."""

from __future__ import annotations

import time
from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import Connection, bindparam, insert, select, update

from headend.db.tables import meters, unregistered

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
        """Record reading records of unregistered meters (``counts``: meter → records)."""
        names = sorted(counts)
        rows = conn.execute(
            select(unregistered.c.meter, unregistered.c.records).where(
                unregistered.c.gateway == gateway, unregistered.c.meter.in_(names)
            )
        ).all()
        have = {str(m): int(n) for m, n in rows}
        new = [
            {
                "gateway": gateway,
                "meter": m,
                "first_seen": now,
                "last_seen": now,
                "records": counts[m],
            }
            for m in names
            if m not in have
        ]
        if new:
            conn.execute(insert(unregistered), new)
        old = [
            {"g": gateway, "m": m, "last_seen": now, "records": have[m] + counts[m]}
            for m in names
            if m in have
        ]
        if old:
            conn.execute(
                update(unregistered).where(
                    unregistered.c.gateway == bindparam("g"), unregistered.c.meter == bindparam("m")
                ),
                old,
            )
