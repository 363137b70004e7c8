"""What the console shows from ``headend.analytics`` (line loss, suspects, collection rates).

Every function returns None when the analytics package is not installed, so a page can show an
honest "not available yet" block instead of failing.  Scope checks are the caller's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection

NOT_COLLECTED_SHOWN = 500  # rows of the drill-down table; the rest are counted


def _store() -> Any:
    try:
        from headend.analytics import store
    except ImportError:
        return None
    return store


def loss_series(
    conn: Connection, area: str, first: date, last: date
) -> list[dict[str, Any]] | None:
    """Daily line-loss rows of ``area`` (start, supply, sales, loss, rate, coverage, flags)."""
    store = _store()
    if store is None:
        return None
    rows: list[dict[str, Any]] = store.loss_rows(conn, [area], "day", first, last)
    return rows


def latest_losses(
    conn: Connection, areas: Sequence[str], today: date, days: int = 7
) -> dict[str, dict[str, Any]] | None:
    """The most recent day with a loss row per area, looking back ``days`` days."""
    store = _store()
    if store is None:
        return None
    out: dict[str, dict[str, Any]] = {}
    for row in store.loss_rows(conn, list(areas), "day", today - timedelta(days=days), today):
        out[row["area"]] = row  # rows come ordered by (area, start): the last one wins
    return out


def latest_collection(
    conn: Connection, areas: Sequence[str], today: date, days: int = 7
) -> dict[str, dict[str, Any]] | None:
    """The most recent collection-rate row per area, looking back ``days`` days."""
    store = _store()
    if store is None:
        return None
    out: dict[str, dict[str, Any]] = {}
    for row in store.rate_rows(conn, "area", list(areas), today - timedelta(days=days), today):
        out[row["key"]] = row
    return out


def pass_rate(conn: Connection, areas: Sequence[str], day: date) -> dict[str, Any] | None:
    """台区线损合格率 of ``day`` across ``areas`` (None: analytics not installed or no rows)."""
    store = _store()
    if store is None or not areas:
        return None
    from headend.analytics.passrate import pass_rates

    # an area shown without a stored result (its recompute failed or never ran) is 未计算:
    # counted, not left out (the API's pass rate does the same)
    found = pass_rates(store.loss_rows(conn, list(areas), "day", day, day), lambda *_: areas)
    return found[0].as_dict() if found else None


def suspects(conn: Connection, area: str) -> tuple[str | None, list[dict[str, Any]]] | None:
    """The area's latest ranked suspects with their evidence (None: analytics not installed)."""
    store = _store()
    if store is None:
        return None
    day, rows = store.suspect_rows(conn, area, None)
    return day, rows


def quantity_collection(
    conn: Connection, area: str, day: date, zone: ZoneInfo
) -> dict[str, Any] | None:
    """Collection success per quantity of ``area`` on the local ``day`` (``headend.analytics.
    quantities``: collected only when a reading arrived): per quantity the due, collected,
    unavailable (with the count per reason) and missing meters and the rate; the (meter,
    quantity) pairs not collected, unavailable first (None: analytics not installed)."""
    try:
        from headend.analytics.model import boundary
        from headend.analytics.quantities import (
            COLLECTED,
            UNAVAILABLE,
            collection_facts,
        )
        from headend.analytics.quantities import (
            quantity_collection as judge,
        )
    except ImportError:
        return None
    t0, t1 = boundary(day, zone), boundary(day + timedelta(days=1), zone)
    states, rates = judge(collection_facts(conn, area, t0, t1))
    reasons: dict[str, Counter[str]] = defaultdict(Counter)
    for s in states:
        if s.state == UNAVAILABLE:
            reasons[s.quantity][s.reason or "?"] += 1
    lost = sorted(
        (s for s in states if s.state != COLLECTED),
        key=lambda s: (s.state != UNAVAILABLE, s.meter, s.quantity),
    )
    return {
        "day": day,
        "quantities": [
            {
                **asdict(r),
                "success_rate": r.success_rate,
                "reasons": sorted(reasons[r.quantity].items()),
            }
            for r in rates
        ],
        "not_collected": [asdict(s) for s in lost[:NOT_COLLECTED_SHOWN]],
        "more": max(0, len(lost) - NOT_COLLECTED_SHOWN),
    }
