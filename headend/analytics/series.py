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

from sqlalchemy import (
    Connection,
    Float,
    String,
    and_,
    case,
    cast,
    func,
    or_,
    select,
    type_coerce,
)

from headend.analytics.intervals import IMBALANCE, MIN_LOADED_A, NeutralCounts
from headend.analytics.repo import SPOT, chunks
from headend.db.tables import readings
from protocols.quantities import RELAY_STATE


def _align(t: datetime, step: timedelta) -> datetime:
    """``t`` rounded to the nearest multiple of ``step`` (readings of one sweep share a slot)."""
    seconds = step.total_seconds()
    epoch = t.timestamp()
    return datetime.fromtimestamp(round(epoch / seconds) * seconds, tz=t.tzinfo)


# Interval reads are hundreds of thousands of rows whose times repeat (one per sweep): the time
# column is fetched as stored (naive-UTC text on SQLite, timestamptz on PostgreSQL) and each
# distinct value converted and aligned once, instead of through the column type on every row.
RAW_TIME = type_coerce(readings.c.time, String).label("time")


def slot_of(raw: Any, step: timedelta, cache: dict[Any, datetime]) -> datetime:
    slot = cache.get(raw)
    if slot is None:
        if isinstance(raw, datetime):
            t = raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
        else:
            t = datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)
        slot = cache[raw] = _align(t, step)
    return slot


def _meters_with(conn: Connection, meter_ids: Sequence[str], t0: datetime, t1: datetime,
                 condition: Any) -> set[str]:  # fmt: skip
    out: set[str] = set()
    for chunk in chunks(sorted(meter_ids)):
        out |= set(
            conn.execute(
                select(readings.c.meter)
                .where(
                    readings.c.meter.in_(chunk),
                    readings.c.kind.in_(SPOT),
                    readings.c.time >= t0,
                    readings.c.time < t1,
                    condition,
                )
                .distinct()
            ).scalars()
        )
    return out


def relay_opened(
    conn: Connection, meter_ids: Sequence[str], t0: datetime, t1: datetime
) -> set[str]:
    """The meters whose relay was reported open in ``[t0, t1)``."""
    q, v = readings.c.quantity, readings.c.value
    return _meters_with(conn, meter_ids, t0, t1, and_(q == RELAY_STATE, v == "open"))


def sparse_facts(
    conn: Connection,
    meter_ids: Sequence[str],
    lost: Collection[str],
    t0: datetime,
    t1: datetime,
    step: timedelta,
    relay_from: datetime | None = None,
    opened_in: tuple[Collection[str], datetime, datetime] | None = None,
) -> tuple[dict[str, dict[datetime, bool]], dict[str, dict[datetime, float]]]:
    """The interval readings the evidence needs row by row, in ``[t0, t1)`` aligned to ``step``:
    relay states (from ``relay_from``, default ``t0``: the supply state of a longer window) of
    the meters reported open at least once, and live currents of those and of ``lost`` (meters
    with a voltage below ``LOST_VOLTAGE``).  Registers, low voltages and the live/neutral
    comparison come per day (``headend.analytics.aggregates``); ``opened_in``: the meters
    reported open in ``[k0, k1)``, known from there too."""
    q, v = readings.c.quantity, readings.c.value
    r0 = t0 if relay_from is None else min(relay_from, t0)
    if opened_in is None:
        opened = relay_opened(conn, meter_ids, r0, t1)
    else:  # known for [k0, k1) (the stored days): only the rest is scanned
        opened, k0, k1 = set(opened_in[0]), opened_in[1], opened_in[2]
        for a, b in ((r0, min(k0, t1)), (max(k1, r0), t1)):
            if a < b:
                opened |= relay_opened(conn, [m for m in meter_ids if m not in opened], a, b)
    relay: dict[str, dict[datetime, bool]] = defaultdict(dict)
    live: dict[str, dict[datetime, float]] = defaultdict(dict)
    slots: dict[Any, datetime] = {}
    for quantity, ids, since in ((RELAY_STATE, opened, r0), ("current.a", opened | set(lost), t0)):
        for chunk in chunks(sorted(ids)):
            rows = conn.execute(
                select(readings.c.meter, RAW_TIME, v).where(
                    readings.c.meter.in_(chunk),
                    readings.c.kind.in_(SPOT),
                    q == quantity,
                    readings.c.time >= since,
                    readings.c.time < t1,
                )
            )
            for meter, t, text in rows:
                slot = slot_of(t, step, slots)
                if quantity == RELAY_STATE:
                    relay[meter][slot] = text == "open"
                    continue
                try:
                    value = float(text)
                except ValueError:
                    continue
                if math.isfinite(value):
                    live[meter][slot] = value
    return dict(relay), dict(live)


