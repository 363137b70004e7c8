"""Tariffs: definitions (flat, time-of-use, tiered), effective dating, splits, and pricing.

A tariff has an id (the meter archive's ``tariff_category`` names it) and versions, each in force
from its ``valid_from`` until the next version's: a change applies from its effective date only.
Definitions are JSON objects discriminated by ``kind``::

    {"kind": "flat",   "price": "0.5283"}
    {"kind": "tou",    "prices": {"1": "1.2", "2": "0.9", "3": "0.6", "4": "0.3"},
                       "periods": [{"start": "00:00", "end": "08:00", "slot": 4}, …]}
    {"kind": "tiered", "period": "monthly" | "yearly",
                       "steps": [{"upto": "200", "price": "0.5283"},
                                 {"upto": "400", "price": "0.5783"},
                                 {"upto": null,  "price": "0.8283"}]}

Time-of-use slots are the meter's tariff registers 1–4 (sharp 尖 / peak 峰 / flat 平 / valley 谷).
A time-of-use tariff charges from the interval's per-slot register deltas when the meter has them;
otherwise it applies its local time-of-day ``periods`` (which cover the day exactly once) to the
interval, sharing the energy out in proportion to time.  A tiered tariff prices each kWh by the
consumption of the metering point in the tariff's period (local calendar month or year) so far.

A metering point may split its energy (定比/定量): ``{"kind": "ratio", "parts": [{"tariff": "C",
"ratio": "0.3"}]}`` sends 30 % to tariff C; ``{"kind": "quantity", "parts": [{"tariff": "C",
"quantity": "100"}]}`` sends the first 100 kWh of each local month to C; the rest goes to the
point's own tariff.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, time
from decimal import ROUND_DOWN, Decimal
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from headend.prepay.errors import TariffError

SLOTS = {1: "sharp", 2: "peak", 3: "flat", 4: "valley"}
ENERGY = Decimal("0.0001")  # kWh: energy shared out in proportion is rounded to this
DAY = 24 * 3600


class _Def(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


Price = Annotated[Decimal, Field(ge=0, le=1000, max_digits=12, decimal_places=6)]


class FlatTariff(_Def):
    """One price per kWh."""

    kind: Literal["flat"] = "flat"
    price: Price


class TouPeriod(_Def):
    """A local time-of-day range ``[start, end)`` charged at ``slot``'s price; end 00:00 = 24:00."""

    start: time
    end: time
    slot: int = Field(ge=1, le=4)

    def seconds(self) -> tuple[int, int]:
        s = self.start.hour * 3600 + self.start.minute * 60 + self.start.second
        e = self.end.hour * 3600 + self.end.minute * 60 + self.end.second
        return s, (e if e > s else e + DAY)


