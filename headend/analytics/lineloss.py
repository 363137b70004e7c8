"""Line loss of a transformer area over a period, from daily frozen registers, both directions.

For each metering point and each direction (import = forward, export = reverse) the energy over
``[T0, T1)`` is the sum over its meters' spans of ``(register at span end − register at span
start) × multiplier``; a replacement inside the period contributes ``old_final − old(T0)`` and
``new(T1) − new_start``; a multiplier change of the same meter (a CT change without a
replacement) splits the meter into two spans at the change, the register there read from the
meter itself.  A register at a day boundary is the daily frozen value of that date, else
(flagged ``interpolated``) a linear interpolation between interval readings at most ``max_gap``
apart around it, else missing.

    supply = Σ area-total import + Σ customers' export      (energy into the area)
    sales  = Σ customers' import + Σ area-total export      (energy out of it)
    loss   = supply − sales (exact Decimal),  rate = loss / supply

A point flagged PV must have its export read (else it is invalid); the area total's export is
needed when the area has a PV point; a customer without PV whose export register is not read
counts 0 export, unless its register has been seen rising (a PV home not yet in the archive:
a missing export freeze would turn its generation into 负损, so the point is invalid).
``generation`` points (a PV generation meter behind a customer's own meter) are neither supply
nor sales.  A point with missing or backwards data is *invalid*: it lowers
coverage and is never counted as zero; loss and rate are given only when every point is valid.

The rate is judged against the area's band ``[low, high]``: above ``high`` is ``high_loss``,
below 0 is ``negative_loss`` (负损), between 0 and ``low`` is ``low_loss``; inside the band it
*passes* (合格).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

from headend.analytics.model import MeterSpan, Method, Point, Registers, boundary, local_date_at

DEFAULT_MAX_GAP = timedelta(hours=2)
NOT_IN_FORCE = "no meter in force"
RATE_PLACES = Decimal("0.0001")  # rates as fractions with 4 places (0.01 percentage point)
SUPPLY_ROLE = "area_total"
GENERATION_ROLE = "generation"


class Flag:
    """Flags on a line-loss result."""

    INCOMPLETE = "incomplete"  # some customer point has no valid energy
    NO_SUPPLY = "no_supply"  # the area total meter has no valid energy (or none exists)
    INTERPOLATED = "interpolated"  # some value came from interval readings, not a freeze
    HIGH_LOSS = "high_loss"  # rate above the band's upper bound
    LOW_LOSS = "low_loss"  # 0 ≤ rate below the band's lower bound
    NEGATIVE_LOSS = "negative_loss"  # 负损: mapping, multiplier, unread export, unaligned reads
    SUDDEN_CHANGE = "sudden_change"  # rate far from the recent average
    REPLACEMENT = "replacement"  # a meter replacement inside the period
    MULTIPLIER_CHANGE = "multiplier_change"  # a multiplier changed without a replacement


@dataclass(frozen=True)
class PointEnergy:
    """A point's energy over the period in both directions, or why there is none."""

    point: str
    role: str
    meters: tuple[str, ...]
    energy: Decimal | None  # import
    method: Method | None
    reason: str | None = None  # missing:<meter>@<date> | backwards:<meter> | …
    replaced: bool = False
    export: Decimal | None = None  # None with a valid import: export not read (counted 0)
    rescaled: bool = False  # a multiplier change inside the period


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
    band: tuple[Decimal, Decimal] | None = None  # (low, high) the rate is judged against
    exported: Decimal = Decimal(0)  # customers' export included in supply

    @property
    def missing(self) -> list[str]:
        """Points without valid energy."""
        return [p.point for p in self.points if p.energy is None]

    @property
    def passed(self) -> bool | None:
        """Inside the band (合格); None when there is no rate or no band."""
        if self.rate is None or self.band is None:
            return None
        if self.loss is not None and self.loss < 0:
            return False  # 负损 however small (a rate of −0.0000 after rounding)
        return self.band[0] <= self.rate <= self.band[1]


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


def _read_at(
    regs: Registers, instant: datetime, zone: ZoneInfo, max_gap: timedelta
) -> _Value | None:
    day = local_date_at(instant, zone)
    if day is not None and day in regs.frozen:
        return _Value(regs.frozen[day], Method.DAILY_FROZEN)
    return interpolate(regs.interval, instant, max_gap)


