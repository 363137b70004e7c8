"""Charges: the energy between consecutive readings of a metering point, priced and keyed.

A charge covers one interval ``[start, end)`` between two consecutive energy readings of the same
physical meter at a metering point, and is keyed by ``(point, start, end)`` (a unique constraint in
the database), so charging is idempotent: the job computes the intervals the readings define
(``chain``) and compares them with the active charges (``reconcile``)::

    readings      a ─────────── c                 a ──── b ──── c   (b back-filled late)
    charges       [a, c) active                   [a, c) reversed, [a, b) and [b, c) charged

A back-filled reading inside a charged interval reverses that charge and charges the two halves,
so the energy is never charged twice and the period total does not change for flat and tiered
tariffs.  A meter replacement (换表) ends the old meter's chain at its final reading and starts the
new meter's at its start reading (表底数): the old meter's energy is final − last reading, the new
meter's is reading − start reading; no interval ever spans two meters.

Energy = register delta × the multiplier of the meter version in force at the interval's end.
A reading lower than the one before it on the same meter is a data-quality problem, not a bill:
it is skipped (and reported) and the next good reading closes the interval.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from headend.prepay.pricing import Line, Piece, cut, price, share_out, split_energy
from headend.prepay.tariffs import (
    FlatTariff,
    Split,
    TariffBook,
    TouTariff,
    TouTieredTariff,
    is_tiered,
)
from headend.vee.rules import Sample

Key = tuple[datetime, datetime]


@dataclass(frozen=True)
class Replacement:
    """A meter change at a point: the old meter's final and the new meter's start readings."""

    old_meter: str
    new_meter: str
    at: datetime
    old_final: Sample
    new_start: Sample


@dataclass(frozen=True)
class Interval:
    """The energy of one meter between two consecutive readings (multiplier applied)."""

    meter: str
    start: datetime
    end: datetime
    start_value: Decimal
    end_value: Decimal
    multiplier: Decimal
    piece: Piece

    @property
    def key(self) -> Key:
        return (self.start, self.end)


@dataclass
class Chain:
    """The intervals of a point and the readings skipped as not increasing."""

    intervals: list[Interval] = field(default_factory=list)
    skipped: list[tuple[str, datetime, Decimal]] = field(default_factory=list)


def segments(
    readings: Mapping[str, Sequence[Sample]], replacements: Sequence[Replacement]
) -> list[tuple[str, list[Sample]]]:
    """Each meter's samples in time order, cut at replacements (the old meter's segment ends at
    its final reading, the new meter's starts at its start reading)."""
    if not replacements:
        return [(m, sorted(rs, key=lambda s: s.time)) for m, rs in sorted(readings.items())]
    ordered = sorted(replacements, key=lambda r: r.at)
    segments: list[tuple[str, list[Sample]]] = []
    lo: datetime | None = None
    start: Sample | None = None
    meter = ordered[0].old_meter
    for rep in [*ordered, None]:
        hi = rep.at if rep is not None else None
        inside = [
            s
            for s in readings.get(meter, ())
            if (lo is None or s.time > lo) and (hi is None or s.time < hi)
        ]
        samples = ([start] if start is not None else []) + sorted(inside, key=lambda s: s.time)
        if rep is not None:
            samples.append(rep.old_final)
        segments.append((meter, samples))
        if rep is not None:
            lo, start, meter = rep.at, rep.new_start, rep.new_meter
    return segments


def chain(
    readings: Mapping[str, Sequence[Sample]],
    replacements: Sequence[Replacement],
    multiplier: Callable[[str, datetime], Decimal],
) -> Chain:
    """The consecutive-reading intervals of one metering point (see the module docstring)."""
    return chain_segments(segments(readings, replacements), multiplier)


def chain_segments(
    segmented: Sequence[tuple[str, Sequence[Sample]]],
    multiplier: Callable[[str, datetime], Decimal],
) -> Chain:
    """The intervals of already segmented (and validated) samples."""
    out = Chain()
    for meter, samples in segmented:
        prev: Sample | None = None
        for s in samples:
            if prev is not None and s.time <= prev.time:
                continue  # the same instant read twice (e.g. interval and frozen)
            if prev is not None and s.total < prev.total:
                out.skipped.append((meter, s.time, s.total))
                continue
            if prev is not None:
                mult = multiplier(meter, s.time)
                regs = None
                if prev.registers is not None and s.registers is not None:
                    deltas = {
                        k: s.registers[k] - prev.registers.get(k, s.registers[k])
                        for k in s.registers
                    }
                    if all(v >= 0 for v in deltas.values()) and set(deltas) == set(prev.registers):
                        regs = {k: v * mult for k, v in deltas.items()}
                piece = Piece(prev.time, s.time, (s.total - prev.total) * mult, regs)
                out.intervals.append(
                    Interval(meter, prev.time, s.time, prev.total, s.total, mult, piece)
                )
            prev = s
    out.intervals.sort(key=lambda i: (i.start, i.end))
    return out


@dataclass(frozen=True)
class Plan:
    """What to do so the active charges match the readings: reverse, then create."""

    reverse: list[Key]
    create: list[Interval]


def _overlap(a: Key, b: Key) -> bool:
    return a[0] < b[1] and b[0] < a[1]


