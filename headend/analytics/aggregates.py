"""Per-meter daily aggregates of interval readings: what the suspects need of a complete day.

A recompute reads 7 days of 15-minute registers for every meter of an area (≈ 540 k rows for
4 × 200 meters).  The facts of a day that is over do not change unless readings of that day
arrive late, so they are stored once per meter and day (``analytics_interval_days``) and a
recompute reads 7 small rows per meter instead.

``MeterDay`` holds, for the slots ``(boundary(d), boundary(d+1)]`` aligned to the step (the
slot at midnight closes the day before): the import and export energy of each slot (register
differences one step apart, as ``intervals.slot_energy``), voltages below ``LOST_VOLTAGE``, and
the day's live/neutral ``NeutralCounts`` and whether the relay was reported open (raw times in
``[boundary(d), boundary(d+1))``).  Both ways of getting a window's facts go through
``MeterDay`` and ``combine``: computed from the raw readings (``compute``) or read back
(``load``), so results are the same with and without the table (floats are stored as JSON,
which round-trips them exactly).

Validity: readings are insert-only and written in one place (``headend.db.bulk.write_readings``),
which records the span of reading times each write covered (``reading_spans``).  Before a
window's stored days are read, ``invalidate`` consumes the spans written since the last time:
every stored day a span reaches (a day's facts depend on readings in ``[boundary(d) − 2·step,
boundary(d+1) + 2·step)``) is deleted, for every meter, and so computed again from the raw
readings.  A span committed while a recompute runs is not consumed by it, so a reading that the
recompute did not see invalidates its day at the next one.  Only days whose last slot is
``2·step`` in the past are stored (``settings.interval_aggregates`` turns the table off).  The
table is a cache: deleting rows of it is always safe; readings written around the ingest (SQL
by hand) are not seen until their day's rows are deleted.
"""

from __future__ import annotations

import json
import math
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson
from sqlalchemy import Connection, delete, or_, select
from sqlalchemy import text as sql

from headend.analytics.intervals import NeutralCounts, slot_energy
from headend.analytics.model import boundary
from headend.analytics.repo import SPOT, chunks
from headend.analytics.series import RAW_TIME, neutral_counts, relay_opened, slot_of
from headend.analytics.suspects import LOST_VOLTAGE
from headend.db.analytics_tables import analytics_interval_days
from headend.db.dialect import upsert
from headend.db.tables import reading_spans, readings
from protocols.quantities import ENERGY_EXPORT_TOTAL, ENERGY_TOTAL

KEEP_DAYS = 31  # stored days older than a window's first by this many are deleted
LOCK_KEY = 0x7461697175_0019  # advisory lock of the stored days ("taiqu", migration 0019)


@dataclass(frozen=True)
class MeterDay:
    """One meter's interval facts of one local day (see the module docstring)."""

    meter: str
    day: date
    readings: int = 0  # stored as 0 (before migration 0019: the day's raw row count)
    energy: Mapping[datetime, float] = field(default_factory=dict)  # import per slot
    export: Mapping[datetime, float] = field(default_factory=dict)  # export per slot
    low_voltage: Mapping[datetime, float] = field(default_factory=dict)
    neutral: NeutralCounts = field(default_factory=lambda: NeutralCounts(0))
    export_read: bool = True  # False: export not read (the meter was not exporting then)
    opened: bool | None = False  # relay reported open in the day's raw times (None: not known)
    # every slot's voltage (the loss-curve fit's line drops); None: stored before it was kept
    voltage: Mapping[datetime, float] | None = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """A window's facts per meter, ``combine``d from its days."""

    loads: dict[str, dict[datetime, float]]
    exports: dict[str, dict[datetime, float]]
    low_voltage: dict[str, dict[datetime, float]]
    neutral: dict[str, NeutralCounts]
    opened: frozenset[str] = frozenset()  # meters whose relay was reported open on some day
    voltages: dict[str, dict[datetime, float]] = field(default_factory=dict)  # every slot's


