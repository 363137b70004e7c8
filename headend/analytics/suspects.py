"""Theft and tamper suspects of one area: a ranked list of meters, each with its evidence.

Evidence (weights in ``WEIGHTS``; a meter's score is the sum of its evidence):

- ``meter_cover_open`` / ``terminal_cover_open``: the meter's own cover events in the window.
- ``reverse_energy``: export energy registered on a customer meter without PV, or negative
  power/current.  A PV customer's export is its generation, not evidence.
- ``stopped``: (almost) no energy on days the area total meter shows supply after earlier
  consumption, on days its relay was *not* open (an arrears disconnection or an open relay is a
  supply state, not a stopped meter); damped to ``VACANCY_DAMPING`` when the meter's own history
  shows an earlier such gap that ended (a seasonal home: holiday flat, migrant worker).
- ``low_vs_peers`` / ``shape_unlike_peers`` (``headend.analytics.peers``): consumption and load
  shape against similar customers, while the area's loss is above its band (a long-standing
  theft has no change point); passed in as ``extra`` evidence.
- ``consumption_drop``: the area's loss rises at a change point and this meter's consumption
  falls at the same point; weighted by how much of the extra loss the drop explains.
- ``day_night``: the share of night (valley tariff) energy changes sharply: consumption that
  vanishes by day.
- ``reading_anomaly``: anomalies reported by the gateway (reverse energy, backwards).
- From interval readings (``headend.analytics.intervals``): ``energy_while_open``,
  ``lost_voltage`` (at the same reading as current), ``neutral_imbalance`` and
  ``loss_follows_load``, passed in as ``extra`` evidence.

An inspection outcome stays with its meter: evidence dated before an inspection that found no
fault counts ``INSPECTED_DISCOUNT`` of its weight (a new event after it counts in full).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from decimal import Decimal
from typing import Any

WEIGHTS = {
    "meter_cover_open": Decimal(40),
    "terminal_cover_open": Decimal(35),
    "reverse_energy": Decimal(45),
    "stopped": Decimal(40),
    "consumption_drop": Decimal(60),
    "day_night": Decimal(15),
    "reading_anomaly": Decimal(20),
    "low_vs_peers": Decimal(30),
    "shape_unlike_peers": Decimal(25),
    "energy_while_open": Decimal(90),
    "lost_voltage": Decimal(50),
    "neutral_imbalance": Decimal(70),
    "loss_follows_load": Decimal(80),
}
VACANCY_DAMPING = Decimal("0.25")
IDLE_KWH = Decimal("0.6")  # a day below this is "no energy" (standby of an empty home)
OUTCOMES = (
    "theft_confirmed",
    "tamper_confirmed",
    "wiring_error",
    "meter_fault",
    "no_fault",
    "other",
)
INSPECTED_DISCOUNT = Decimal("0.25")
LOST_VOLTAGE = Decimal(154)  # 70 % of 220 V
MIN_DROP = Decimal("0.2")  # a consumption drop of at least 20 % …
MIN_MATCH = Decimal("0.3")  # … explaining at least 30 % of the extra loss (and vice versa)
MIN_EXPORT = Decimal("0.1")  # kWh of reverse energy a day that counts
PLACES = Decimal("0.01")


@dataclass(frozen=True)
class MeterDays:
    """A customer point's daily facts (days without valid data are absent, not zero)."""

    meter: str
    point: str
    energy: Mapping[date, Decimal]  # daily import energy, multiplier applied
    export: Mapping[date, Decimal] = field(default_factory=dict)  # daily reverse energy
    night: Mapping[date, Decimal] = field(default_factory=dict)  # daily valley-tariff energy
    pv: bool = False  # rooftop PV in the archive: export is expected
    relay_open: frozenset[date] = frozenset()  # days the relay was reported open (supply off)
    history: Mapping[date, Decimal] = field(default_factory=dict)  # daily energy before


@dataclass(frozen=True)
class EventFact:
    """A stored meter event."""

    meter: str
    type: str
    time: datetime
    details: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class InstantFact:
    """An instantaneous reading (voltage, current, power) of a meter."""

    meter: str
    quantity: str
    time: datetime
    value: Decimal


@dataclass(frozen=True)
class Inspection:
    """The latest inspection of a meter."""

    meter: str
    at: datetime
    outcome: str
    note: str = ""


@dataclass(frozen=True)
class Evidence:
    """One reason a meter is suspect."""

    kind: str
    weight: Decimal
    at: datetime | None
    summary: str
    details: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "weight": str(self.weight),
            "at": self.at.isoformat() if self.at else None,
            "summary": self.summary,
            "details": dict(self.details),
        }


