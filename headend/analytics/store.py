"""Writes analytics results (idempotent upserts) and reads them back for the API."""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Connection, delete, select

from headend.analytics.collection import Failing, QualityFlag, Rate
from headend.analytics.lineloss import LossResult
from headend.analytics.suspects import Suspect
from headend.db.analytics_tables import (
    analytics_collection,
    analytics_lineloss,
    analytics_quality,
    analytics_suspects,
)
from headend.db.dialect import upsert


def _s(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _upsert(conn: Connection, table: Any, keys: list[str], rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    update = [c.name for c in table.columns if c.name not in keys]
    conn.execute(upsert(conn, table, keys, update), rows)


def save_losses(
    conn: Connection, results: Iterable[tuple[str, LossResult, Decimal | None]], now: datetime
) -> None:
    """Upsert ``(period, result, target)`` rows."""
    rows = []
    for period, r, target in results:
        detail = {
            "points": [
                {
                    "point": p.point,
                    "role": p.role,
                    "meters": list(p.meters),
                    "energy": _s(p.energy),
                    "export": _s(p.export),
                    "method": p.method.value if p.method else None,
                    "reason": p.reason,
                }
                for p in r.points
            ],
            "exported": _s(r.exported),
            "band": None if r.band is None else [_s(r.band[0]), _s(r.band[1])],
            "passed": r.passed,
        }
        rows.append(
            {
                "area": r.area,
                "period": period,
                "start": r.start.isoformat(),
                "end": r.end.isoformat(),
                "supply": _s(r.supply),
                "sales": _s(r.sales),
                "loss": _s(r.loss),
                "rate": _s(r.rate),
                "coverage": str(r.coverage),
                "points_total": r.points_total,
                "points_valid": r.points_valid,
                "method": r.method.value if r.method else None,
                "flags": ",".join(r.flags),
                "target": _s(target),
                "detail": json.dumps(detail),
                "computed_at": now,
            }
        )
    _upsert(conn, analytics_lineloss, ["area", "period", "start"], rows)


def save_suspects(
    conn: Connection, area: str, day: date, suspects: Sequence[Suspect], now: datetime
) -> None:
    """Replace the area's suspect list as of ``day``."""
    conn.execute(
        delete(analytics_suspects).where(
            analytics_suspects.c.area == area, analytics_suspects.c.day == day.isoformat()
        )
    )
    rows = [
        {
            "area": area,
            "day": day.isoformat(),
            "meter": s.meter,
            "point": s.point,
            "rank": s.rank,
            "score": str(s.score),
            "evidence": json.dumps([e.as_dict() for e in s.evidence], default=str),
            "computed_at": now,
        }
        for s in suspects
    ]
    if rows:
        conn.execute(analytics_suspects.insert(), rows)


def save_rates(conn: Connection, rates: Sequence[Rate], now: datetime) -> None:
    """Upsert collection rates."""
    rows = [
        {
            "scope": r.scope,
            "key": r.key,
            "day": r.day.isoformat(),
            "due": r.due,
            "first_sweep": r.collected,  # column name of 0004: collected within the cut-off
            "obtained": r.obtained,
            "rate_first": _s(r.success_rate),
            "rate_obtained": _s(r.rate_obtained),
            "online_rate": _s(r.online_rate),
            "missing": json.dumps(list(r.missing)),
            "computed_at": now,
        }
        for r in rates
    ]
    _upsert(conn, analytics_collection, ["scope", "key", "day"], rows)


def save_quality(
    conn: Connection,
    area: str,
    day: date,
    flags: Sequence[QualityFlag],
    failing: Sequence[Failing],
    now: datetime,
) -> None:
    """Replace the area's quality findings as of ``day``."""
    conn.execute(
        delete(analytics_quality).where(
            analytics_quality.c.area == area, analytics_quality.c.day == day.isoformat()
        )
    )
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for f in flags:  # the latest finding of each kind per meter
        rows[(f.meter, f.kind)] = {"on": f.day.isoformat(), **dict(f.detail)}
    for g in failing:
        rows[(g.meter, "failing")] = {
            "missing_days": g.missing_days,
            "window_days": g.window_days,
            "consecutive": g.consecutive,
            "last_obtained": g.last_obtained.isoformat() if g.last_obtained else None,
        }
    if rows:
        conn.execute(
            analytics_quality.insert(),
            [
                {
                    "area": area,
                    "day": day.isoformat(),
                    "meter": meter,
                    "kind": kind,
                    "detail": json.dumps(detail),
                    "computed_at": now,
                }
                for (meter, kind), detail in sorted(rows.items())
            ],
        )


# --- reading back ------------------------------------------------------------------------------


def loss_rows(
    conn: Connection, areas: Sequence[str] | None, period: str, first: date, last: date
) -> list[dict[str, Any]]:
    """Stored line-loss results with ``first <= start <= last``."""
    t = analytics_lineloss
    q = select(t).where(
        t.c.period == period, t.c.start >= first.isoformat(), t.c.start <= last.isoformat()
    )
    if areas is not None:
        q = q.where(t.c.area.in_(sorted(areas)))
    out = []
    for r in conn.execute(q.order_by(t.c.area, t.c.start)):
        row = dict(r._mapping)
        row["flags"] = [f for f in row["flags"].split(",") if f]
        row["detail"] = json.loads(row["detail"])
        out.append(row)
    return out


def suspect_rows(
    conn: Connection, area: str, day: date | None
) -> tuple[str | None, list[dict[str, Any]]]:
    """The area's suspects as of ``day`` (default: the latest stored day)."""
    t = analytics_suspects
    if day is None:
        latest = conn.execute(
            select(t.c.day).where(t.c.area == area).order_by(t.c.day.desc()).limit(1)
        ).first()
        if latest is None:
            return None, []
        key = latest.day
    else:
        key = day.isoformat()
    rows = conn.execute(select(t).where(t.c.area == area, t.c.day == key).order_by(t.c.rank))
    out = []
    for r in rows:
        row = dict(r._mapping)
        row["evidence"] = json.loads(row["evidence"])
        out.append(row)
    return key, out


def rate_rows(
    conn: Connection, scope: str, keys: Sequence[str] | None, first: date, last: date
) -> list[dict[str, Any]]:
    """Stored collection rates of ``scope`` for freeze dates ``first``…``last``."""
    t = analytics_collection
    q = select(t).where(
        t.c.scope == scope, t.c.day >= first.isoformat(), t.c.day <= last.isoformat()
    )
    if keys is not None:
        q = q.where(t.c.key.in_(sorted(keys)))
    out = []
    for r in conn.execute(q.order_by(t.c.key, t.c.day)):
        row = dict(r._mapping)
        row["missing"] = json.loads(row["missing"])
        row["collected"] = row.pop("first_sweep")  # stored under 0004's column names
        row["success_rate"] = row.pop("rate_first")
        out.append(row)
    return out


def quality_rows(
    conn: Connection, area: str, day: date | None
) -> tuple[str | None, list[dict[str, Any]]]:
    """The area's quality findings as of ``day`` (default: the latest stored day)."""
    t = analytics_quality
    if day is None:
        latest = conn.execute(
            select(t.c.day).where(t.c.area == area).order_by(t.c.day.desc()).limit(1)
        ).first()
        if latest is None:
            return None, []
        key = latest.day
    else:
        key = day.isoformat()
    rows = conn.execute(
        select(t).where(t.c.area == area, t.c.day == key).order_by(t.c.meter, t.c.kind)
    )
    return key, [{**dict(r._mapping), "detail": json.loads(r.detail)} for r in rows]