def combine(facts: Iterable[MeterDay]) -> Window:
    """Merge days into per-meter series (days in date order: sums add in that order)."""
    loads: dict[str, dict[datetime, float]] = {}
    exports: dict[str, dict[datetime, float]] = {}
    low: dict[str, dict[datetime, float]] = {}
    volts: dict[str, dict[datetime, float]] = {}
    neutral: dict[str, NeutralCounts] = {}
    for f in sorted(facts, key=lambda f: (f.meter, f.day)):
        loads.setdefault(f.meter, {}).update(f.energy)
        if f.export:
            exports.setdefault(f.meter, {}).update(f.export)
        if f.low_voltage:
            low.setdefault(f.meter, {}).update(f.low_voltage)
        if f.voltage:
            volts.setdefault(f.meter, {}).update(f.voltage)
        n, c = neutral.get(f.meter, NeutralCounts(0)), f.neutral
        first = min((t for t in (n.first_off, c.first_off) if t is not None), default=None)
        neutral[f.meter] = NeutralCounts(
            n.loaded + c.loaded, n.off + c.off, n.live_off + c.live_off,
            n.neutral_off + c.neutral_off, first,
        )  # fmt: skip
    opened = frozenset(f.meter for f in facts if f.opened)
    return Window(
        loads, exports, low, {m: c for m, c in neutral.items() if c.loaded}, opened, volts
    )


