"""Reading queries: a meter's readings over time (keyset pages) and the latest of an area.

Multipliers are applied here, on the way out: energy, power and demand registers are scaled by
the multiplier (CT × PT) of the meter version in force at the reading's time; other quantities
(voltage, current, states, counters) are returned as registered.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlalchemy import Connection, and_, func, or_, select, true

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


TIME_FIELDS = ("time", "gateway_time", "meter_time", "freeze_time")


def reading_dict(row: Any, mult: Decimal) -> dict[str, Any]:
    """A stored reading as the API shows it (register and scaled value; times as datetimes)."""
    m = row._mapping
    quantity, register, flags = m["quantity"], m["value"], m["flags"]
    apply = scaled(quantity)
    return {
        "quantity": quantity,
        "time": m["time"],
        "kind": m["kind"],
        "value": value_of(quantity, register, mult) if apply else register,
        "register": register,
        "multiplier": str(mult) if apply else "1",
        "gateway_time": m["gateway_time"],
        "meter_time": m["meter_time"],
        "meter_time_raw": m["meter_time_raw"],
        "freeze_time": m["freeze_time"],
        "flags": flags.split(",") if flags else [],
        "gateway": m["gateway"],
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


# Look-back of each probe: a meter read on schedule is in the first week; one silent for a while
# (a gateway offline) within a quarter, a few monthly partitions; the last probe has no bounds.
WINDOWS = (timedelta(days=7), timedelta(days=92), None)
AHEAD = timedelta(days=1)  # bounded probes also take a day past "now" (a clock running ahead)


def _newest(
    members: Any, quantity: str, dialect: str, lo: datetime | None, hi: datetime | None
) -> Any:
    """Each member with its newest reading of ``quantity`` in ``[lo, hi]`` (NULLs if none).

    One backward index probe per meter on (meter, quantity, time): a LATERAL ``ORDER BY time
    DESC LIMIT 1`` on PostgreSQL, a correlated ``max(time)`` joined back on SQLite (no LATERAL).
    """
    match = [readings.c.meter == members.c.id, readings.c.quantity == quantity]
    if lo is not None:
        match.append(readings.c.time >= lo)
    if hi is not None:
        match.append(readings.c.time <= hi)
    if dialect == "postgresql":
        newest = select(readings).where(*match).order_by(readings.c.time.desc()).limit(1).lateral()
        return select(members, newest).select_from(members.outerjoin(newest, true()))
    newest_time = select(func.max(readings.c.time)).where(*match).scalar_subquery()
    stamped = select(members, newest_time.label("newest")).subquery("stamped")
    return select(stamped.c.id, stamped.c.multiplier, stamped.c.role, readings).select_from(
        stamped.outerjoin(
            readings,
            and_(
                readings.c.meter == stamped.c.id,
                readings.c.quantity == quantity,
                readings.c.time == stamped.c.newest,
            ),
        )
    )


def latest_of_area(
    conn: Connection, area: str, quantity: str, at: datetime | None, *, now: datetime
) -> tuple[list[dict[str, Any]], list[str]]:
    """The latest reading of ``quantity`` of every meter in ``area``: (items, meters unread).

    Driven from the area's meters, one index probe per meter, in widening windows before ``at``
    (or ``now``, the head-end clock's, up to a day past it): a week, which on PostgreSQL touches
    only the partition or two holding it; for the meters with nothing in it, a quarter (all of
    them again when most were silent: a long IN list costs more); for those still without, all
    time.  Cost so stays flat however many months are kept; nothing is kept on the ingest path.
    """
    ref = at if at is not None else now
    members = select(meters.c.id, meters.c.multiplier, meters.c.role).where(
        meters.c.area == area, in_force(meters, at)
    )
    dialect = conn.dialect.name
    rows: list[Any] = []
    pending = members
    for window in WINDOWS:
        lo, hi = (ref - window, at or ref + AHEAD) if window is not None else (None, at)
        probed = conn.execute(_newest(pending.subquery("members"), quantity, dialect, lo, hi))
        found = probed.all()
        silent = sorted({r.id for r in found if r.value is None})
        if not silent or window is None:
            rows += found
            break
        if 2 * len(silent) > len(found):
            continue  # mostly silent: probe them all again (a long IN list costs more)
        rows += [r for r in found if r.value is not None]
        pending = pending.where(meters.c.id.in_(silent))
    items: list[dict[str, Any]] = []
    missing: list[str] = []
    seen: set[str] = set()
    mults: dict[str, Decimal] = {}  # a few distinct multipliers among hundreds of meters
    for row in rows:
        if row.id in seen:
            continue  # two kinds at the same instant: one is enough
        seen.add(row.id)
        if row.value is None:
            missing.append(row.id)
            continue
        mult = mults.get(row.multiplier)
        if mult is None:
            mult = mults[row.multiplier] = Decimal(row.multiplier)
        items.append({"meter": row.id, "role": row.role, **reading_dict(row, mult)})
    items.sort(key=lambda i: i["meter"])
    missing.sort()
    return items, missing
