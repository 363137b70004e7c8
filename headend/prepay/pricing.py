"""Pricing: energy pieces, cutting them in time, and the priced lines of each tariff kind.

``price`` turns a piece of energy inside one tariff version and one tier period into lines:

* flat: one line;
* time-of-use: per-slot lines, from the meter's t1–t4 register deltas when the piece has them
  (``flat_from_total``: the flat slot gets total − sharp − peak − valley, so the lines add up to
  the recorded energy), otherwise by sharing the energy over the local periods in force that day
  (holiday, season or default) in proportion to time;
* tiered: ``stepN`` lines by the account's usage in the tier period so far;
* time-of-use with tiers: the time-of-use lines at the base prices plus ``surchargeN`` lines on
  the total energy by tier step (their price is the step's surcharge per kWh).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from decimal import ROUND_DOWN, Decimal
from typing import Any

from headend.prepay.tariffs import (
    DAY,
    ENERGY,
    SLOTS,
    Definition,
    FlatTariff,
    Split,
    Step,
    TouTariff,
    TouTieredTariff,
)


@dataclass(frozen=True)
class Piece:
    """Energy over ``[start, end)``: the total and, when known, per-slot register energies."""

    start: datetime
    end: datetime
    energy: Decimal
    registers: Mapping[int, Decimal] | None = None


def share_out(total: Decimal, weights: Mapping[int, Decimal]) -> dict[int, Decimal]:
    """``total`` shared in proportion to ``weights``, rounded down to ``ENERGY``; the remainder
    goes to the largest weight, so the shares add up to ``total`` exactly."""
    whole = sum(weights.values(), Decimal(0))
    if not weights:
        return {}
    if whole == 0:
        first = next(iter(weights))
        return {k: (total if k == first else Decimal(0)) for k in weights}
    shares = {
        k: (total * w / whole).quantize(ENERGY, rounding=ROUND_DOWN) for k, w in weights.items()
    }
    biggest = max(weights, key=lambda k: (weights[k], -k))
    shares[biggest] += total - sum(shares.values(), Decimal(0))
    return shares


def cut(piece: Piece, instants: Sequence[datetime]) -> list[Piece]:
    """``piece`` cut at ``instants`` inside it, energy shared in proportion to time."""
    points = sorted({t for t in instants if piece.start < t < piece.end})
    if not points:
        return [piece]
    edges = [piece.start, *points, piece.end]
    spans = {i: Decimal((edges[i + 1] - edges[i]).total_seconds()) for i in range(len(edges) - 1)}
    energies = share_out(piece.energy, spans)
    regs = (
        {k: share_out(v, spans) for k, v in piece.registers.items()}
        if piece.registers is not None
        else None
    )
    pieces = []
    for i in range(len(edges) - 1):
        mine = None if regs is None else {k: shares[i] for k, shares in regs.items()}
        pieces.append(Piece(edges[i], edges[i + 1], energies[i], mine))
    return pieces


@dataclass(frozen=True)
class Line:
    """One priced line of a charge."""

    tariff: str
    slot: str  # "flat", "sharp"…"valley", "step1"…
    energy: Decimal
    price: Decimal
    period: str = ""  # the tier period the energy counts towards ("2026-03", "2026")

    @property
    def amount(self) -> Decimal:
        return self.energy * self.price

    def as_json(self) -> dict[str, str]:
        return {
            "tariff": self.tariff,
            "slot": self.slot,
            "energy": str(self.energy),
            "price": str(self.price),
            "amount": str(self.amount),
            "period": self.period,
        }


def tou_boundaries(tariff: TouTariff, start: datetime, end: datetime, zone: Any) -> list[datetime]:
    """Local period boundaries of ``tariff`` strictly inside ``(start, end)`` (each day's own
    periods, and every local midnight, where the day's periods may change)."""
    found: list[datetime] = []
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        midnight = datetime.combine(day, time(0), zone)
        starts = sorted({p.seconds()[0] % DAY for p in tariff.periods_on(day)} | {0})
        for s in starts:
            t = midnight + timedelta(seconds=s)
            if start < t < end:
                found.append(t)
        day += timedelta(days=1)
    return sorted(found)


def _steps(
    tariff_id: str, steps: Sequence[Step], energy: Decimal, used_before: Decimal, name: str
) -> list[Line]:
    out: list[Line] = []
    lower = Decimal(0)
    top_used = used_before + energy
    for n, step in enumerate(steps, start=1):
        a = max(used_before, lower)
        b = top_used if step.upto is None else min(top_used, step.upto)
        if b > a:
            out.append(Line(tariff_id, f"{name}{n}", b - a, step.price))
        if step.upto is not None:
            lower = step.upto
    return out


def _tou(tariff_id: str, definition: TouTariff, piece: Piece, zone: Any) -> list[Line]:
    if piece.registers is not None:
        regs = dict(piece.registers)
        if definition.flat_from_total:  # 平 = 总 − 尖 − 峰 − 谷
            regs[3] = piece.energy - sum((v for k, v in regs.items() if k != 3), Decimal(0))
        # The meter's own TOU registers, when the tariff prices every register that counted
        # energy; a register the tariff has no price for (a two-period tariff on a four-register
        # meter) means the meter's schedule is not the tariff's: price the total by the tariff's
        # periods instead, never a register's energy at 0.
        if all(k in definition.prices for k, e in regs.items() if e):
            return [
                Line(tariff_id, SLOTS[k], e, definition.prices[k])
                for k, e in sorted(regs.items())
                if e
            ]
    lines: dict[int, Decimal] = {}
    for sub in cut(piece, tou_boundaries(definition, piece.start, piece.end, zone)):
        local = sub.start.astimezone(zone)
        secs = local.hour * 3600 + local.minute * 60 + local.second
        slot = definition.slot_at(secs, local.date())
        lines[slot] = lines.get(slot, Decimal(0)) + sub.energy
    return [Line(tariff_id, SLOTS[k], e, definition.prices[k]) for k, e in sorted(lines.items())]


def price(
    tariff_id: str, definition: Definition, piece: Piece, used_before: Decimal, zone: Any
) -> list[Line]:
    """Price ``piece`` (inside one tariff version and one tier period) under ``definition``.

    ``used_before`` is the consumption already charged under this tariff in the tier period.
    """
    if isinstance(definition, FlatTariff):
        return [Line(tariff_id, "flat", piece.energy, definition.price)]
    if isinstance(definition, TouTieredTariff):
        base = _tou(tariff_id, definition, piece, zone)
        return base + _steps(tariff_id, definition.steps, piece.energy, used_before, "surcharge")
    if isinstance(definition, TouTariff):
        return _tou(tariff_id, definition, piece, zone)
    return _steps(tariff_id, definition.steps, piece.energy, used_before, "step")


def split_energy(
    split: Split | None, main: str, energy: Decimal, used_month: Mapping[str, Decimal]
) -> list[tuple[str, Decimal]]:
    """Share ``energy`` between the split's parts and the ``main`` tariff.

    ``used_month`` is what each fixed-quantity part already received this local month.
    """
    if split is None or energy == 0:
        return [(main, energy)]
    shares: list[tuple[str, Decimal]] = []
    left = energy
    for part in split.parts:
        if split.kind == "ratio":
            assert part.ratio is not None
            e = (energy * part.ratio).quantize(ENERGY, rounding=ROUND_DOWN)
        else:
            assert part.quantity is not None
            e = max(Decimal(0), min(left, part.quantity - used_month.get(part.tariff, Decimal(0))))
        if e:
            shares.append((part.tariff, e))
            left -= e
    shares.append((main, left))
    return shares


__all__ = ["Line", "Piece", "cut", "price", "share_out", "split_energy", "tou_boundaries"]