def _span(day: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    return boundary(day, zone), boundary(day + timedelta(days=1), zone)


def invalidate(conn: Connection, zone: ZoneInfo, step: timedelta) -> int:
    """Consume the reading spans written since the last call: delete the stored days they reach
    (every meter; stored days of another zone or step too, all of them: one configuration's
    cache).  How many spans were consumed.

    On PostgreSQL the caller's transaction first takes ``LOCK_KEY`` (until it ends): two
    recomputes at once would otherwise race, one consuming a span whose reading the other did
    not see before storing its day.  SQLite's write transactions are serial already."""
    if conn.dialect.name == "postgresql":
        conn.execute(sql("SELECT pg_advisory_xact_lock(:k)"), {"k": LOCK_KEY})
    s = reading_spans
    spans = conn.execute(select(s.c.id, s.c.t_min, s.c.t_max)).all()
    if not spans:
        return 0
    reach: set[date] = set()
    for _, lo, hi in spans:
        first = (lo - 2 * step).astimezone(zone).date()
        last = (hi + 2 * step).astimezone(zone).date()
        reach.update(first + timedelta(days=k) for k in range((last - first).days + 1))
    t = analytics_interval_days
    keys = sorted(d.isoformat() for d in reach)
    for i in range(0, len(keys), 500):
        conn.execute(delete(t).where(t.c.day.in_(keys[i : i + 500])))
    conn.execute(
        delete(t).where(or_(t.c.zone != zone.key, t.c.step_s != int(step.total_seconds())))
    )
    ids = [r.id for r in spans]
    for i in range(0, len(ids), 500):
        conn.execute(delete(s).where(s.c.id.in_(ids[i : i + 500])))
    return len(ids)


def _series(
    conn: Connection, meter_ids: Collection[str], t0: datetime, t1: datetime, step: timedelta,
    quantity: str, *where: Any,
) -> dict[str, dict[datetime, float]]:  # fmt: skip
    """Finite values of ``quantity`` aligned to ``step``, raw times in ``[t0, t1)``."""
    out: dict[str, dict[datetime, float]] = defaultdict(dict)
    cache: dict[Any, datetime] = {}
    isfinite = math.isfinite
    for chunk in chunks(sorted(meter_ids)):
        rows = conn.execute(
            select(readings.c.meter, RAW_TIME, readings.c.value).where(
                readings.c.meter.in_(chunk),
                readings.c.kind.in_(SPOT),
                readings.c.quantity == quantity,
                readings.c.time >= t0,
                readings.c.time < t1,
                *where,
            )
        )
        last, into = None, out[""]
        for meter, t, text in rows:
            if meter != last:
                last, into = meter, out[meter]
            slot = cache.get(t)
            if slot is None:
                slot = slot_of(t, step, cache)
            try:
                value = float(text)
            except ValueError:
                continue
            if isfinite(value):
                into[slot] = value
    out.pop("", None)
    return out


def _by_day(
    values: Mapping[datetime, float], spans: Sequence[tuple[date, datetime, datetime]]
) -> dict[date, dict[datetime, float]]:
    """``values`` split into the spans' slots ``(t0, t1]`` (spans in order, back to back)."""
    ends = [t1 for _, _, t1 in spans]
    out: dict[date, dict[datetime, float]] = {}
    for t, v in values.items():
        i = bisect_left(ends, t)
        if i < len(spans) and spans[i][1] < t:
            out.setdefault(spans[i][0], {})[t] = v
    return out


def compute(
    conn: Connection, meter_ids: Sequence[str], days: Sequence[date], zone: ZoneInfo,
    step: timedelta, exporting: Collection[str] | None = None,
) -> list[MeterDay]:  # fmt: skip
    """Every (meter, day)'s ``MeterDay`` from the raw readings.  A slot's readings lie within half
    a step of it, so the read is ``[first − 2·step, end + 2·step)`` and only slots of the days
    (and the register one step before the first) are kept: a day comes out the same whichever
    days are computed with it.  Export registers are read for ``exporting`` only (default:
    every meter)."""
    if not meter_ids or not days:
        return []
    spans = [(d, *_span(d, zone)) for d in sorted(days)]
    lo, hi = spans[0][1], spans[-1][2]
    read_lo, read_hi = lo - 2 * step, hi + 2 * step

    def kept(series: dict[str, dict[datetime, float]]) -> dict[str, dict[datetime, float]]:
        return {m: {t: v for t, v in s.items() if lo - step <= t <= hi + step}
                for m, s in series.items()}  # fmt: skip

    energy = kept(_series(conn, meter_ids, read_lo, read_hi, step, ENERGY_TOTAL))
    sends = meter_ids if exporting is None else [m for m in meter_ids if m in exporting]
    export = kept(_series(conn, sends, read_lo, read_hi, step, ENERGY_EXPORT_TOTAL))
    volts = _series(conn, meter_ids, read_lo, read_hi, step, "voltage.a")
    neutral = {d: neutral_counts(conn, meter_ids, t0, t1) for d, t0, t1 in spans}
    opened = {d: relay_opened(conn, meter_ids, t0, t1) for d, t0, t1 in spans}
    e_days = {m: _by_day(slot_energy(r, step), spans) for m, r in energy.items()}
    x_days = {m: _by_day(slot_energy(r, step), spans) for m, r in export.items()}
    v_days = {m: _by_day(s, spans) for m, s in volts.items()}
    lost = float(LOST_VOLTAGE)
    out = []
    for m in meter_ids:
        for d, _, _ in spans:
            va = v_days.get(m, {}).get(d, {})
            out.append(
                MeterDay(
                    m, d, 0, e_days.get(m, {}).get(d, {}), x_days.get(m, {}).get(d, {}),
                    {t: v for t, v in va.items() if v < lost},
                    neutral[d].get(m, NeutralCounts(0)), exporting is None or m in exporting,
                    m in opened[d], va,
                )
            )  # fmt: skip
    return out


# --- storage -----------------------------------------------------------------------------------


def _grid(day: date, zone: ZoneInfo, step: timedelta) -> tuple[datetime, int]:
    """The first aligned slot after the day's start and the number of slots in the day."""
    t0, t1 = _span(day, zone)
    s = step.total_seconds()
    first = math.floor(t0.timestamp() / s) * s + s
    n = int((t1.timestamp() - first) // s) + 1
    return datetime.fromtimestamp(first, tz=UTC), n


def encode(f: MeterDay, zone: ZoneInfo, step: timedelta) -> str:
    """JSON of a day's facts: slot series dense on the day's grid (``null``: no value)."""
    grid = slots(f.day, zone, step)

    def dense(values: Mapping[datetime, float]) -> list[float | None] | None:
        return [values.get(t) for t in grid] if values else None

    c = f.neutral
    body = {
        "e": dense(f.energy),
        "x": dense(f.export) if f.export_read else False,
        "v": dense(f.low_voltage),
        "n": [c.loaded, c.off, c.live_off, c.neutral_off,
              None if c.first_off is None else c.first_off.isoformat()],
        "o": f.opened,
        "va": dense(f.voltage or {}),
    }  # fmt: skip
    return json.dumps(body, separators=(",", ":"))


def decode(meter: str, day: date, readings_: int, text: str, grid: Sequence[datetime]) -> MeterDay:
    """``encode`` read back (``grid``: the day's slots, ``slots``)."""
    try:  # orjson: the same floats (correctly rounded), 4 × faster than json
        body = orjson.loads(text)
    except orjson.JSONDecodeError:  # NaN/Infinity, which json writes and orjson refuses
        body = json.loads(text)

    def sparse(values: list[float | None] | None) -> dict[datetime, float]:
        if not values:
            return {}
        return {t: v for t, v in zip(grid, values, strict=False) if v is not None}

    loaded, off, live_off, neutral_off, first_off = body["n"]
    return MeterDay(
        meter, day, readings_, sparse(body["e"]), sparse(body["x"] or None), sparse(body["v"]),
        NeutralCounts(loaded, off, live_off, neutral_off,
                      None if first_off is None else datetime.fromisoformat(first_off)),
        body["x"] is not False, body.get("o"),  # stored before relay days: None, computed again
        sparse(body["va"]) if "va" in body else None,  # stored before voltages: computed again
    )  # fmt: skip


def slots(day: date, zone: ZoneInfo, step: timedelta) -> list[datetime]:
    """The day's slots ``(boundary(d), boundary(d+1)]`` on the step's grid."""
    first, n = _grid(day, zone, step)
    return [first + k * step for k in range(n)]


def load(
    conn: Connection, meter_ids: Sequence[str], days: Sequence[date], zone: ZoneInfo,
    step: timedelta,
) -> dict[tuple[str, date], MeterDay]:  # fmt: skip
    """Stored days of the meters on this zone and step."""
    t = analytics_interval_days
    out = {}
    keys = [d.isoformat() for d in days]
    grids = {d: slots(d, zone, step) for d in days}
    for chunk in chunks(sorted(meter_ids)):
        rows = conn.execute(
            select(t.c.meter, t.c.day, t.c.readings, t.c.facts).where(
                t.c.meter.in_(chunk), t.c.day.in_(keys), t.c.zone == zone.key,
                t.c.step_s == int(step.total_seconds()),
            )
        )  # fmt: skip
        for meter, day, n, text in rows:
            d = date.fromisoformat(day)
            out[(meter, d)] = decode(meter, d, int(n), text, grids[d])
    return out


def save(conn: Connection, facts: Sequence[MeterDay], zone: ZoneInfo, step: timedelta,
         now: datetime) -> None:  # fmt: skip
    """Upsert days' facts."""
    rows = [
        {"meter": f.meter, "day": f.day.isoformat(), "zone": zone.key,
         "step_s": int(step.total_seconds()), "readings": f.readings,
         "facts": encode(f, zone, step), "computed_at": now}
        for f in facts
    ]  # fmt: skip
    t = analytics_interval_days
    keys = ["meter", "day"]
    for i in range(0, len(rows), 500):
        conn.execute(upsert(conn, t, keys, [c.name for c in t.columns if c.name not in keys]),
                     rows[i : i + 500])  # fmt: skip


def window(
    conn: Connection, meter_ids: Sequence[str], days: Sequence[date], zone: ZoneInfo,
    step: timedelta, now: datetime, *, stored: bool = True,
    exporting: Collection[str] | None = None,
) -> Window:  # fmt: skip
    """The facts of ``days`` for the meters: stored days still current, the others computed
    from the raw readings (and stored once the day is over, if ``stored``).  Export registers
    are read for ``exporting`` (default: every meter); a stored day without them is computed
    again for a meter that exports now."""
    if not stored:
        return combine(compute(conn, meter_ids, days, zone, step, exporting=exporting))
    invalidate(conn, zone, step)  # before reading: see the module docstring
    have = load(conn, meter_ids, days, zone, step)
    facts = [
        f
        for f in have.values()
        if f.opened is not None
        and f.voltage is not None
        and (f.export_read or (exporting is not None and f.meter not in exporting))
    ]
    current = {(f.meter, f.day) for f in facts}
    for d in days:
        missing = [m for m in meter_ids if (m, d) not in current]
        if not missing:
            continue
        fresh = compute(conn, missing, [d], zone, step, exporting)
        facts += fresh
        if _span(d, zone)[1] + 2 * step <= now:
            save(conn, fresh, zone, step, now)
    _prune(conn, meter_ids, days[0] - timedelta(days=KEEP_DAYS))
    return combine(facts)


def _prune(conn: Connection, meter_ids: Sequence[str], before: date) -> None:
    """Forget the meters' days before ``before`` (a cache: a recompute of older days computes
    and stores them again)."""
    t = analytics_interval_days
    for chunk in chunks(sorted(meter_ids)):
        conn.execute(delete(t).where(t.c.meter.in_(chunk), t.c.day < before.isoformat()))
