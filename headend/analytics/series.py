"""Reads interval series (15-minute readings) for the suspects and the membership check.

Times are aligned to the gateways' interval step: the readings of one sweep land in one slot
even when the gateway read the meters over a few minutes.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, Numeric, String, and_, case, cast, or_, select, type_coerce

from headend.analytics.intervals import MeterIntervals
from headend.analytics.repo import SPOT, chunks
from headend.analytics.suspects import LOST_VOLTAGE
from headend.db.tables import readings
from protocols.quantities import ENERGY_EXPORT_TOTAL, ENERGY_TOTAL, RELAY_STATE


def _align(t: datetime, step: timedelta) -> datetime:
    """``t`` rounded to the nearest multiple of ``step`` (readings of one sweep share a slot)."""
    seconds = step.total_seconds()
    epoch = t.timestamp()
    return datetime.fromtimestamp(round(epoch / seconds) * seconds, tz=t.tzinfo)


# Interval reads are hundreds of thousands of rows whose times repeat (one per sweep): the time
# column is fetched as stored (naive-UTC text on SQLite, timestamptz on PostgreSQL) and each
# distinct value converted and aligned once, instead of through the column type on every row.
RAW_TIME = type_coerce(readings.c.time, String).label("time")


def _slot(raw: Any, step: timedelta, cache: dict[Any, datetime]) -> datetime:
    slot = cache.get(raw)
    if slot is None:
        if isinstance(raw, datetime):
            t = raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
        else:
            t = datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)
        slot = cache[raw] = _align(t, step)
    return slot


def interval_facts(
    conn: Connection,
    meter_ids: Sequence[str],
    t0: datetime,
    t1: datetime,
    step: timedelta,
    exporting: Collection[str] | None = None,
    relay_from: datetime | None = None,
) -> tuple[dict[str, MeterIntervals], dict[str, dict[datetime, float]]]:
    """Interval readings of the meters in ``[t0, t1)`` aligned to ``step``: import register,
    live and neutral current, voltage, relay state (from ``relay_from``, default ``t0``: the
    supply state of a longer window); and the export registers apart.

    Only what the evidence can use is read: voltages below ``LOST_VOLTAGE``, the relay states
    of meters reported open at least once, export registers of ``exporting`` (default: all)."""
    q, v = readings.c.quantity, readings.c.value
    r0 = t0 if relay_from is None else min(relay_from, t0)
    opened = set()
    for chunk in chunks(sorted(meter_ids)):
        opened |= set(
            conn.execute(
                select(readings.c.meter)
                .where(
                    readings.c.meter.in_(chunk),
                    readings.c.kind.in_(SPOT),
                    q == RELAY_STATE,
                    v == "open",
                    readings.c.time >= r0,
                    readings.c.time < t1,
                )
                .distinct()
            ).scalars()
        )
    raw: dict[tuple[str, str], dict[datetime, Any]] = defaultdict(dict)
    slots: dict[Any, datetime] = {}
    for chunk in chunks(sorted(meter_ids)):
        export = (
            q == ENERGY_EXPORT_TOTAL
            if exporting is None
            else and_(q == ENERGY_EXPORT_TOTAL, readings.c.meter.in_(sorted(exporting)))
        )
        measured = or_(
            q.in_((ENERGY_TOTAL, "current.a", "current.n")),
            export,
            # CASE: only voltages are cast (PostgreSQL does not promise to test q first)
            case((q == "voltage.a", cast(v, Numeric)), else_=None) < LOST_VOLTAGE,
        )
        wanted = or_(
            and_(readings.c.time >= t0, measured),
            and_(q == RELAY_STATE, readings.c.meter.in_(sorted(opened & set(chunk)) or [""])),
        )
        rows = conn.execute(
            select(readings.c.meter, q, RAW_TIME, v).where(
                readings.c.meter.in_(chunk),
                readings.c.kind.in_(SPOT),
                readings.c.time >= r0,
                readings.c.time < t1,
                wanted,
            )
        ).all()
        for meter, quantity, t, text in rows:
            if quantity == RELAY_STATE:
                value: Any = text == "open"
            else:
                try:
                    value = float(text)
                except ValueError:
                    continue
                if not math.isfinite(value):
                    continue
            raw[(meter, quantity)][_slot(t, step, slots)] = value
    meters_seen = sorted({m for m, _ in raw})

    def of(m: str, q: str) -> dict[datetime, Any]:
        return raw.get((m, q), {})

    out = {
        m: MeterIntervals(
            m,
            of(m, ENERGY_TOTAL),
            of(m, "voltage.a"),
            of(m, "current.a"),
            of(m, "current.n"),
            of(m, RELAY_STATE),
        )
        for m in meters_seen
    }
    return out, {m: of(m, ENERGY_EXPORT_TOTAL) for m in meters_seen if of(m, ENERGY_EXPORT_TOTAL)}


def voltages(
    conn: Connection,
    meter_ids: Sequence[str],
    t0: datetime,
    t1: datetime,
    step: timedelta,
    quantity: str = "voltage.a",
) -> dict[str, dict[datetime, float]]:
    """Interval voltages of the meters in ``[t0, t1)``, times aligned to ``step``."""
    out: dict[str, dict[datetime, float]] = defaultdict(dict)
    slots: dict[Any, datetime] = {}
    for chunk in chunks(sorted(meter_ids)):
        rows = conn.execute(
            select(readings.c.meter, RAW_TIME, readings.c.value).where(
                readings.c.meter.in_(chunk),
                readings.c.kind.in_(SPOT),
                readings.c.quantity == quantity,
                readings.c.time >= t0,
                readings.c.time < t1,
            )
        )
        for meter, t, text in rows:
            try:
                value = float(text)
            except ValueError:
                continue
            if math.isfinite(value) and value > 0:
                out[meter][_slot(t, step, slots)] = value
    return dict(out)


def supply_days(
    conn: Connection, meter_ids: Sequence[str], t0: datetime, t1: datetime, zone: ZoneInfo
) -> dict[str, tuple[set[date], dict[date, Decimal]]]:
    """Per meter, the local days in ``[t0, t1)`` its relay was reported open, and per day the
    highest live current it measured (the reading-quality checks' supply and load state)."""
    q = readings.c.quantity
    out: dict[str, tuple[set[date], dict[date, Decimal]]] = {}
    for chunk in chunks(sorted(meter_ids)):
        rows = conn.execute(
            select(readings.c.meter, q, readings.c.time, readings.c.value).where(
                readings.c.meter.in_(chunk),
                readings.c.kind.in_(SPOT),
                readings.c.time >= t0,
                readings.c.time < t1,
                or_(and_(q == RELAY_STATE, readings.c.value == "open"), q == "current.a"),
            )
        )
        for meter, quantity, t, text in rows:
            opened, peaks = out.setdefault(meter, (set(), {}))
            day = t.astimezone(zone).date()
            if quantity == RELAY_STATE:
                opened.add(day)
                continue
            try:
                amps = abs(Decimal(text))
            except InvalidOperation:
                continue
            if amps.is_finite() and amps > peaks.get(day, Decimal(-1)):
                peaks[day] = amps
    return out