def _direction(
    spans: Sequence[MeterSpan],
    registers: Mapping[str, Registers],
    start: date,
    end: date,
    zone: ZoneInfo,
    max_gap: timedelta,
    export: bool,
) -> tuple[Decimal, Method] | str:
    """One direction's energy of a point's spans (multipliers applied), or why there is none."""
    t0, t1 = boundary(start, zone), boundary(end, zone)
    total = Decimal(0)
    method = Method.DAILY_FROZEN
    generates = export and any(s.pv for s in spans)
    for span in spans:
        if generates and span.pv is False and span.meter not in registers:
            continue  # an import-only meter replaced by a PV meter: it exported nothing
        regs = registers.get(span.meter, Registers())
        whole = (span.start is None or span.start <= t0) and (span.end is None or span.end >= t1)
        if whole:  # the usual case: both daily freezes of the meter itself
            a, b = regs.frozen.get(start), regs.frozen.get(end)
            if a is not None and b is not None:
                if b < a:
                    return f"backwards:{span.meter}"
                total += (b - a) * span.multiplier
                continue
        ends: list[Decimal] = []
        for edge, day, instant, fixed, read in (
            (
                "start",
                start,
                t0,
                span.start_export if export else span.start_value,
                span.start_read,
            ),
            ("end", end, t1, span.end_export if export else span.end_value, span.end_read),
        ):
            inside = span.start if edge == "start" else span.end
            found: _Value | None
            if inside is not None and t0 < inside < t1:
                if read:  # the same meter goes on: its own register at the change
                    found = _read_at(regs, inside, zone, max_gap)
                    if found is None:
                        return f"no register at multiplier change:{span.meter}@{inside.isoformat()}"
                elif fixed is None:  # installed or removed: the replacement's recorded register
                    return f"no {edge} register:{span.meter}"
                else:
                    found = _Value(fixed, Method.DAILY_FROZEN)
            else:
                found = register_at(regs, day, instant, max_gap)
                if found is None:
                    return f"missing:{span.meter}@{day.isoformat()}"
            if found.method is Method.INTERPOLATED:
                method = Method.INTERPOLATED
            ends.append(found.value)
        delta = ends[1] - ends[0]
        if delta < 0:
            return f"backwards:{span.meter}"
        total += delta * span.multiplier
    return total, method


def point_energy(
    point: Point,
    registers: Mapping[str, Registers],
    start: date,
    end: date,
    zone: ZoneInfo,
    max_gap: timedelta = DEFAULT_MAX_GAP,
    exports: Mapping[str, Registers] | None = None,
    need_export: bool | None = None,
) -> PointEnergy:
    """The energy of ``point`` over ``[start, end)`` in both directions (multipliers applied).

    ``need_export`` (default: the point's PV flag): a missing export register makes the point
    invalid; otherwise an unread export counts 0 (``export`` None)."""
    t0, t1 = boundary(start, zone), boundary(end, zone)
    spans = [s for s in point.meters if _overlaps(s, t0, t1)]
    used = tuple(s.meter for s in spans)
    if not spans:
        return PointEnergy(point.point, point.role, (), None, None, NOT_IN_FORCE)
    imported = _direction(spans, registers, start, end, zone, max_gap, export=False)
    if isinstance(imported, str):
        return PointEnergy(point.point, point.role, used, None, None, imported)
    energy, method = imported
    need = point.pv if need_export is None else need_export
    export: Decimal | None = None
    if exports is not None and (need or any(s.meter in exports for s in spans)):
        out = _direction(spans, exports, start, end, zone, max_gap, export=True)
        if isinstance(out, str):
            if need or _generates(spans, exports):  # an unflagged PV home: 0 would be 负损
                return PointEnergy(point.point, point.role, used, None, None, "export " + out)
        else:
            export = out[0]
            if out[1] is Method.INTERPOLATED:
                method = Method.INTERPOLATED
    elif need:
        return PointEnergy(point.point, point.role, used, None, None, "export not read")
    meters = [s.meter for s in spans]
    return PointEnergy(
        point.point,
        point.role,
        used,
        energy,
        method,
        replaced=len(set(meters)) > 1,
        export=export,
        rescaled=len(meters) > len(set(meters)),
    )


def _generates(spans: Sequence[MeterSpan], exports: Mapping[str, Registers]) -> bool:
    """Whether a meter's export register moved in what was read of it (it generates)."""
    for s in spans:
        regs = exports.get(s.meter)
        if regs is not None:
            values = [*regs.frozen.values(), *(v for _, v in regs.interval)]
            if values and max(values) > min(values):
                return True
    return False