@dataclass(frozen=True)
class Suspect:
    """A ranked suspect meter."""

    meter: str
    point: str
    rank: int
    score: Decimal
    evidence: tuple[Evidence, ...]
    inspection: Inspection | None = None


@dataclass(frozen=True)
class ChangePoint:
    """Where the area's loss rose: first day of the higher level and the extra loss a day."""

    day: date
    excess_per_day: Decimal  # kWh a day above the earlier loss rate applied to the supply
    rate_before: Decimal
    rate_after: Decimal


def _mean(values: Iterable[Decimal]) -> Decimal | None:
    items = list(values)
    return sum(items, Decimal(0)) / len(items) if items else None


def loss_change_point(
    loss: Mapping[date, Decimal],
    supply: Mapping[date, Decimal],
    *,
    min_rise: Decimal = Decimal("0.01"),
    min_before: int = 2,
) -> ChangePoint | None:
    """The split of the loss-rate series with the largest rise (≥ ``min_rise``), if any."""
    days = sorted(d for d in loss if supply.get(d))
    rates = [loss[d] / supply[d] for d in days]
    best: ChangePoint | None = None
    best_stat = Decimal(0)
    for k in range(min_before, len(days)):
        before, after = rates[:k], rates[k:]
        mb, ma = _mean(before), _mean(after)
        assert mb is not None and ma is not None
        rise = ma - mb
        stat = rise * Decimal(len(before) * len(after)).sqrt()
        if rise >= min_rise and stat > best_stat:
            excess = _mean(loss[d] - mb * supply[d] for d in days[k:])
            assert excess is not None
            best_stat = stat
            best = ChangePoint(days[k], excess, mb, ma)
    return best


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(0), tzinfo=UTC)


def _drop(m: MeterDays, cp: ChangePoint | None, area_complete: bool) -> Evidence | None:
    if cp is None:
        return None
    before = _mean(v for d, v in m.energy.items() if d < cp.day)
    # the change day itself may be partial (the scenario started mid-day): judge the days after
    after_days = [d for d in m.energy if d > cp.day] or [d for d in m.energy if d >= cp.day]
    after = _mean(m.energy[d] for d in after_days)
    if before is None or after is None or before <= 0:
        return None
    drop = before - after
    if drop / before < MIN_DROP:
        return None
    excess = cp.excess_per_day if area_complete else Decimal(0)
    match = min(drop, excess) / max(drop, excess) if excess > 0 else Decimal(0)
    if match < MIN_MATCH:
        return None
    weight = (WEIGHTS["consumption_drop"] * match).quantize(PLACES)
    return Evidence(
        "consumption_drop",
        weight,
        _midnight(cp.day),
        f"consumption fell {drop:.2f} kWh/day ({drop / before:.0%}) as the area's loss rose "
        f"{cp.excess_per_day:.2f} kWh/day",
        {
            "from": cp.day.isoformat(),
            "before_kwh_day": str(before.quantize(PLACES)),
            "after_kwh_day": str(after.quantize(PLACES)),
            "area_excess_kwh_day": str(cp.excess_per_day.quantize(PLACES)),
            "area_rate_before": str(cp.rate_before.quantize(Decimal("0.0001"))),
            "area_rate_after": str(cp.rate_after.quantize(Decimal("0.0001"))),
            "match": str(match.quantize(PLACES)),
        },
    )


def _idle(value: Decimal) -> bool:
    return value < IDLE_KWH


def _gap_before(history: Mapping[date, Decimal], at_least: int = 2) -> bool:
    """Whether the meter's own history has ``at_least`` idle days in a row followed by use (a
    seasonal home: it was away as long before, and came back)."""
    run, ended = 0, False
    for d in sorted(history):
        if _idle(history[d]):
            run += 1
        else:
            ended = ended or run >= at_least
            run = 0
    return ended


def _stopped(m: MeterDays, supply: Mapping[date, Decimal]) -> Evidence | None:
    days = sorted(m.energy)
    zero = [
        d
        for d in days
        if _idle(m.energy[d]) and supply.get(d, Decimal(0)) > 0 and d not in m.relay_open
    ]
    used_before = any(not _idle(m.energy[d]) for d in days if zero and d < zero[0])
    if len(zero) < 2 or not used_before:
        return None
    earlier = {**m.history, **{d: v for d, v in m.energy.items() if d < zero[0]}}
    seasonal = _gap_before(earlier, max(2, min(len(zero), 7)))
    weight = WEIGHTS["stopped"] * (VACANCY_DAMPING if seasonal else 1)
    note = " (its own history has such a gap that ended: seasonal?)" if seasonal else ""
    return Evidence(
        "stopped",
        weight.quantize(PLACES),
        _midnight(zero[0]),
        f"no energy on {len(zero)} days while the area was supplied (first {zero[0]}){note}",
        {"days": [d.isoformat() for d in zero], "seasonal": seasonal},
    )


