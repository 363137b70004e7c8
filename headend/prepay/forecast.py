"""Days of credit left, from the customer's recent consumption.

The daily spend is what the account was charged over the last ``window`` (charges whose interval
ended inside it, reversals netted out), divided by the days the charged intervals actually cover
(a new account with two days of data is not averaged over seven).  Days left = balance ÷ daily
spend, rounded down to a tenth; no spend means no forecast (None); a balance at or below zero
means zero days.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import ROUND_DOWN, Decimal

TENTH = Decimal("0.1")


def daily_spend(spent: Decimal, covered: timedelta) -> Decimal | None:
    """Average spend per day over ``covered`` (None when nothing is known)."""
    days = Decimal(covered.total_seconds()) / Decimal(86400)
    if days <= 0 or spent <= 0:
        return None
    return spent / days


def days_left(balance: Decimal, spent: Decimal, covered: timedelta) -> Decimal | None:
    """Days the balance lasts at the recent daily spend (None: no recent spend)."""
    if balance <= 0:
        return Decimal(0)
    per_day = daily_spend(spent, covered)
    if per_day is None:
        return None
    return (balance / per_day).quantize(TENTH, rounding=ROUND_DOWN)
