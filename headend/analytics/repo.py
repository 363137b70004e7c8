"""Reads the facts the analytics need from the database (SQLite and PostgreSQL alike).

Registers are read as exact text and turned into Decimal here; multipliers come from the meter
version in force at the end of a meter's stay in the area over the period.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Connection, String, and_, func, or_, select, type_coerce

from headend.analytics.collection import Due, FrozenFact, SessionFact
from headend.analytics.model import MeterSpan, Point, Registers, boundary, freeze_day
from headend.analytics.suspects import EventFact, Inspection, InstantFact
from headend.db.analytics_tables import analytics_inspections, analytics_targets
from headend.db.subsets import FROZEN_ROWS, NEGATIVE_ROWS
from headend.db.tables import areas, events, gateway_sessions, meter_replacements, meters, readings
from protocols.quantities import ENERGY_EXPORT_TOTAL, ENERGY_TOTAL

SPOT = ("interval", "on_demand")
COVER_EVENTS = ("meter_cover_open", "terminal_cover_open", "reading_anomaly")


def _dec(text: str) -> Decimal | None:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return None
    return value if value.is_finite() else None


def _overlap(table: Any, t0: datetime, t1: datetime) -> Any:
    return and_(table.c.valid_from < t1, or_(table.c.valid_to.is_(None), table.c.valid_to > t0))


def area_ids(conn: Connection, t0: datetime, t1: datetime) -> list[str]:
    """Areas that existed at some time in ``[t0, t1)``."""
    rows = conn.execute(select(areas.c.id).where(_overlap(areas, t0, t1)).distinct())
    return sorted(r.id for r in rows)


def area_gateway(conn: Connection, area: str, at: datetime) -> str | None:
    """The gateway serving ``area`` at ``at``."""
    row = conn.execute(
        select(areas.c.gateway).where(
            areas.c.id == area,
            areas.c.valid_from <= at,
            or_(areas.c.valid_to.is_(None), areas.c.valid_to > at),
        )
    ).first()
    return None if row is None else row.gateway


def points(conn: Connection, area: str, t0: datetime, t1: datetime) -> list[Point]:
    """The metering points of ``area`` over ``[t0, t1)`` with their meters in time order.

    A meter's consecutive versions are one span, except where the multiplier changes: there the
    meter is split into two spans whose shared edge is read from the meter's own register."""
    rows = conn.execute(
        select(meters)
        .where(meters.c.area == area, _overlap(meters, t0, t1))
        .order_by(meters.c.id, meters.c.valid_from)
    ).all()
    stays: list[dict[str, Any]] = []
    last: dict[str, dict[str, Any]] = {}
    for r in rows:
        s = last.get(r.id)
        mult = Decimal(r.multiplier)
        joined = s is not None and s["end"] == r.valid_from
        if joined and s is not None and s["multiplier"] == mult:
            s.update(end=r.valid_to, role=r.role, pv=r.pv, category=r.tariff_category,
                     model=r.model or "")  # fmt: skip
            continue
        new = {"meter": r.id, "start": r.valid_from, "point": r.point, "end": r.valid_to,
               "role": r.role, "pv": r.pv, "multiplier": mult, "start_read": joined,
               "category": r.tariff_category, "model": r.model or ""}  # fmt: skip
        if joined and s is not None:
            s["end_read"] = True
        stays.append(new)
        last[r.id] = new
    # a meter that goes on in another area (moved: a membership confirm, a re-feed): the register
    # at the move is read from the meter itself, as at a multiplier change
    edges = {s["start"] for s in stays} | {s["end"] for s in stays if s["end"] is not None}
    moved = conn.execute(
        select(meters.c.id, meters.c.valid_from, meters.c.valid_to).where(
            meters.c.id.in_(sorted({s["meter"] for s in stays})), meters.c.area != area
        )
    ).all()
    came = {(r.id, r.valid_to) for r in moved if r.valid_to in edges}
    went = {(r.id, r.valid_from) for r in moved if r.valid_from in edges}
    for s in stays:
        s["start_read"] = s["start_read"] or (s["meter"], s["start"]) in came
        s["end_read"] = s.get("end_read", False) or (s["meter"], s["end"]) in went
    reps = conn.execute(
        select(meter_replacements).where(
            meter_replacements.c.point.in_(sorted({s["point"] for s in stays})),
            meter_replacements.c.at > t0,
            meter_replacements.c.at < t1,
        )
    ).all()
    finals = {(r.old_meter, r.at): json.loads(r.old_final) for r in reps}
    starts = {(r.new_meter, r.at): json.loads(r.new_start) for r in reps}
    by_point: dict[str, list[MeterSpan]] = defaultdict(list)
    roles: dict[str, tuple[datetime, str, bool, str, str]] = {}
    for s in stays:
        meter = s["meter"]
        start = s["start"] if s["start"] > t0 else None
        end = s["end"] if s["end"] is not None and s["end"] < t1 else None
        begun = starts.get((meter, s["start"]), {})
        ended = finals.get((meter, s["end"]), {})
        by_point[s["point"]].append(
            MeterSpan(
                meter,
                s["multiplier"],
                start,
                end,
                _opt(begun.get(ENERGY_TOTAL)),
                _opt(ended.get(ENERGY_TOTAL)),
                start_read=s["start_read"],
                end_read=s.get("end_read", False),
                start_export=_opt(begun.get(ENERGY_EXPORT_TOTAL)),
                end_export=_opt(ended.get(ENERGY_EXPORT_TOTAL)),
                pv=bool(s["pv"]),
            )
        )
        if s["point"] not in roles or roles[s["point"]][0] <= s["start"]:
            roles[s["point"]] = (s["start"], s["role"], bool(s["pv"]), s["category"], s["model"])
    return [
        Point(
            p,
            roles[p][1],
            tuple(sorted(spans, key=lambda m: m.start or t0)),
            pv=roles[p][2],
            category=roles[p][3],
            model=roles[p][4],
        )
        for p, spans in sorted(by_point.items())
    ]