def _reverse(m: MeterDays, instants: Sequence[InstantFact]) -> Evidence | None:
    if m.pv:
        return None
    days = sorted(d for d, v in m.export.items() if v >= MIN_EXPORT)
    negative = [
        i for i in instants if i.quantity.startswith(("power.active", "current.")) and i.value < 0
    ]
    if not days and not negative:
        return None
    total = sum((m.export[d] for d in days), Decimal(0))
    at = _midnight(days[0]) if days else negative[0].time
    return Evidence(
        "reverse_energy",
        WEIGHTS["reverse_energy"],
        at,
        f"reverse energy {total:.2f} kWh on {len(days)} days; {len(negative)} negative readings",
        {"days": [d.isoformat() for d in days], "export_kwh": str(total)},
    )


def _day_night(m: MeterDays, cp_day: date | None) -> Evidence | None:
    shares = {d: m.night[d] / m.energy[d] for d in m.night if m.energy.get(d, Decimal(0)) > 0}
    if len(shares) < 4:
        return None
    days = sorted(shares)
    split = cp_day if cp_day is not None and days[0] < cp_day <= days[-1] else days[len(days) // 2]
    before = _mean(shares[d] for d in days if d < split)
    after = _mean(shares[d] for d in days if d >= split)
    if before is None or after is None or abs(after - before) < Decimal("0.25"):
        return None
    return Evidence(
        "day_night",
        WEIGHTS["day_night"],
        _midnight(split),
        f"night share of consumption moved from {before:.0%} to {after:.0%}",
        {"night_share_before": str(before.quantize(PLACES)), "after": str(after.quantize(PLACES))},
    )


def _events(meter: str, events: Sequence[EventFact]) -> list[Evidence]:
    out = []
    for kind in ("meter_cover_open", "terminal_cover_open", "reading_anomaly"):
        mine = sorted(
            (e for e in events if e.meter == meter and e.type == kind), key=lambda e: e.time
        )
        if not mine:
            continue
        extra = min(len(mine) - 1, 2) * Decimal(5)
        out.append(
            Evidence(
                kind,
                WEIGHTS[kind] + extra,
                mine[-1].time,
                f"{len(mine)} {kind.replace('_', ' ')} event(s), last {mine[-1].time.isoformat()}",
                {"times": [e.time.isoformat() for e in mine], "last": dict(mine[-1].details)},
            )
        )
    return out


def _discount(evidence: Evidence, inspection: Inspection | None) -> Evidence:
    if inspection is None or inspection.outcome != "no_fault":
        return evidence
    if evidence.at is not None and evidence.at > inspection.at:
        return evidence
    return Evidence(
        evidence.kind,
        (evidence.weight * INSPECTED_DISCOUNT).quantize(PLACES),
        evidence.at,
        evidence.summary + f" (before inspection {inspection.at.date()}: no fault)",
        evidence.details,
    )


def rank_suspects(
    meters: Sequence[MeterDays],
    loss: Mapping[date, Decimal],
    supply: Mapping[date, Decimal],
    *,
    events: Sequence[EventFact] = (),
    instants: Sequence[InstantFact] = (),
    inspections: Mapping[str, Inspection] | None = None,
    extra: Mapping[str, Sequence[Evidence]] | None = None,
) -> list[Suspect]:
    """Rank the area's customer meters by the weight of their evidence (highest first).

    ``extra``: evidence found elsewhere (interval readings, peers) per meter."""
    inspections = inspections or {}
    cp = loss_change_point(loss, supply)
    complete = bool(loss)
    by_meter: dict[str, list[InstantFact]] = {}
    for i in instants:
        by_meter.setdefault(i.meter, []).append(i)
    out: list[tuple[Decimal, str, str, tuple[Evidence, ...]]] = []
    for m in meters:
        mine = by_meter.get(m.meter, [])
        found = [
            e
            for e in (
                _drop(m, cp, complete),
                _stopped(m, supply),
                _reverse(m, mine),
                _day_night(m, cp.day if cp else None),
            )
            if e is not None
        ]
        found += _events(m.meter, events)
        found += list((extra or {}).get(m.meter, ()))
        found = [_discount(e, inspections.get(m.meter)) for e in found]
        if not found:
            continue
        ordered = tuple(sorted(found, key=lambda e: -e.weight))
        out.append((sum((e.weight for e in ordered), Decimal(0)), m.meter, m.point, ordered))
    out.sort(key=lambda s: (-s[0], s[1]))
    return [
        Suspect(meter, point, rank, score, evidence, inspections.get(meter))
        for rank, (score, meter, point, evidence) in enumerate(out, start=1)
    ]
