"""Line loss of a transformer area over a period, from daily frozen registers.

For each metering point the energy over ``[T0, T1)`` is the sum over its meters' spans of
``(register at span end − register at span start) × multiplier``; a replacement inside the period
contributes ``old_final − old(T0)`` and ``new(T1) − new_start``.  A register at a day boundary is
the daily frozen value of that date, else (flagged ``interpolated``) a linear interpolation
between interval readings at most ``max_gap`` apart around it, else missing.

supply = Σ area-total points, sales = Σ customer points, loss = supply − sales (exact Decimal),
rate = loss / supply.  A point with missing or backwards data is *invalid*: it lowers coverage
and is never counted as zero; loss and rate are given only when every point is valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from headend.analytics.model import MeterSpan, Method, Point, Registers, boundary

DEFAULT_MAX_GAP = timedelta(hours=2)
NOT_IN_FORCE = "no meter in force"
RATE_PLACES = Decimal("0.0001")  # rates as fractions with 4 places (0.01 percentage point)


class Flag:
    """Flags on a line-loss result."""

    INCOMPLETE = "incomplete"  # some customer point has no valid energy
    NO_SUPPLY = "no_supply"  # the area total meter has no valid energy (or none exists)
    INTERPOLATED = "interpolated"  # some value came from interval readings, not a freeze
    HIGH_LOSS = "high_loss"  # rate above the area's target
    NEGATIVE_LOSS = "negative_loss"  # mapping, multiplier or unaligned readings
    SUDDEN_CHANGE = "sudden_change"  # rate far from the recent average
    REPLACEMENT = "replacement"  # a meter replacement inside the period


@dataclass(frozen=True)
class PointEnergy:
    """A point's energy over the period, or why there is none."""

    point: str
    role: str
    meters: tuple[str, ...]
    energy: Decimal | None
    method: Method | None
    reason: str | None = None  # missing:<meter>@<date> | backwards:<meter> | …
    replaced: bool = False


@dataclass(frozen=True)
class LossResult:
    """Supply, sales and loss of one area over ``[start, end)`` with how it was obtained."""

    area: str
    start: date
    end: date
    supply: Decimal | None
    sales: Decimal | None  # Σ valid customer points (a partial sum when incomplete)
    loss: Decimal | None
    rate: Decimal | None  # loss / supply, a fraction
    coverage: Decimal  # valid points / all points
    points_total: int
    points_valid: int
    method: Method | None
    flags: tuple[str, ...]
    points: tuple[PointEnergy, ...] = field(default=(), repr=False)

    @property
    def missing(self) -> list[str]:
        """Points without valid energy."""
        return [p.point for p in self.points if p.energy is None]


@dataclass(frozen=True)
class _Value:
    value: Decimal
    method: Method


def register_at(
    regs: Registers, day: date, instant: datetime, max_gap: timedelta = DEFAULT_MAX_GAP
) -> _Value | None:
    """The register at the boundary of ``day``: frozen, else interpolated, else None."""
    frozen = regs.frozen.get(day)
    if frozen is not None:
        return _Value(frozen, Method.DAILY_FROZEN)
    return interpolate(regs.interval, instant, max_gap)


def interpolate(
    series: Sequence[tuple[datetime, Decimal]], instant: datetime, max_gap: timedelta
) -> _Value | None:
    """Linear interpolation at ``instant`` between the readings around it (≤ ``max_gap``)."""
    before: tuple[datetime, Decimal] | None = None
    after: tuple[datetime, Decimal] | None = None
    for t, v in series:
        if t <= instant:
            before = (t, v)
        else:
            after = (t, v)
            break
    if before is not None and before[0] == instant:
        return _Value(before[1], Method.INTERPOLATED)
    if before is None or after is None or after[0] - before[0] > max_gap:
        return None
    span = Decimal((after[0] - before[0]).total_seconds())
    part = Decimal((instant - before[0]).total_seconds())
    return _Value(before[1] + (after[1] - before[1]) * part / span, Method.INTERPOLATED)