def neutral_counts(
    conn: Connection, meter_ids: Sequence[str], t0: datetime, t1: datetime
) -> dict[str, NeutralCounts]:
    """``NeutralCounts`` of the meters in ``[t0, t1)`` as one aggregate query per chunk: each
    live reading (``current.a``) joined with the neutral one (``current.n``) of the same sweep
    (one sweep stamps a meter's values with one time)."""
    a, n = readings.alias("a"), readings.alias("n")
    live, neutral = cast(a.c.value, Float), cast(n.c.value, Float)
    big = case((live > neutral, live), else_=neutral)
    off = func.abs(neutral - live) > IMBALANCE * big + 0.3
    joined = a.join(
        n,
        and_(
            n.c.meter == a.c.meter,
            n.c.quantity == "current.n",
            n.c.time == a.c.time,
            n.c.kind == a.c.kind,
        ),
    )
    out: dict[str, NeutralCounts] = {}
    cache: dict[Any, datetime] = {}
    for chunk in chunks(sorted(meter_ids)):
        rows = conn.execute(
            select(
                a.c.meter,
                func.count(),
                func.sum(case((off, 1), else_=0)),
                func.sum(case((off, live), else_=0.0)),
                func.sum(case((off, neutral), else_=0.0)),
                func.min(case((off, type_coerce(a.c.time, String)), else_=None)),
            )
            .select_from(joined)
            .where(
                a.c.meter.in_(chunk),
                a.c.kind.in_(SPOT),
                a.c.quantity == "current.a",
                a.c.time >= t0,
                a.c.time < t1,
                or_(live >= MIN_LOADED_A, neutral >= MIN_LOADED_A),  # loaded
            )
            .group_by(a.c.meter)
        )
        for meter, n_loaded, n_off, live_off, neutral_off, first in rows:
            out[meter] = NeutralCounts(
                int(n_loaded or 0),
                int(n_off or 0),
                float(live_off or 0.0),
                float(neutral_off or 0.0),
                None if first is None else slot_of(first, timedelta(seconds=1), cache),
            )
    return out


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
                out[meter][slot_of(t, step, slots)] = value
    return dict(out)


def supply_days(
    conn: Connection, meter_ids: Sequence[str], t0: datetime, t1: datetime, zone: ZoneInfo
) -> dict[str, tuple[set[date], dict[date, Decimal]]]:
    """Per meter, the local days in ``[t0, t1)`` its relay was reported open, and per day the
    highest live current it measured (the reading-quality checks' supply and load state)."""
    q = readings.c.quantity
    out: dict[str, tuple[set[date], dict[date, Decimal]]] = {}
    local: dict[Any, date] = {}  # raw time → local day, each distinct time converted once
    for chunk in chunks(sorted(meter_ids)):
        rows = conn.execute(
            select(readings.c.meter, q, RAW_TIME, readings.c.value).where(
                readings.c.meter.in_(chunk),
                readings.c.kind.in_(SPOT),
                readings.c.time >= t0,
                readings.c.time < t1,
                or_(and_(q == RELAY_STATE, readings.c.value == "open"), q == "current.a"),
            )
        )
        for meter, quantity, t, text in rows:
            opened, peaks = out.setdefault(meter, (set(), {}))
            day = local.get(t)
            if day is None:
                if isinstance(t, datetime):  # PostgreSQL: timestamptz
                    day = local[t] = t.astimezone(zone).date()
                else:  # SQLite: naive UTC text
                    at = datetime.fromisoformat(str(t)).replace(tzinfo=UTC)
                    day = local[t] = at.astimezone(zone).date()
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