def _opt(text: str | None) -> Decimal | None:
    return None if text is None else Decimal(text)


def _utc(raw: Any, cache: dict[Any, datetime]) -> datetime:
    """A ``UTCDateTime`` fetched as stored (naive-UTC text on SQLite, aware on PostgreSQL), as
    the column type would return it; converted once per distinct value."""
    t = cache.get(raw)
    if t is None:
        if isinstance(raw, datetime):
            t = raw.astimezone(UTC) if raw.tzinfo else raw.replace(tzinfo=UTC)
        else:
            t = datetime.fromisoformat(str(raw)).replace(tzinfo=UTC)
        cache[raw] = t
    return t


def frozen_facts(
    conn: Connection,
    meter_ids: Iterable[str],
    quantity: str,
    first: date,
    last: date,
    zone: ZoneInfo,
) -> dict[str, dict[date, FrozenFact]]:
    """Daily frozen values of ``quantity`` for freeze dates ``first``…``last``, per meter."""
    ids = sorted(set(meter_ids))
    out: dict[str, dict[date, FrozenFact]] = {m: {} for m in ids}
    if not ids:
        return out
    lo = boundary(first, zone) - timedelta(hours=12)
    hi = boundary(last, zone) + timedelta(hours=12)
    # times as stored (text on SQLite), each distinct one converted once: freeze times repeat
    # every day for every meter, gateway times nearly so
    instants: dict[Any, datetime] = {}
    freeze_days: dict[Any, date] = {}
    for chunk in chunks(ids):
        rows = conn.execute(
            select(
                readings.c.meter,
                type_coerce(readings.c.time, String).label("time"),
                readings.c.value,
                type_coerce(readings.c.gateway_time, String).label("gateway_time"),
                readings.c.flags,
            ).where(
                readings.c.meter.in_(chunk),
                readings.c.quantity == quantity,
                FROZEN_ROWS,  # the partial index of frozen rows (headend.db.subsets)
                readings.c.time >= lo,
                readings.c.time < hi,
            )
        )
        for r in rows:
            value = _dec(r.value)
            if value is None:
                continue
            day = freeze_days.get(r.time)
            if day is None:
                day = freeze_days[r.time] = freeze_day(_utc(r.time, instants), zone)
            if day in out[r.meter]:
                continue
            flags = frozenset(f for f in r.flags.split(",") if f)
            at = _utc(r.gateway_time, instants)
            out[r.meter][day] = FrozenFact(r.meter, day, value, at, flags)
    return out