def point_energy(
    point: Point,
    registers: Mapping[str, Registers],
    start: date,
    end: date,
    zone: ZoneInfo,
    max_gap: timedelta = DEFAULT_MAX_GAP,
) -> PointEnergy:
    """The energy of ``point`` over ``[start, end)`` (multipliers applied)."""
    t0, t1 = boundary(start, zone), boundary(end, zone)
    total = Decimal(0)
    method = Method.DAILY_FROZEN
    used: list[str] = []
    spans = [s for s in point.meters if _overlaps(s, t0, t1)]
    if not spans:
        return PointEnergy(point.point, point.role, (), None, None, NOT_IN_FORCE)
    for span in spans:
        used.append(span.meter)
        regs = registers.get(span.meter, Registers())
        ends: list[Decimal] = []
        for edge, day, instant, fixed in (
            ("start", start, t0, span.start_value),
            ("end", end, t1, span.end_value),
        ):
            inside = span.start if edge == "start" else span.end
            if inside is not None and t0 < inside < t1:
                # installed or removed inside the period: the replacement's recorded register
                if fixed is None:
                    return _invalid(point, used, f"no {edge} register:{span.meter}")
                ends.append(fixed)
                continue
            found = register_at(regs, day, instant, max_gap)
            if found is None:
                return _invalid(point, used, f"missing:{span.meter}@{day.isoformat()}")
            if found.method is Method.INTERPOLATED:
                method = Method.INTERPOLATED
            ends.append(found.value)
        delta = ends[1] - ends[0]
        if delta < 0:
            return _invalid(point, used, f"backwards:{span.meter}")
        total += delta * span.multiplier
    return PointEnergy(point.point, point.role, tuple(used), total, method, replaced=len(spans) > 1)


def _overlaps(span: MeterSpan, t0: datetime, t1: datetime) -> bool:
    return (span.start is None or span.start < t1) and (span.end is None or span.end > t0)


def _invalid(point: Point, used: list[str], reason: str) -> PointEnergy:
    return PointEnergy(point.point, point.role, tuple(used), None, None, reason)


def area_loss(
    area: str,
    points: Iterable[Point],
    registers: Mapping[str, Registers],
    start: date,
    end: date,
    zone: ZoneInfo,
    *,
    target: Decimal | None = None,
    negative_tolerance: Decimal = Decimal("0.005"),
    max_gap: timedelta = DEFAULT_MAX_GAP,
) -> LossResult:
    """Supply, sales, loss and rate of ``area`` over ``[start, end)``."""
    energies = tuple(
        e
        for p in sorted(points, key=lambda p: (p.role != "area_total", p.point))
        if (e := point_energy(p, registers, start, end, zone, max_gap)).reason != NOT_IN_FORCE
    )  # a point commissioned after the period (or removed before it) is not part of it
    supplies = [e for e in energies if e.role == "area_total"]
    customers = [e for e in energies if e.role != "area_total"]
    valid = [e for e in energies if e.energy is not None]
    flags: list[str] = []
    supply: Decimal | None = None
    if supplies and all(e.energy is not None for e in supplies):
        supply = sum((e.energy for e in supplies if e.energy is not None), Decimal(0))
    else:
        flags.append(Flag.NO_SUPPLY)
    sales = sum((e.energy for e in customers if e.energy is not None), Decimal(0))
    complete = all(e.energy is not None for e in customers)
    if not complete:
        flags.append(Flag.INCOMPLETE)
    methods = {e.method for e in valid}
    method = (
        None
        if not valid
        else (Method.INTERPOLATED if Method.INTERPOLATED in methods else Method.DAILY_FROZEN)
    )
    if method is Method.INTERPOLATED:
        flags.append(Flag.INTERPOLATED)
    if any(e.replaced for e in energies):
        flags.append(Flag.REPLACEMENT)
    loss = rate = None
    if supply is not None and complete:
        loss = supply - sales
        if supply > 0:
            rate = (loss / supply).quantize(RATE_PLACES)
            if target is not None and rate > target:
                flags.append(Flag.HIGH_LOSS)
            if rate < -negative_tolerance:
                flags.append(Flag.NEGATIVE_LOSS)
        elif loss < 0:
            flags.append(Flag.NEGATIVE_LOSS)
    coverage = Decimal(len(valid)) / Decimal(len(energies)) if energies else Decimal(0)
    return LossResult(
        area=area,
        start=start,
        end=end,
        supply=supply,
        sales=sales if customers else None,
        loss=loss,
        rate=rate,
        coverage=coverage.quantize(RATE_PLACES),
        points_total=len(energies),
        points_valid=len(valid),
        method=method,
        flags=tuple(flags),
        points=energies,
    )


