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
    {"kind": "tou_tiered", "prices": …, "periods": …, "period": "monthly" | "yearly",
                       "steps": [{"upto": "200", "price": "0"},      # surcharge per kWh
                                 {"upto": "400", "price": "0.05"},
                                 {"upto": null,  "price": "0.30"}]}

A time-of-use definition may add ``seasons`` (months with other periods, e.g. a summer critical
peak), ``holidays`` (local dates) with ``holiday_periods``, and ``flat_from_total`` (平 = 总 − 尖 −
峰 − 谷: the flat slot's energy is the total's delta minus the other registers' deltas, so the
lines add up to the energy recorded).  Pricing is in ``headend.prepay.pricing``.

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
from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any, Literal, Self

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


def _cover(periods: Sequence[TouPeriod], prices: Mapping[int, Decimal], what: str) -> None:
    missing = sorted({p.slot for p in periods} - set(prices))
    if missing:
        raise ValueError(f"{what} use slots {missing} that have no price")
    covered = [0] * (DAY // 60)
    for p in periods:
        s, e = p.seconds()
        if s % 60 or e % 60:
            raise ValueError(f"{what} start and end on whole minutes")
        for minute in range(s // 60, e // 60):
            covered[minute % len(covered)] += 1
    if any(c != 1 for c in covered):
        first = next(i for i, c in enumerate(covered) if c != 1)
        state = "uncovered" if covered[first] == 0 else "covered twice"
        raise ValueError(
            f"{what} must cover the day exactly once; {first // 60:02d}:{first % 60:02d} is {state}"
        )


class Season(_Def):
    """Other periods for some months of every year (e.g. a summer critical peak, 尖峰)."""

    months: tuple[int, ...] = Field(min_length=1, max_length=12)
    periods: tuple[TouPeriod, ...] = Field(min_length=1, max_length=48)

    @model_validator(mode="after")
    def _months(self) -> Season:
        if any(not 1 <= m <= 12 for m in self.months) or len(set(self.months)) != len(self.months):
            raise ValueError("months are distinct numbers 1-12")
        return self


class TouTariff(_Def):
    """Prices per slot (1 sharp, 2 peak, 3 flat, 4 valley) and the day's periods; ``seasons``
    replace the periods in their months, ``holidays`` (local dates) use ``holiday_periods``;
    ``flat_from_total``: 平 = 总 − 尖 − 峰 − 谷 when the meter's registers are used."""

    kind: Literal["tou"] = "tou"
    prices: dict[int, Price]
    periods: tuple[TouPeriod, ...] = Field(min_length=1, max_length=48)
    seasons: tuple[Season, ...] = Field(default=(), max_length=12)
    holidays: tuple[date, ...] = Field(default=(), max_length=400)
    holiday_periods: tuple[TouPeriod, ...] = Field(default=(), max_length=48)
    flat_from_total: bool = False

    @model_validator(mode="after")
    def _cover_the_day(self) -> Self:
        bad = sorted(k for k in self.prices if k not in SLOTS)
        if bad:
            raise ValueError(f"prices: slots are 1-4 (sharp, peak, flat, valley), not {bad}")
        _cover(self.periods, self.prices, "periods")
        months = [m for season in self.seasons for m in season.months]
        if len(set(months)) != len(months):
            raise ValueError("seasons: a month belongs to one season at most")
        for n, season in enumerate(self.seasons):
            _cover(season.periods, self.prices, f"seasons.{n}.periods")
        if self.holidays and not self.holiday_periods:
            raise ValueError("holidays need holiday_periods")
        if self.holiday_periods:
            _cover(self.holiday_periods, self.prices, "holiday_periods")
        return self

    def periods_on(self, day: date) -> tuple[TouPeriod, ...]:
        """The periods in force on a local date (holiday, else season, else the default)."""
        if day in self.holidays:
            return self.holiday_periods
        for season in self.seasons:
            if day.month in season.months:
                return season.periods
        return self.periods

    def slot_at(self, local_seconds: int, day: date | None = None) -> int:
        """The slot in force ``local_seconds`` after local midnight (of ``day``, when given)."""
        for p in self.periods if day is None else self.periods_on(day):
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
        _check_steps(self.steps)
        return self


def _check_steps(steps: Sequence[Step]) -> None:
    bounds = [s.upto for s in steps]
    if bounds[-1] is not None or any(b is None for b in bounds[:-1]):
        raise ValueError("every step but the last has an 'upto'; the last has none")
    numbers = [b for b in bounds if b is not None]
    if numbers != sorted(numbers) or len(set(numbers)) != len(numbers):
        raise ValueError("step bounds must increase")


class TouTieredTariff(TouTariff):
    """Time-of-use base prices plus a tier surcharge on the total (居民分时 + 阶梯): ``steps``
    bound the account's total energy in the period, each step's ``price`` is the surcharge per
    kWh added to the time-of-use price (0 for the first step, as a rule)."""

    kind: Literal["tou_tiered"] = "tou_tiered"  # type: ignore[assignment]
    period: Literal["monthly", "yearly"] = "monthly"
    steps: tuple[Step, ...] = Field(min_length=1, max_length=10)

    @model_validator(mode="after")
    def _ascending_steps(self) -> Self:
        _check_steps(self.steps)
        return self


def is_tiered(definition: object) -> bool:
    """Whether a definition counts energy into tier periods (tiered or TOU with tiers)."""
    return isinstance(definition, TieredTariff | TouTieredTariff)


TariffDef = Annotated[
    FlatTariff | TouTariff | TieredTariff | TouTieredTariff, Field(discriminator="kind")
]
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


Definition = FlatTariff | TouTariff | TieredTariff | TouTieredTariff


def parse_definition(raw: Mapping[str, Any] | str) -> Definition:
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
    definition: Definition


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