def registers(
    conn: Connection,
    meter_ids: Iterable[str],
    first: date,
    last: date,
    zone: ZoneInfo,
    max_gap: timedelta,
    quantity: str = ENERGY_TOTAL,
    extra: Iterable[datetime] = (),
    fallback: set[str] | None = None,
) -> dict[str, Registers]:
    """Energy registers of ``quantity`` (import by default): frozen values, plus interval readings
    around missing freezes and around the instants in ``extra`` (multiplier changes).  A meter
    with no reading of ``quantity`` at all is absent (its register is not read); ``fallback``
    (default: all) names the meters whose interval readings are looked up without any freeze."""
    facts = frozen_facts(conn, meter_ids, quantity, first, last, zone)
    instants = sorted(extra)
    want = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    need: dict[datetime, list[str]] = defaultdict(list)  # instant → meters to interpolate there
    for meter, by_day in facts.items():
        if by_day or fallback is None or meter in fallback:
            for at in [boundary(d, zone) for d in want if d not in by_day] + instants:
                need[at].append(meter)
    found: dict[str, dict[datetime, Decimal]] = defaultdict(dict)
    for at, ids in sorted(need.items()):  # one query per instant: only readings around it
        for chunk in chunks(sorted(ids)):
            rows = conn.execute(
                select(readings.c.meter, readings.c.time, readings.c.value).where(
                    readings.c.meter.in_(chunk),
                    readings.c.quantity == quantity,
                    readings.c.kind.in_(SPOT),
                    readings.c.time >= at - max_gap,
                    readings.c.time <= at + max_gap,
                )
            )
            for meter, t, text in rows:
                if (v := _dec(text)) is not None:
                    found[meter][t] = v
    out: dict[str, Registers] = {}
    for meter, by_day in facts.items():
        frozen = {d: f.value for d, f in by_day.items()}
        series = sorted(found[meter].items()) if meter in found else []
        if frozen or series or quantity == ENERGY_TOTAL:
            out[meter] = Registers(frozen, series)
    return out


def daily_deltas(
    conn: Connection, meter: str, quantity: str, first: date, last: date, zone: ZoneInfo
) -> dict[date, Decimal]:
    """Day D's increase of a frozen register (D+1 − D) for days ``first``…``last``."""
    return daily_deltas_of(conn, [meter], quantity, first, last, zone)[meter]


def daily_deltas_of(
    conn: Connection,
    meter_ids: Iterable[str],
    quantity: str,
    first: date,
    last: date,
    zone: ZoneInfo,
) -> dict[str, dict[date, Decimal]]:
    """``daily_deltas`` of many meters in one query per chunk."""
    facts = frozen_facts(conn, meter_ids, quantity, first, last + timedelta(days=1), zone)
    out: dict[str, dict[date, Decimal]] = {}
    for meter, by_day in facts.items():
        mine = out[meter] = {}
        for d, f in by_day.items():
            nxt = by_day.get(d + timedelta(days=1))
            if nxt is not None and nxt.value >= f.value:
                mine[d] = nxt.value - f.value
    return out


def meter_events(
    conn: Connection, meter_ids: Sequence[str], t0: datetime, t1: datetime
) -> list[EventFact]:
    """Cover, terminal-cover and reading-anomaly events of the meters in ``[t0, t1)``."""
    out = []
    for chunk in chunks(sorted(meter_ids)):
        rows = conn.execute(
            select(events.c.meter, events.c.type, events.c.time, events.c.details).where(
                events.c.meter.in_(chunk),
                events.c.type.in_(COVER_EVENTS),
                events.c.time >= t0,
                events.c.time < t1,
            )
        )
        out += [EventFact(r.meter, r.type, r.time, json.loads(r.details)) for r in rows]
    return out