def reconcile(
    desired: Iterable[Interval], active: Iterable[Key], retired: Iterable[Key] = ()
) -> Plan:
    """Active charges that the readings no longer define are reversed; missing ones created.

    ``retired`` are keys charged once and reversed: never charged again.
    """
    want = {i.key: i for i in desired}
    have = set(active)
    gone = set(retired)
    reverse = sorted(k for k in have if k not in want and any(_overlap(k, w) for w in want))
    kept = have - set(reverse)
    create = [
        i
        for k, i in sorted(want.items())
        if k not in have and k not in gone and not any(_overlap(k, h) for h in kept)
    ]
    return Plan(reverse, create)


@dataclass(frozen=True)
class PointPlan:
    """How a metering point is charged: its own tariff and an optional split."""

    tariff: str
    split: Split | None = None


class Usage:
    """Energy already charged per (tariff, tier period) before an instant (for tiers, 定量)."""

    def __init__(self, lines: Iterable[tuple[datetime, str, str, Decimal]] = ()) -> None:
        self._rows: list[tuple[datetime, str, str, Decimal]] = list(lines)

    def before(self, t: datetime, tariff: str, period: str) -> Decimal:
        return sum(
            (e for end, tr, p, e in self._rows if end <= t and tr == tariff and p == period),
            Decimal(0),
        )

    def add(self, end: datetime, lines: Iterable[Line]) -> None:
        for line in lines:
            self._rows.append((end, line.tariff, line.period, line.energy))


YearStart = tuple[int, int]  # (month, day) the tier year starts on, local


def tier_year(local: datetime, year_start: YearStart = (1, 1)) -> int:
    """The tier year a local instant falls in, named by the calendar year it starts in."""
    month, day = year_start
    return local.year if (local.month, local.day) >= (month, day) else local.year - 1


def period_of(definition: Any, local: datetime, year_start: YearStart = (1, 1)) -> str:
    """The tier period a local instant belongs to (a yearly tier counts by the tier year)."""
    if is_tiered(definition) and definition.period == "yearly":
        return str(tier_year(local, year_start))
    return f"{local:%Y-%m}"


def _boundaries(start: datetime, end: datetime, zone: Any) -> list[datetime]:
    """Local month starts inside ``(start, end)``."""
    found: list[datetime] = []
    local = start.astimezone(zone)
    month = local.replace(day=1, hour=0, minute=0, second=0, microsecond=0)
    while True:
        nxt = (month + timedelta(days=32)).replace(day=1)
        month = datetime(nxt.year, nxt.month, 1, tzinfo=zone)
        if month >= end:
            return found
        found.append(month)


def price_interval(
    plan: PointPlan,
    book: TariffBook,
    zone: Any,
    interval: Interval,
    usage: Usage,
    year_start: YearStart = (1, 1),
) -> list[Line]:
    """The priced lines of ``interval`` (cut at month starts and tariff changes first)."""
    tariffs = [plan.tariff, *(p.tariff for p in (plan.split.parts if plan.split else ()))]
    cuts = _boundaries(interval.start, interval.end, zone)
    for t in tariffs:
        cuts += book.changes(t, interval.start, interval.end)
    lines: list[Line] = []
    running = Usage()
    for piece in cut(interval.piece, cuts):
        local = piece.start.astimezone(zone)
        month = f"{local:%Y-%m}"
        quota = {
            p.tariff: usage.before(piece.start, "split:" + p.tariff, month)
            + running.before(piece.start, "split:" + p.tariff, month)
            for p in (plan.split.parts if plan.split else ())
        }
        shares = split_energy(plan.split, plan.tariff, piece.energy, quota)
        weights = {n: e for n, (_, e) in enumerate(shares)}
        regs = (
            {k: share_out(v, weights) for k, v in piece.registers.items()}
            if piece.registers is not None
            else None
        )
        for n, (tariff, energy) in enumerate(shares):
            if tariff != plan.tariff and plan.split is not None and plan.split.kind == "quantity":
                quota_line = Line("split:" + tariff, "quota", energy, Decimal(0), month)
                running.add(piece.end, [quota_line])
                lines.append(quota_line)
            part = Piece(
                piece.start,
                piece.end,
                energy,
                None if regs is None else {k: s[n] for k, s in regs.items()},
            )
            version = book.at(tariff, piece.start)
            definition = version.definition
            period = period_of(definition, local, year_start)
            used = usage.before(piece.start, tariff, period) + running.before(
                piece.start, tariff, period
            )
            # TOU base lines of a TOU-with-tiers tariff count towards no tier period: only the
            # surcharge lines carry the total energy into the tiers (never twice).
            priced = [
                Line(
                    ln.tariff,
                    ln.slot,
                    ln.energy,
                    ln.price,
                    ""
                    if isinstance(definition, TouTieredTariff)
                    and not ln.slot.startswith("surcharge")
                    else period,
                )
                for ln in price(tariff, definition, part, used, zone)
            ]
            running.add(piece.end, priced)
            lines.extend(priced)
    return lines


__all__ = [
    "Chain",
    "FlatTariff",
    "Interval",
    "Key",
    "Plan",
    "PointPlan",
    "Replacement",
    "Sample",
    "TouTariff",
    "Usage",
    "chain",
    "price_interval",
    "reconcile",
]
