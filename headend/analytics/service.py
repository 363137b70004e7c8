"""Recompute the analytics of areas over days: read facts, run the pure modules, store results.

``recompute(engine, settings, first, last)`` covers days ``first``…``last`` (loss of day D needs
the freezes of D and D+1): daily loss per area, month-to-date loss of every month touched,
suspects and reading checks as of ``last``, collection rates of freeze dates ``first``…``last+1``.
Each area is one write transaction of idempotent upserts, so a rerun (or a second head-end
computing the same day) leaves the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import Connection, Engine

from headend.analytics import AnalyticsInputError, aggregates, collection, repo, series, store
from headend.analytics.intervals import MeterIntervals, interval_evidence
from headend.analytics.lineloss import LossResult, area_loss, month_bounds
from headend.analytics.losscurve import Voltages
from headend.analytics.model import Point, Registers, boundary, days
from headend.analytics.peers import hourly_shape, peer_evidence
from headend.analytics.settings import AnalyticsSettings
from headend.analytics.suspects import IDLE_KWH, MeterDays, rank_suspects
from headend.analytics.trend import flag_sudden_changes
from headend.db.engine import reading, writing
from protocols.quantities import ENERGY_EXPORT_TOTAL, ENERGY_TOTAL

NIGHT = "energy.active.import.t4"  # valley tariff: night hours in the usual TOU tables
MAX_DAYS = 370


@dataclass
class Summary:
    """What a recompute did."""

    areas: list[str] = field(default_factory=list)
    days: int = 0
    losses: int = 0
    suspects: int = 0
    rates: int = 0


def recompute(
    engine: Engine,
    settings: AnalyticsSettings,
    first: date,
    last: date,
    now: datetime,
    areas: Sequence[str] | None = None,
) -> Summary:
    """Recompute ``first``…``last`` for ``areas`` (default: every area of the period)."""
    if last < first:
        raise AnalyticsInputError("'to' must not be before 'from'")
    if (last - first).days >= MAX_DAYS:
        raise AnalyticsInputError(f"recompute at most {MAX_DAYS} days at a time")
    zone = settings.tz
    t0, t1 = boundary(first, zone), boundary(last + timedelta(days=2), zone)
    with reading(engine) as conn:
        known = repo.area_ids(conn, t0, t1)
    chosen = known if areas is None else [a for a in areas if a in known]
    summary = Summary(areas=chosen, days=(last - first).days + 1)
    for area in chosen:
        with writing(engine) as conn:
            _area(conn, settings, area, first, last, now, summary)
    return summary


def _area(
    conn: Connection,
    settings: AnalyticsSettings,
    area: str,
    first: date,
    last: date,
    now: datetime,
    summary: Summary,
) -> None:
    zone = settings.tz
    month_first = month_bounds(first)[0]
    window_first = min(month_first, last - timedelta(days=settings.suspect_days - 1))
    history_first = window_first - timedelta(days=7)
    end = last + timedelta(days=1)
    t0, t1 = boundary(history_first, zone), boundary(end + timedelta(days=1), zone)
    pts = repo.points(conn, area, t0, t1)
    ids = sorted({s.meter for p in pts for s in p.meters})
    changes = [s.start for p in pts for s in p.meters if s.start_read and s.start is not None]
    changes += [s.end for p in pts for s in p.meters if s.end_read and s.end is not None]
    gap = settings.max_gap
    regs = repo.registers(conn, ids, history_first, end, zone, gap, extra=changes)
    needs = {s.meter for p in pts for s in p.meters if p.pv}
    if needs:
        needs |= {s.meter for p in pts for s in p.meters if p.role == "area_total"}
    exports = repo.registers(
        conn, ids, history_first, end, zone, gap, ENERGY_EXPORT_TOTAL, changes, needs
    )
    band = repo.band_of(conn, area, (settings.default_band_low, settings.default_target))
    target = band[1]

    def loss(start: date, stop: date) -> LossResult:
        return area_loss(
            area, pts, regs, start, stop, zone, band=band, max_gap=gap, exports=exports
        )

    daily: dict[date, LossResult] = {}
    for d in days(history_first, end):
        r = loss(d, d + timedelta(days=1))
        daily[d] = flag_sudden_changes(list(daily.values()), r, threshold=settings.sudden_change)
    rows: list[tuple[str, LossResult, Decimal | None]] = [
        ("day", daily[d], target) for d in days(first, end)
    ]
    month = month_first
    while month <= last:
        m_end = min(month_bounds(month)[1], end)
        rows.append(("month", loss(month, m_end), target))
        month = month_bounds(month)[1]
    store.save_losses(conn, rows, now)
    summary.losses += len(rows)

    window = days(last - timedelta(days=settings.suspect_days - 1), end)
    _suspects(conn, settings, area, pts, daily, window, now, summary)
    _collection(conn, settings, area, first, end, now, summary)
    _quality(conn, settings, area, pts, regs, daily, window, now)


def _suspects(
    conn: Connection,
    settings: AnalyticsSettings,
    area: str,
    pts: list[Point],
    daily: dict[date, LossResult],
    window: list[date],
    now: datetime,
    summary: Summary,
) -> None:
    zone = settings.tz
    loss = {d: r.loss for d in window if (r := daily[d]).loss is not None}
    supply = {d: r.supply for d in window if (r := daily[d]).supply is not None}
    step = timedelta(minutes=settings.interval_minutes)
    t0, t1 = boundary(window[0], zone), boundary(window[-1] + timedelta(days=1), zone)
    p0 = max(window[0], window[-1] - timedelta(days=settings.profile_days - 1))
    customers = [p for p in pts if p.role == "customer"]
    totals = [p.meters[-1].meter for p in pts if p.role == "area_total"]
    ids = [p.meters[-1].meter for p in customers]
    exporting = {p.meters[-1].meter for p in customers if p.pv} | set(totals)
    got = aggregates.window(conn, ids + totals, days(p0, window[-1] + timedelta(days=1)), zone,
                            step, now, stored=settings.interval_aggregates,
                            exporting=exporting)  # fmt: skip
    relays, lives = series.sparse_facts(
        conn, ids + totals, set(got.low_voltage), boundary(p0, zone), t1 + step, step, t0,
        (got.opened, boundary(p0, zone), t1),  # the window's days: relay opened, per day
    )  # fmt: skip
    intervals = {
        m: MeterIntervals(m, voltage=got.low_voltage.get(m, {}), live=lives.get(m, {}),
                          relay_open=relays.get(m, {}))
        for m in ids + totals
    }  # fmt: skip
    pv = frozenset(p.meters[-1].meter for p in customers if p.pv)
    loads = {m: got.loads.get(m, {}) for m in ids}
    area_load = got.loads.get(totals[0], {}) if len(totals) == 1 else None
    volts = (  # every meter's voltage: the fit's line drops (interval_evidence checks coverage)
        Voltages(got.voltages.get(totals[0], {}), {m: got.voltages.get(m, {}) for m in ids})
        if area_load
        else None
    )
    extra = interval_evidence(
        intervals, {}, ids, totals, step, t1, pv, neutral=got.neutral, loads=loads,
        area_load=area_load, export_loads={m: v for m, v in got.exports.items() if m in exporting},
        voltages=volts,
    )  # fmt: skip
    history_days = sorted(d for d in daily if d < window[0])
    by_point = {d: {e.point: e for e in daily[d].points} for d in (*history_days, *window)}
    exported = repo.daily_deltas_of(conn, ids, ENERGY_EXPORT_TOTAL, window[0], window[-1], zone)
    nights = repo.daily_deltas_of(conn, ids, NIGHT, window[0], window[-1], zone)
    facts = []
    for p in customers:
        meter = p.meters[-1].meter
        energy: dict[date, Decimal] = {}
        history: dict[date, Decimal] = {}
        for d in (*history_days, *window):
            pe = by_point[d].get(p.point)
            if pe is not None and pe.energy is not None:
                (history if d < window[0] else energy)[d] = pe.energy
        relay = intervals[meter].relay_open if meter in intervals else {}
        off = frozenset(
            d
            for d in window
            if _all_open(relay, boundary(d, zone), boundary(d + timedelta(days=1), zone))
        )
        facts.append(
            MeterDays(meter, p.point, energy, exported[meter], nights[meter], p.pv, off, history)
        )
    facts = _longer_history(conn, settings, facts, {p.meters[-1].meter: p for p in customers})
    rates = [r.rate for d in window if (r := daily[d]).rate is not None]
    band = daily[window[-1]].band
    excess = bool(rates and band and sum(rates) / len(rates) > band[1])
    if excess:  # a long-standing theft has no change point: compare with similar customers
        shapes = {m: shape for m, v in loads.items() if (shape := hourly_shape(v, zone, step))}
        groups = {p.meters[-1].meter: (p.category, p.model) for p in customers}
        for m, found in peer_evidence(facts, shapes, groups).items():
            extra.setdefault(m, []).extend(found)
    ranked = rank_suspects(
        facts,
        {d: v for d, v in loss.items() if v is not None},
        {d: v for d, v in supply.items() if v is not None},
        events=repo.meter_events(conn, ids, t0, t1),
        instants=repo.anomalous_instants(conn, ids, t0, t1),
        inspections=repo.latest_inspections(conn, ids),
        extra=extra,
    )
    store.save_suspects(conn, area, window[-1], ranked, now)
    summary.suspects += len(ranked)


def _longer_history(
    conn: Connection,
    settings: AnalyticsSettings,
    facts: list[MeterDays],
    points: Mapping[str, Point],
) -> list[MeterDays]:
    """Give the meters that now look stopped their own daily energy of the last
    ``vacancy_history_days`` (a holiday home's gap of last season damps the evidence)."""
    idle = [f for f in facts if sum(1 for v in f.energy.values() if v < IDLE_KWH) >= 2]
    if not idle or settings.vacancy_history_days == 0:
        return facts
    first_known = min(min(f.energy, default=date.max) for f in idle)
    if first_known == date.max:
        return facts
    since = first_known - timedelta(days=settings.vacancy_history_days)
    older = repo.daily_deltas_of(
        conn, [f.meter for f in idle], ENERGY_TOTAL, since, first_known - timedelta(days=1),
        settings.tz,
    )  # fmt: skip
    out = []
    for f in facts:
        more = older.get(f.meter)
        if more:
            mult = points[f.meter].meters[-1].multiplier
            merged = {**{d: v * mult for d, v in more.items()}, **f.history}
            f = replace(f, history=merged)
        out.append(f)
    return out


def _all_open(relay: Mapping[datetime, bool], t0: datetime, t1: datetime) -> bool:
    states = [v for t, v in relay.items() if t0 <= t <= t1]
    return bool(states) and all(states)


def _collection(
    conn: Connection,
    settings: AnalyticsSettings,
    area: str,
    first: date,
    end: date,
    now: datetime,
    summary: Summary,
) -> None:
    zone = settings.tz
    for d in days(first, end + timedelta(days=1)):
        at = boundary(d, zone)
        due = repo.due_meters(conn, area, at)
        facts = repo.frozen_facts(
            conn, [x.meter for x in due], "energy.active.import.total", d, d, zone
        )
        frozen = {m: f[d] for m, f in facts.items() if d in f}
        online = {}
        for gw in {x.gateway for x in due if x.gateway}:
            online[gw] = collection.online_rate(
                repo.sessions(conn, gw, at + timedelta(days=1)), at, at + timedelta(days=1)
            )
        rates = collection.collection_rates(
            d, due, frozen, zone, online=online, cutoff=settings.collection_cutoff
        )
        store.save_rates(conn, rates, now)
        summary.rates += len(rates)


def _quality(
    conn: Connection,
    settings: AnalyticsSettings,
    area: str,
    pts: list[Point],
    regs: dict[str, Registers],
    daily: dict[date, LossResult],
    window: list[date],
    now: datetime,
) -> None:
    zone = settings.tz
    as_of = window[-1] + timedelta(days=1)  # the latest freeze date in the window
    supplied = {d: bool(r.supply) for d, r in daily.items()}
    frozen = {
        span.meter: {
            d: v
            for d, v in regs.get(span.meter, Registers()).frozen.items()
            if d in supplied or d == as_of
        }
        for p in pts
        for span in p.meters
    }
    # the supply and load state of meters whose register stood still (a relay opened for
    # arrears, an empty home) is read for those meters only
    still = [m for m, v in frozen.items() if len(set(v.values())) < len(v)]
    state = series.supply_days(
        conn, still, boundary(min(supplied, default=as_of), zone), boundary(as_of, zone), zone
    )
    flags = []
    for p in pts:
        for span in p.meters:
            values = frozen[span.meter]
            opened, peaks = state.get(span.meter, (set(), {}))
            flags += [
                f
                for f in collection.reading_checks(
                    span.meter,
                    values,
                    max_kwh_per_day=settings.max_kwh_per_day,
                    supplied=supplied,
                    stopped_days=settings.stopped_days,
                    relay_open=opened,
                    peak_current=peaks,
                )
                if f.day >= window[0]
            ]
    due = {x.meter: x for x in repo.due_meters(conn, area, boundary(as_of, zone))}
    obtained = {m: set(regs[m].frozen) if m in regs else set() for m in due}
    since = {
        s.meter: s.start.astimezone(zone).date() + timedelta(days=1)
        for p in pts
        for s in p.meters
        if s.start is not None
    }
    failing = collection.failing_meters(
        {m: collection.Due(m, area, x.gateway, x.role) for m, x in due.items()},
        obtained,
        as_of,
        window=settings.failing_window,
        min_missing=settings.failing_min_missing,
        since=since,
    )
    store.save_quality(conn, area, window[-1], flags, failing, now)
