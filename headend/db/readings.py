"""Reading queries: a meter's readings over time (keyset pages) and the latest of an area.

Multipliers are applied here, on the way out: energy, power and demand registers are scaled by
the multiplier (CT × PT) of the meter version in force at the reading's time; other quantities
(voltage, current, states, counters) are returned as registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select

from headend.archive.effective import in_force
from headend.db.tables import meters, readings

SCALED_PREFIXES = ("energy.", "power.active", "power.reactive", "power.apparent", "demand.")


def scaled(quantity: str) -> bool:
    """Whether the multiplier applies to ``quantity``."""
    return quantity.startswith(SCALED_PREFIXES)


@dataclass(frozen=True)
class Versions:
    """A meter's multiplier over time."""

    spans: list[tuple[datetime, datetime | None, Decimal]]

    def at(self, t: datetime) -> Decimal:
        for start, end, mult in self.spans:
            if start <= t and (end is None or t < end):
                return mult
        return self.spans[0][2] if self.spans else Decimal(1)


def multipliers(conn: Connection, meter: str) -> Versions:
    rows = conn.execute(
        select(meters.c.valid_from, meters.c.valid_to, meters.c.multiplier)
        .where(meters.c.id == meter)
        .order_by(meters.c.valid_from)
    ).all()
    return Versions([(r.valid_from, r.valid_to, Decimal(r.multiplier)) for r in rows])


def value_of(quantity: str, register: str, mult: Decimal) -> str:
    """The register scaled by ``mult`` when it applies, as exact decimal text."""
    if mult == 1 or not scaled(quantity):
        return register
    try:
        return str(Decimal(register) * mult)
    except InvalidOperation:
        return register


def reading_dict(row: Any, mult: Decimal) -> dict[str, Any]:
    return {
        "quantity": row.quantity,
        "time": row.time,
        "kind": row.kind,
        "value": value_of(row.quantity, row.value, mult),
        "register": row.value,
        "multiplier": str(mult) if scaled(row.quantity) else "1",
        "gateway_time": row.gateway_time,
        "meter_time": row.meter_time,
        "meter_time_raw": row.meter_time_raw,
        "freeze_time": row.freeze_time,
        "flags": [f for f in row.flags.split(",") if f],
        "gateway": row.gateway,
    }


def page(
    conn: Connection,
    meter: str,
    *,
    quantity: str | None,
    kind: str | None,
    start: datetime | None,
    end: datetime | None,
    after: tuple[datetime, str, str] | None,
    limit: int,
) -> tuple[list[dict[str, Any]], tuple[datetime, str, str] | None]:
    """Up to ``limit`` readings in (time, quantity, kind) order after ``after``; next key."""
    query = select(readings).where(readings.c.meter == meter)
    if quantity is not None:
        query = query.where(readings.c.quantity == quantity)
    if kind is not None:
        query = query.where(readings.c.kind == kind)
    if start is not None:
        query = query.where(readings.c.time >= start)
    if end is not None:
        query = query.where(readings.c.time < end)
    if after is not None:
        t, q, k = after
        query = query.where(
            or_(
                readings.c.time > t,
                and_(readings.c.time == t, readings.c.quantity > q),
                and_(readings.c.time == t, readings.c.quantity == q, readings.c.kind > k),
            )
        )
    query = query.order_by(readings.c.time, readings.c.quantity, readings.c.kind).limit(limit + 1)
    rows = conn.execute(query).all()
    versions = multipliers(conn, meter)
    items = [reading_dict(r, versions.at(r.time)) for r in rows[:limit]]
    nxt = None
    if len(rows) > limit:
        last = rows[limit - 1]
        nxt = (last.time, last.quantity, last.kind)
    return items, nxt


def latest_of_area(
    conn: Connection, area: str, quantity: str, at: datetime | None = None
) -> tuple[list[dict[str, Any]], list[str]]:
    """The latest reading of ``quantity`` of every meter in ``area``: (items, meters unread)."""
    # Driven from the area's meters: one index probe (meter, quantity, max time) per meter.
    newest = select(func.max(readings.c.time)).where(
        readings.c.meter == meters.c.id, readings.c.quantity == quantity
    )
    if at is not None:
        newest = newest.where(readings.c.time <= at)
    members_q = (
        select(
            meters.c.id,
            meters.c.multiplier,
            meters.c.role,
            newest.correlate(meters).scalar_subquery().label("newest"),
        )
        .where(meters.c.area == area, in_force(meters, at))
        .subquery()
    )
    members = conn.execute(select(members_q).order_by(members_q.c.id)).all()
    ids = [m.id for m in members]
    rows = conn.execute(
        select(readings).join(
            members_q,
            and_(
                readings.c.meter == members_q.c.id,
                readings.c.quantity == quantity,
                readings.c.time == members_q.c.newest,
            ),
        )
    ).all()
    by_meter: dict[str, Any] = {}
    for r in rows:
        by_meter.setdefault(r.meter, r)  # one per meter even if two kinds share the instant
    info = {m.id: m for m in members}
    items = []
    for meter_id in ids:
        found = by_meter.get(meter_id)
        if found is None:
            continue
        item = reading_dict(found, Decimal(info[meter_id].multiplier))
        items.append({"meter": meter_id, "role": info[meter_id].role, **item})
    missing = [m for m in ids if m not in by_meter]
    return items, missing