def _overlaps(span: MeterSpan, t0: datetime, t1: datetime) -> bool:
    return (span.start is None or span.start < t1) and (span.end is None or span.end > t0)


def band_flags(rate: Decimal, band: tuple[Decimal, Decimal] | None) -> list[str]:
    """``negative_loss`` below 0 (负损), ``low_loss`` below the band, ``high_loss`` above it."""
    if rate < 0:
        return [Flag.NEGATIVE_LOSS]
    if band is None:
        return []
    if rate > band[1]:
        return [Flag.HIGH_LOSS]
    if rate < band[0]:
        return [Flag.LOW_LOSS]
    return []


def area_loss(
    area: str,
    points: Iterable[Point],
    registers: Mapping[str, Registers],
    start: date,
    end: date,
    zone: ZoneInfo,
    *,
    target: Decimal | None = None,
    band: tuple[Decimal, Decimal] | None = None,
    max_gap: timedelta = DEFAULT_MAX_GAP,
    exports: Mapping[str, Registers] | None = None,
) -> LossResult:
    """Supply, sales, loss and rate of ``area`` over ``[start, end)``.

    ``band``: (low, high) the rate is judged against; ``target`` alone means (0, target)."""
    if band is None and target is not None:
        band = (Decimal(0), target)
    ordered = sorted(points, key=lambda p: (p.role != SUPPLY_ROLE, p.point))
    t0, t1 = boundary(start, zone), boundary(end, zone)
    has_pv = any(  # a PV home in force in the period (a generation meter is behind one)
        p.pv and p.role != GENERATION_ROLE and any(_overlaps(s, t0, t1) for s in p.meters)
        for p in ordered
    )
    energies = tuple(
        e
        for p in ordered
        if (
            e := point_energy(
                p, registers, start, end, zone, max_gap, exports,
                need_export=p.pv or (p.role == SUPPLY_ROLE and has_pv),
            )
        ).reason != NOT_IN_FORCE  # commissioned after the period or removed before it
    )  # fmt: skip
    counted = [e for e in energies if e.role != GENERATION_ROLE]
    supplies = [e for e in counted if e.role == SUPPLY_ROLE]
    customers = [e for e in counted if e.role != SUPPLY_ROLE]
    valid = [e for e in counted if e.energy is not None]
    flags: list[str] = []
    supply: Decimal | None = None
    zero = Decimal(0)
    exported = sum((e.export or zero for e in customers if e.energy is not None), zero)
    if supplies and all(e.energy is not None for e in supplies):
        supply = sum((e.energy or zero for e in supplies), zero) + exported
    else:
        flags.append(Flag.NO_SUPPLY)
    sales = sum((e.energy or zero for e in customers), zero)
    sales += sum((e.export or zero for e in supplies), zero)
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
    if any(e.rescaled for e in energies):
        flags.append(Flag.MULTIPLIER_CHANGE)
    loss = rate = None
    if supply is not None and complete:
        loss = supply - sales
        if supply > 0:
            rate = (loss / supply).quantize(RATE_PLACES)
            flags += band_flags(rate, band)
        elif loss < 0:
            flags.append(Flag.NEGATIVE_LOSS)
        if loss < 0 and Flag.NEGATIVE_LOSS not in flags:  # a rate rounded to −0.0000: still 负损
            flags = [f for f in flags if f != Flag.LOW_LOSS] + [Flag.NEGATIVE_LOSS]
    coverage = Decimal(len(valid)) / Decimal(len(counted)) if counted else Decimal(0)
    return LossResult(
        area=area,
        start=start,
        end=end,
        supply=supply,
        sales=sales if customers else None,
        loss=loss,
        rate=rate,
        coverage=coverage.quantize(RATE_PLACES),
        points_total=len(counted),
        points_valid=len(valid),
        method=method,
        flags=tuple(flags),
        points=energies,
        band=band,
        exported=exported,
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
    exports: Mapping[str, Registers] | None = None,
) -> list[LossResult]:
    """One result per day in ``[first, last]``."""
    out = []
    day = first
    while day <= last:
        nxt = day + timedelta(days=1)
        out.append(
            area_loss(
                area, points, registers, day, nxt, zone,
                target=target, max_gap=max_gap, exports=exports,
            )
        )  # fmt: skip
        day = nxt
    return out


def month_bounds(day: date) -> tuple[date, date]:
    """The first day of ``day``'s month and of the next month."""
    first = day.replace(day=1)
    nxt = (first + timedelta(days=32)).replace(day=1)
    return first, nxt
