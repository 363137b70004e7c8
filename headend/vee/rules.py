"""The validation rules, pure: one meter's cumulative energy readings in, kept readings and failures
out (no database, no clock).

Each reading is checked against the last reading *kept* before it (the reference), never against a
held one, so a single corrupted value is held alone and the next good reading closes the interval::

    100 ── 101 ── 9101 ── 102 ── 103        9101: plausible_max (9000 kWh in 1 h), held
    kept:  100, 101, 102, 103               intervals 100→101, 101→102, 102→103: 3 kWh

Rules, in order (the first that fails names the failure):

``replacement``   a reading below the meter's recorded start reading (表底数) or the old meter's
                  final reading below its last reading
``monotonic``     the register went down and no roll-over explains it
``rollover``      (not a failure) the register went down from near its top (``digits``: 10^digits
                  wraps to 0) and the wrapped delta is plausible: kept, later values unwrapped
``plausible_max`` more energy than the meter can pass: its maximum power (the rating's maximum
                  current × voltage × phases, or the contract capacity) × the hours × ``margin``
``spike``         more than ``spike_factor`` × the meter's own typical rate (mean of its last
                  ``spike_history`` kept intervals) and above ``spike_floor`` kWh

An operator's resolution overrides the rules for that reading: ``accepted`` keeps it as read,
``corrected`` keeps the corrected value, ``rejected`` drops it (no failure either way).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from decimal import Decimal

RULES = ("replacement", "monotonic", "plausible_max", "spike")
TOP_SHARE = Decimal("0.9")  # a roll-over starts from the top tenth of the register's range


@dataclass(frozen=True)
class Sample:
    """One energy reading: the total register and, when read at the same instant, t1–t4."""

    time: datetime
    total: Decimal
    registers: Mapping[int, Decimal] | None = None


@dataclass(frozen=True)
class Limits:
    """What one meter can plausibly measure, in register units (before the multiplier)."""

    max_kw: Decimal | None = None  # None: no plausible-maximum rule
    digits: int = 6  # integer digits of the energy register (DL/T 645: XXXXXX.XX kWh)
    margin: Decimal = Decimal("1.2")
    tolerance: Decimal = Decimal("0.02")  # two register steps: resolution, never a failure
    spike_factor: Decimal = Decimal(10)
    spike_floor: Decimal = Decimal(5)
    spike_history: int = 24

    @property
    def modulus(self) -> Decimal:
        return Decimal(10) ** self.digits

    def max_energy(self, hours: Decimal) -> Decimal | None:
        if self.max_kw is None:
            return None
        return self.max_kw * hours * self.margin + self.tolerance


@dataclass(frozen=True)
class Resolution:
    """An operator's decision on one reading."""

    state: str  # accepted | corrected | rejected
    value: Decimal | None = None


@dataclass(frozen=True)
class Failure:
    """A reading held by a rule, with the reference it was compared with."""

    meter: str
    time: datetime
    value: Decimal
    rule: str
    detail: str
    previous_time: datetime | None
    previous_value: Decimal | None


@dataclass
class Screened:
    """What ``screen`` kept (values unwrapped after a roll-over) and what it held."""

    kept: list[Sample] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    rollovers: list[datetime] = field(default_factory=list)


def _hours(a: datetime, b: datetime) -> Decimal:
    return Decimal(int((b - a).total_seconds())) / Decimal(3600)


def _unwrap_registers(
    prev: Mapping[int, Decimal] | None, regs: Mapping[int, Decimal] | None, modulus: Decimal
) -> dict[int, Decimal] | None:
    if regs is None or prev is None:
        return None if regs is None else dict(regs)
    out = {}
    for k, v in regs.items():
        before = prev.get(k)
        while before is not None and v < before and before - v > modulus * TOP_SHARE:
            v += modulus
        out[k] = v
    return out


def screen(
    meter: str,
    samples: Sequence[Sample],
    limits: Limits,
    *,
    resolutions: Mapping[datetime, Resolution] | None = None,
    history: Sequence[Decimal] = (),
    replacement_times: frozenset[datetime] = frozenset(),
) -> Screened:
    """Check ``samples`` (one meter, oldest first; the first is the trusted reference).

    ``history`` holds the meter's recent kept rates (register kWh per hour) before the first
    sample, for the spike rule.  ``replacement_times`` are the instants of samples that come from
    a replacement record (the old meter's final, the new meter's start).
    """
    resolutions = resolutions or {}
    out = Screened()
    rates = list(history)
    offset = Decimal(0)
    ref: Sample | None = None
    for raw in samples:
        decided = resolutions.get(raw.time)
        if decided is not None and decided.state == "rejected":
            continue
        value = raw.total
        if decided is not None and decided.state == "corrected" and decided.value is not None:
            value = decided.value
        s = replace(raw, total=value + offset)
        if ref is None:
            out.kept.append(s)
            ref = s
            continue
        if s.time <= ref.time:
            continue  # the same instant read twice
        if decided is not None:  # accepted or corrected by an operator: kept as decided
            if s.total < ref.total:  # an accepted decrease starts a new base
                offset += ref.total - s.total
                s = replace(s, total=ref.total)
            out.kept.append(s)
            ref = s
            continue
        hours = _hours(ref.time, s.time)
        delta = s.total - ref.total
        rolled = False
        if delta < 0:
            wrapped = delta + limits.modulus
            top = limits.max_energy(hours)
            near_top = ref.total - offset >= limits.modulus * TOP_SHARE
            if near_top and wrapped >= 0 and (top is None or wrapped <= top):
                rolled, delta = True, wrapped
            else:
                rule = (
                    "replacement"
                    if ref.time in replacement_times or raw.time in replacement_times
                    else "monotonic"
                )
                out.failures.append(
                    Failure(
                        meter,
                        raw.time,
                        raw.total,
                        rule,
                        f"{raw.total} is below the previous reading {ref.total - offset}",
                        ref.time,
                        ref.total - offset,
                    )
                )
                continue
        failure = _size_rules(limits, hours, delta, rates)
        if failure is not None:
            rule, detail = failure
            out.failures.append(
                Failure(meter, raw.time, raw.total, rule, detail, ref.time, ref.total - offset)
            )
            continue
        if rolled:
            offset += limits.modulus
            s = replace(s, total=value + offset)
            out.rollovers.append(s.time)
        s = replace(s, registers=_unwrap_registers(ref.registers, s.registers, limits.modulus))
        if hours > 0:
            rates.append(delta / hours)
        out.kept.append(s)
        ref = s
    return out


def _size_rules(
    limits: Limits, hours: Decimal, delta: Decimal, rates: Sequence[Decimal]
) -> tuple[str, str] | None:
    top = limits.max_energy(hours)
    if top is not None and delta > top:
        return (
            "plausible_max",
            f"{delta} kWh in {hours:.2f} h is more than the meter's maximum {limits.max_kw} kW "
            f"allows ({top:.2f} kWh with a margin of {limits.margin})",
        )
    recent = list(rates)[-limits.spike_history :]
    if len(recent) >= limits.spike_history and hours > 0 and delta > limits.spike_floor:
        typical = sum(recent, Decimal(0)) / len(recent)
        rate = delta / hours
        if rate > typical * limits.spike_factor:
            return (
                "spike",
                f"{rate:.3f} kWh/h is more than {limits.spike_factor} × the meter's typical "
                f"{typical:.3f} kWh/h over its last {len(recent)} intervals",
            )
    return None