class TouTariff(_Def):
    """Prices per slot (1 sharp, 2 peak, 3 flat, 4 valley) and the day's periods."""

    kind: Literal["tou"] = "tou"
    prices: dict[int, Price]
    periods: tuple[TouPeriod, ...] = Field(min_length=1, max_length=48)

    @model_validator(mode="after")
    def _cover_the_day(self) -> TouTariff:
        bad = sorted(k for k in self.prices if k not in SLOTS)
        if bad:
            raise ValueError(f"prices: slots are 1-4 (sharp, peak, flat, valley), not {bad}")
        missing = sorted({p.slot for p in self.periods} - set(self.prices))
        if missing:
            raise ValueError(f"periods use slots {missing} that have no price")
        covered = [0] * (DAY // 60)
        for p in self.periods:
            s, e = p.seconds()
            if s % 60 or e % 60:
                raise ValueError("periods start and end on whole minutes")
            for minute in range(s // 60, e // 60):
                covered[minute % len(covered)] += 1
        if any(c != 1 for c in covered):
            first = next(i for i, c in enumerate(covered) if c != 1)
            what = "uncovered" if covered[first] == 0 else "covered twice"
            raise ValueError(
                f"periods must cover the day exactly once; {first // 60:02d}:"
                f"{first % 60:02d} is {what}"
            )
        return self

    def slot_at(self, local_seconds: int) -> int:
        """The slot in force ``local_seconds`` after local midnight."""
        for p in self.periods:
            s, e = p.seconds()
            if s <= local_seconds < e or s <= local_seconds + DAY < e:
                return p.slot
        raise AssertionError("periods cover the day")  # guaranteed by the validator


class Step(_Def):
    """Consumption up to ``upto`` kWh in the period (None: no upper bound) at ``price``."""

    upto: Decimal | None = Field(default=None, gt=0)
    price: Price


class TieredTariff(_Def):
    """Price steps by the metering point's consumption in the local month or year so far."""

    kind: Literal["tiered"] = "tiered"
    period: Literal["monthly", "yearly"] = "monthly"
    steps: tuple[Step, ...] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _ascending(self) -> TieredTariff:
        bounds = [s.upto for s in self.steps]
        if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
            raise ValueError("every step but the last has an 'upto'; the last has none")
        numbers = [b for b in bounds if b is not None]
        if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
            raise ValueError("step bounds must increase")
        return self


TariffDef = Annotated[FlatTariff | TouTariff | TieredTariff, Field(discriminator="kind")]
_DEF = TypeAdapter(TariffDef)


class SplitPart(_Def):
    """One share of a split: a ratio of every interval, or a fixed quantity per local month."""

    tariff: str = Field(min_length=1, max_length=64)
    ratio: Decimal | None = Field(default=None, gt=0, lt=1)
    quantity: Decimal | None = Field(default=None, gt=0)


class Split(_Def):
    """定比 (``ratio``) or 定量 (``quantity``): shares sent to other tariffs; the rest stays."""

    kind: Literal["ratio", "quantity"]
    parts: tuple[SplitPart, ...] = Field(min_length=1, max_length=8)

    @model_validator(mode="after")
    def _consistent(self) -> Split:
        for part in self.parts:
            if (part.ratio is None) == (part.quantity is None) or (
                (part.ratio is None) != (self.kind == "quantity")
            ):
                raise ValueError(f"a {self.kind} split gives each part a {self.kind} only")
        if self.kind == "ratio" and sum(p.ratio or 0 for p in self.parts) >= 1:
            raise ValueError("ratios must add up to less than 1 (the rest is the main tariff)")
        return self


def _errors(exc: ValidationError, what: str) -> TariffError:
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first["loc"]) or what
    return TariffError(f"{what}: {where}: {first['msg']}")


def parse_definition(raw: Mapping[str, Any] | str) -> FlatTariff | TouTariff | TieredTariff:
    """A tariff definition from a JSON object or text; ``TariffError`` naming the field."""
    try:
        if isinstance(raw, str):
            return _DEF.validate_json(raw)
        return _DEF.validate_python(raw)
    except ValidationError as exc:
        raise _errors(exc, "tariff") from None


def parse_split(raw: Mapping[str, Any] | str | None) -> Split | None:
    """A split from a JSON object or text (None: no split)."""
    if raw is None or raw == "" or raw == "null":
        return None
    try:
        if isinstance(raw, str):
            return Split.model_validate_json(raw)
        return Split.model_validate(raw)
    except ValidationError as exc:
        raise _errors(exc, "split") from None


@dataclass(frozen=True)
class TariffVersion:
    """One version of a tariff, in force from ``valid_from``."""

    tariff: str
    valid_from: datetime
    definition: FlatTariff | TouTariff | TieredTariff


class TariffBook:
    """Every version of every tariff; answers "which definition was in force at t"."""

    def __init__(self, versions: Iterable[TariffVersion]) -> None:
        self._by_id: dict[str, list[TariffVersion]] = {}
        for v in sorted(versions, key=lambda v: (v.tariff, v.valid_from)):
            self._by_id.setdefault(v.tariff, []).append(v)

    def __contains__(self, tariff: str) -> bool:
        return tariff in self._by_id

    def versions(self, tariff: str) -> list[TariffVersion]:
        """Every version of ``tariff``, oldest first."""
        return list(self._by_id.get(tariff, ()))

    def at(self, tariff: str, t: datetime) -> TariffVersion:
        """The version of ``tariff`` in force at ``t``; ``TariffError`` when there is none."""
        found = None
        for v in self._by_id.get(tariff, ()):
            if v.valid_from <= t:
                found = v
        if found is None:
            raise TariffError(f"no version of tariff {tariff!r} is in force at {t.isoformat()}")
        return found

    def changes(self, tariff: str, start: datetime, end: datetime) -> list[datetime]:
        """Instants in ``(start, end)`` where ``tariff`` changes version."""
        return [v.valid_from for v in self._by_id.get(tariff, ()) if start < v.valid_from < end]


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
    """Local period boundaries of ``tariff`` strictly inside ``(start, end)``."""
    from datetime import timedelta

    starts = sorted({p.seconds()[0] % DAY for p in tariff.periods})
    found: list[datetime] = []
    day = start.astimezone(zone).date()
    last = end.astimezone(zone).date()
    while day <= last:
        midnight = datetime.combine(day, time(0), zone)
        for s in starts:
            t = midnight + timedelta(seconds=s)
            if start < t < end:
                found.append(t)
        day += timedelta(days=1)
    return sorted(found)


def price(
    tariff_id: str,
    definition: FlatTariff | TouTariff | TieredTariff,
    piece: Piece,
    used_before: Decimal,
    zone: Any,
) -> list[Line]:
    """Price ``piece`` (inside one tariff version and one tier period) under ``definition``.

    ``used_before`` is the consumption already charged under this tariff in the tier period.
    """
    if isinstance(definition, FlatTariff):
        return [Line(tariff_id, "flat", piece.energy, definition.price)]
    if isinstance(definition, TouTariff):
        if piece.registers is not None:
            return [
                Line(tariff_id, SLOTS[k], e, definition.prices.get(k, Decimal(0)))
                for k, e in sorted(piece.registers.items())
                if e
            ]
        lines: dict[int, Decimal] = {}
        for sub in cut(piece, tou_boundaries(definition, piece.start, piece.end, zone)):
            local = sub.start.astimezone(zone)
            secs = local.hour * 3600 + local.minute * 60 + local.second
            slot = definition.slot_at(secs)
            lines[slot] = lines.get(slot, Decimal(0)) + sub.energy
        return [
            Line(tariff_id, SLOTS[k], e, definition.prices[k]) for k, e in sorted(lines.items())
        ]
    out: list[Line] = []
    lower = Decimal(0)
    top_used = used_before + piece.energy
    for n, step in enumerate(definition.steps, start=1):
        a = max(used_before, lower)
        b = top_used if step.upto is None else min(top_used, step.upto)
        if b > a:
            out.append(Line(tariff_id, f"step{n}", b - a, definition.steps[n - 1].price))
        if step.upto is not None:
            lower = step.upto
    return out


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
