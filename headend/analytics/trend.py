"""Loss-rate series over days: the sudden-change flag and the trend (moving average, slope)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import date
from decimal import Decimal

from headend.analytics.lineloss import RATE_PLACES, Flag, LossResult


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