def daily_losses(
    area: str,
    points: Sequence[Point],
    registers: Mapping[str, Registers],
    first: date,
    last: date,
    zone: ZoneInfo,
    *,
    target: Decimal | None = None,
    max_gap: timedelta = DEFAULT_MAX_GAP,
) -> list[LossResult]:
    """One result per day in ``[first, last]``."""
    out = []
    day = first
    while day <= last:
        nxt = day + timedelta(days=1)
        out.append(
            area_loss(area, points, registers, day, nxt, zone, target=target, max_gap=max_gap)
        )
        day = nxt
    return out


def month_bounds(day: date) -> tuple[date, date]:
    """The first day of ``day``'s month and of the next month."""
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt


def flag_sudden_changes(
    history: Sequence[LossResult],
    result: LossResult,
    *,
    window: int = 7,
    threshold: Decimal = Decimal("0.03"),
    min_history: int = 3,
) -> LossResult:
    """Add ``sudden_change`` when ``result``'s rate is ``threshold`` from the recent mean."""
    rates = [r.rate for r in history if r.rate is not None and r.start < result.start][-window:]
    if result.rate is None or len(rates) < min_history:
        return result
    mean = sum(rates, Decimal(0)) / len(rates)
    if abs(result.rate - mean) >= threshold and Flag.SUDDEN_CHANGE not in result.flags:
        return replace(result, flags=(*result.flags, Flag.SUDDEN_CHANGE))
    return result


@dataclass(frozen=True)
class Trend:
    """Daily rates, their moving average and the least-squares slope (fraction per day)."""

    days: tuple[date, ...]
    rates: tuple[Decimal | None, ...]
    moving_average: tuple[Decimal | None, ...]
    slope_per_day: Decimal | None


def trend(series: Sequence[tuple[date, Decimal | None]], window: int = 7) -> Trend:
    """The trend of daily rates (days without a rate are gaps, not zeros)."""
    ordered = sorted(series, key=lambda r: r[0])
    rates = [r for _, r in ordered]
    averages: list[Decimal | None] = []
    for i in range(len(rates)):
        recent = [r for r in rates[max(0, i - window + 1) : i + 1] if r is not None]
        averages.append(
            (sum(recent, Decimal(0)) / len(recent)).quantize(RATE_PLACES) if recent else None
        )
    xs = [(d - ordered[0][0]).days for d, r in ordered if r is not None]
    ys = [r for r in rates if r is not None]
    slope = None
    if len(xs) >= 2:
        mx = Decimal(sum(xs)) / len(xs)
        my = sum(ys, Decimal(0)) / len(ys)
        den = sum((Decimal(x) - mx) ** 2 for x in xs)
        if den:
            num = sum((Decimal(x) - mx) * (y - my) for x, y in zip(xs, ys, strict=True))
            slope = (num / den).quantize(Decimal("0.000001"))
    return Trend(tuple(d for d, _ in ordered), tuple(rates), tuple(averages), slope)