def anomalous_instants(
    conn: Connection, meter_ids: Sequence[str], t0: datetime, t1: datetime
) -> list[InstantFact]:
    """Negative power and current readings in ``[t0, t1)`` (energy flowing backwards through a
    meter; a low voltage is judged with the current of the same reading, in ``intervals``)."""
    q = readings.c.quantity
    out = []
    for chunk in chunks(sorted(meter_ids)):
        rows = conn.execute(
            select(readings.c.meter, q, readings.c.time, readings.c.value)
            .where(
                readings.c.meter.in_(chunk),
                readings.c.kind.in_(SPOT),
                readings.c.time >= t0,
                readings.c.time < t1,
                NEGATIVE_ROWS,  # the partial index of negative values (headend.db.subsets)
            )
            .order_by(readings.c.time)
            .limit(10_000)
        )
        out += [
            InstantFact(r.meter, r.quantity, r.time, v)
            for r in rows
            if (v := _dec(r.value)) is not None
        ]
    return out


def latest_inspections(conn: Connection, meter_ids: Sequence[str]) -> dict[str, Inspection]:
    """The latest inspection of each meter (outcomes stay with the meter)."""
    out: dict[str, Inspection] = {}
    for chunk in chunks(sorted(meter_ids)):
        rows = conn.execute(
            select(analytics_inspections)
            .where(analytics_inspections.c.meter.in_(chunk))
            .order_by(analytics_inspections.c.at, analytics_inspections.c.id)
        )
        for r in rows:
            out[r.meter] = Inspection(r.meter, r.at, r.outcome, r.note)
    return out


def band_of(
    conn: Connection, area: str, default: tuple[Decimal, Decimal]
) -> tuple[Decimal, Decimal]:
    """The area's acceptable loss band (low, high); the configured default where not set."""
    row = conn.execute(
        select(analytics_targets.c.target, analytics_targets.c.low).where(
            analytics_targets.c.area == area
        )
    ).first()
    if row is None:
        return default
    return (default[0] if row.low is None else Decimal(row.low)), Decimal(row.target)


def target_of(conn: Connection, area: str, default: Decimal) -> Decimal:
    """The area's loss-rate target: the top of its band (the configured default if none)."""
    return band_of(conn, area, (Decimal(0), default))[1]


def due_meters(conn: Connection, area: str, at: datetime) -> list[Due]:
    """Meters of ``area`` in force at ``at`` (due for that instant's freeze)."""
    gateway = area_gateway(conn, area, at)
    rows = conn.execute(
        select(meters.c.id, meters.c.role).where(
            meters.c.area == area,
            meters.c.valid_from <= at,
            or_(meters.c.valid_to.is_(None), meters.c.valid_to > at),
        )
    )
    return [Due(r.id, area, gateway, r.role) for r in rows]


def sessions(conn: Connection, gateway: str, end: datetime) -> list[SessionFact]:
    """A gateway's session history up to ``end`` (the last state before and every change)."""
    rows = conn.execute(
        select(gateway_sessions.c.at, gateway_sessions.c.state)
        .where(gateway_sessions.c.gateway == gateway, gateway_sessions.c.at < end)
        .order_by(gateway_sessions.c.at, gateway_sessions.c.id)
    )
    return [SessionFact(gateway, r.at, r.state) for r in rows]


def meter_area(conn: Connection, meter: str) -> tuple[str, str] | None:
    """(area, point) of a meter's latest version."""
    row = conn.execute(
        select(meters.c.area, meters.c.point)
        .where(meters.c.id == meter)
        .order_by(meters.c.valid_from.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.area, row.point)


def count_readings(conn: Connection) -> int:
    """How many readings are stored (benchmarks)."""
    return int(conn.execute(select(func.count()).select_from(readings)).scalar_one())


def chunks(ids: Sequence[str], size: int = 500) -> Iterable[list[str]]:
    for i in range(0, len(ids), size):
        yield list(ids[i : i + size])
