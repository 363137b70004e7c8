"""Line-loss pass rate (台区线损合格率) across areas, per day or month, from stored results.

An area *passes* a period when its loss rate lies in its band ``[low, high]`` (both stored with
the result); it *fails* when the rate is outside (below 0 is 负损); it is *not assessed* when no
rate could be computed (incomplete data, no supply) or none was (an area of the archive without a
stored result that period).  The pass rate is passed / areas, an
unassessed area counting as not passed (an area whose loss cannot be computed is not 合格);
``assessed_rate`` is passed / assessed for the data-quality-blind view.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

PLACES = Decimal("0.0001")


@dataclass(frozen=True)
class PassRate:
    """The pass rate of one period start across the areas asked for."""

    period: str
    start: str
    areas: int
    assessed: int
    passed: int
    negative: int  # 负损
    high: int
    low: int
    failing: tuple[str, ...]
    unassessed: tuple[str, ...]

    @property
    def rate(self) -> Decimal | None:
        return (Decimal(self.passed) / self.areas).quantize(PLACES) if self.areas else None

    @property
    def computable_rate(self) -> Decimal | None:
        """可算率: areas with a computable loss rate / areas."""
        return (Decimal(self.assessed) / self.areas).quantize(PLACES) if self.areas else None

    @property
    def assessed_rate(self) -> Decimal | None:
        return (Decimal(self.passed) / self.assessed).quantize(PLACES) if self.assessed else None

    def as_dict(self) -> dict[str, Any]:
        return {
            "period": self.period,
            "start": self.start,
            "areas": self.areas,
            "assessed": self.assessed,
            "passed": self.passed,
            "pass_rate": None if self.rate is None else str(self.rate),
            "assessed_pass_rate": None if self.assessed_rate is None else str(self.assessed_rate),
            "computable_rate": None if self.computable_rate is None else str(self.computable_rate),
            "negative": self.negative,
            "high": self.high,
            "low": self.low,
            "failing": list(self.failing),
            "unassessed": list(self.unassessed),
        }


def verdict(row: Mapping[str, Any]) -> str:
    """``pass``, ``negative``, ``high``, ``low`` or ``unassessed`` for one stored result."""
    if row.get("rate") is None:
        return "unassessed"
    rate = Decimal(row["rate"])
    band = (row.get("detail") or {}).get("band")
    low = Decimal(band[0]) if band else Decimal(0)
    high = Decimal(band[1]) if band else Decimal(row["target"]) if row.get("target") else None
    loss = row.get("loss")
    if rate < 0 or (loss is not None and Decimal(loss) < 0):  # a rate rounded to −0.0000
        return "negative"
    if high is not None and rate > high:
        return "high"
    if rate < low:
        return "low"
    return "pass"


def pass_rates(
    rows: Iterable[Mapping[str, Any]],
    expected: Callable[[str, str], Iterable[str]] | None = None,
) -> list[PassRate]:
    """One ``PassRate`` per (period, start) of ``rows`` (stored line-loss results).

    ``expected(period, start)``: the areas that existed then; one without a stored result (its
    recompute failed or never ran: 未计算) is unassessed, not left out of the count."""
    groups: dict[tuple[str, str], dict[str, str]] = {}
    for r in rows:
        groups.setdefault((r["period"], r["start"]), {})[r["area"]] = verdict(r)
    for (period, start), verdicts in groups.items():
        for area in expected(period, start) if expected else ():
            verdicts.setdefault(area, "unassessed")
    out = []
    for (period, start), verdicts in sorted(groups.items()):
        count = {k: sum(1 for v in verdicts.values() if v == k) for k in
                 ("pass", "negative", "high", "low", "unassessed")}  # fmt: skip
        out.append(
            PassRate(
                period,
                start,
                len(verdicts),
                len(verdicts) - count["unassessed"],
                count["pass"],
                count["negative"],
                count["high"],
                count["low"],
                tuple(sorted(a for a, v in verdicts.items() if v not in ("pass", "unassessed"))),
                tuple(sorted(a for a, v in verdicts.items() if v == "unassessed")),
            )
        )
    return out
