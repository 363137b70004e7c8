"""Money as ``Decimal`` with explicit rounding rules.

Three precisions, each with one rule:

* **ledger precision** — the ledger stores every amount as an integer count of micro-units
  (10⁻⁶ of the currency unit, ``LEDGER_PLACES``), so sums are exact in SQL on SQLite and
  PostgreSQL alike.  A charge is price × energy, computed exactly and rounded once to the
  micro-unit (``ROUND_HALF_UP``).  Ninety-six charges a day rounded to the cent would drift by up
  to half a cent each; rounding to micro-units keeps a month's total equal to the month's exact
  cost to well under a cent.
* **minor unit** (``MoneySettings.minor_places``, 2 for CNY: 分) — what a customer sees: a balance,
  a bill line, a reminder.  Rounded with ``MoneySettings.rounding`` (``ROUND_HALF_UP`` by default).
  Every decision (reminder thresholds, owes, reconnect, arrears) is taken on the balance rounded
  to the minor unit, so what the customer is shown is what the rules act on; a zero is never
  shown signed.
* **payments** — top-ups, fees and adjustments are whole minor units; anything finer is refused.
"""

from __future__ import annotations

import decimal
from collections.abc import Mapping
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from headend.prepay.errors import MoneyError

LEDGER_PLACES = 6
MICRO = Decimal(1).scaleb(-LEDGER_PLACES)  # 0.000001
_MICRO_PER_UNIT = 10**LEDGER_PLACES
# One payment below 10⁹ units and a balance within ±10¹² units: ledger sums stay far inside a
# signed 64-bit integer (9.2 × 10¹⁸ micro-units), where SQLite's SUM() would raise.
MAX_PAYMENT = Decimal(10) ** 9
MAX_BALANCE_MICRO = 10**12 * _MICRO_PER_UNIT
ROUNDINGS = frozenset(
    {
        decimal.ROUND_HALF_UP,
        decimal.ROUND_HALF_EVEN,
        decimal.ROUND_HALF_DOWN,
        decimal.ROUND_UP,
        decimal.ROUND_DOWN,
        decimal.ROUND_CEILING,
        decimal.ROUND_FLOOR,
    }
)


class MoneySettings(BaseModel):
    """The ledger's currency and the customer-facing rounding rule."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    minor_places: int = Field(default=2, ge=0, le=4)
    rounding: str = ROUND_HALF_UP

    @field_validator("rounding")
    @classmethod
    def _rounding(cls, value: str) -> str:
        if value not in ROUNDINGS:
            raise ValueError(f"use one of {sorted(ROUNDINGS)}")
        return value

    @property
    def quantum(self) -> Decimal:
        return Decimal(1).scaleb(-self.minor_places)

    def round(self, amount: Decimal) -> Decimal:
        """``amount`` rounded to the minor unit by the configured rule (never "−0.00")."""
        rounded = amount.quantize(self.quantum, rounding=self.rounding)
        return rounded.copy_abs() if rounded.is_zero() else rounded

    def show(self, amount: Decimal) -> str:
        """``amount`` as customer-facing text, e.g. ``12.35 CNY``."""
        return f"{self.round(amount)} {self.currency}"


def parse(text: str | int | Decimal, what: str = "amount") -> Decimal:
    """A finite ``Decimal`` from text (never from float); ``MoneyError`` otherwise."""
    if isinstance(text, float):
        raise MoneyError(f"{what}: give money as a string or an integer, never a float")
    try:
        value = Decimal(text)
    except (InvalidOperation, TypeError, ValueError):
        raise MoneyError(f"{what}: {text!r} is not a number") from None
    if not value.is_finite():
        raise MoneyError(f"{what}: {text!r} is not a finite number")
    return value


def payment(text: str | int | Decimal, settings: MoneySettings, what: str = "amount") -> Decimal:
    """A positive amount in whole minor units (a top-up, a fee, an adjustment's size)."""
    value = parse(text, what)
    if value != value.quantize(settings.quantum):
        raise MoneyError(
            f"{what}: {value} has more than {settings.minor_places} decimal places "
            f"({settings.currency} is paid in units of {settings.quantum})"
        )
    if abs(value) >= MAX_PAYMENT:
        raise MoneyError(f"{what}: {value} is too large (at most {MAX_PAYMENT - settings.quantum})")
    return value


def check_balance(balance_micro: int, what: str = "amount") -> None:
    """``MoneyError`` when a balance would leave ±10¹² units (a runaway sum, not a payment)."""
    if abs(balance_micro) >= MAX_BALANCE_MICRO:
        raise MoneyError(
            f"{what}: the balance would reach {from_micro(balance_micro)}, out of range"
        )


def to_micro(amount: Decimal) -> int:
    """``amount`` in ledger micro-units, rounded half-up once."""
    return int(amount.quantize(MICRO, rounding=ROUND_HALF_UP).scaleb(LEDGER_PLACES))


def from_micro(micro: int) -> Decimal:
    """Ledger micro-units back to an exact ``Decimal``."""
    return Decimal(micro).scaleb(-LEDGER_PLACES).quantize(MICRO)


def amount_row(row: Mapping[Any, Any]) -> dict[str, Any]:
    """A row as a dict whose ``amount_micro`` becomes ``amount`` (money as a decimal string)."""
    item = dict(row)
    item["amount"] = str(from_micro(item.pop("amount_micro")))
    return item
