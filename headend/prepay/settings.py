"""``[prepay]`` of the head-end's TOML (carried in ``Settings.extra``), with cross-field checks.

Example::

    [prepay]
    currency = "CNY"                 # minor_places = 2, rounding = "ROUND_HALF_UP"
    balance_thresholds = ["50", "20"] # notices when the balance falls to or below each
    days_thresholds = [3, 1]          # notices when the forecast days of credit fall to each
    final_notice_balance = "0"        # the final notice (naming the disconnect time) at or below
    grace_hours = 24                  # final notice → earliest disconnect
    reconnect_threshold = "0"         # a top-up that lifts the balance above this reconnects
    reconnect_action = "relay_close_allowed"   # or "relay_close_direct"
    stale_hours = 6                   # no disconnect while any meter's newest reading is older
    action_max_attempts = 3           # commands failed on the meter before an operator decides
    quiet_hours = ["21:00", "08:00"]  # reminders wait until the end of quiet hours (local)
    bill_cutoff_hours = 72            # bill the month without its month-end freeze after this
    tier_year_start = "01-01"         # MM-DD: where a yearly tier (年阶梯) period starts
    [prepay.late_fees.residential]    # 电费违约金 per customer class (none when absent)
    rate = "0.001"                    # of the unpaid amount, per day
    start_days = 1                    # from the first day after the due date
"""

from __future__ import annotations

from datetime import time
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from headend.db.errors import ConfigError
from headend.prepay.money import MoneySettings


class LateFee(BaseModel):
    """电费违约金 of one customer class: ``rate`` of the unpaid amount a day, from the
    ``start_days``-th day after the due date (供电营业规则 art. 98: residential 1‰ a day)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    rate: Decimal = Field(gt=0, le=Decimal("0.01"))
    start_days: int = Field(default=1, ge=0, le=90)


class PrepaySettings(BaseModel):
    """Everything the prepayment jobs and API read from ``[prepay]``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    currency: str = Field(default="CNY", pattern=r"^[A-Z]{3}$")
    minor_places: int = Field(default=2, ge=0, le=4)
    rounding: str = "ROUND_HALF_UP"
    balance_thresholds: tuple[Decimal, ...] = (Decimal(50), Decimal(20))
    days_thresholds: tuple[int, ...] = (3, 1)
    final_notice_balance: Decimal = Decimal(0)
    grace_hours: float = Field(default=24, ge=0, le=24 * 30)
    reconnect_threshold: Decimal = Decimal(0)
    reconnect_action: Literal["relay_close_allowed", "relay_close_direct"] = "relay_close_allowed"
    stale_hours: float = Field(default=6, gt=0, le=24 * 7)
    quiet_hours: tuple[time, time] | None = (time(21, 0), time(8, 0))
    forecast_days: int = Field(default=7, ge=1, le=90)  # the consumption window forecasts use
    lookback_days: int = Field(default=62, ge=1, le=400)  # back-filled readings this old count
    notify_retries: int = Field(default=3, ge=0, le=20)
    notify_retry_seconds: float = Field(default=300, gt=0, le=86400)
    action_retry_minutes: float = Field(default=30, gt=0, le=24 * 60)
    action_max_attempts: int = Field(default=3, ge=1, le=50)  # failed commands, then escalate
    bill_due_days: int = Field(default=15, ge=0, le=90)
    bill_cutoff_hours: float = Field(default=72, ge=0, le=24 * 27)  # bill without the freeze
    late_fees: dict[str, LateFee] = Field(default_factory=dict)  # per customer class
    tier_year_start: str = Field(default="01-01", pattern=r"^(0[1-9]|1[0-2])-(0[1-9]|[12]\d)$")
    job_interval: float = Field(default=60, gt=0, le=3600)  # seconds between job passes
    command_valid_for: int = Field(default=3600, ge=60, le=86400)
    operator_urls: tuple[str, ...] = ()  # apprise URLs told about refused disconnects

    @model_validator(mode="after")
    def _consistent(self) -> PrepaySettings:
        MoneySettings(
            currency=self.currency, minor_places=self.minor_places, rounding=self.rounding
        )
        if list(self.balance_thresholds) != sorted(self.balance_thresholds, reverse=True):
            raise ValueError('balance_thresholds go from high to low, e.g. ["50", "20"]')
        if self.balance_thresholds and self.final_notice_balance >= min(self.balance_thresholds):
            raise ValueError("final_notice_balance must be below every balance threshold")
        if list(self.days_thresholds) != sorted(self.days_thresholds, reverse=True):
            raise ValueError("days_thresholds go from high to low, e.g. [3, 1]")
        if self.reconnect_threshold < self.final_notice_balance:
            raise ValueError("reconnect_threshold must not be below final_notice_balance")
        return self

    @property
    def year_start(self) -> tuple[int, int]:
        """(month, day) the tier year starts on (``tier_year_start``, MM-DD, day ≤ 29)."""
        month, day = self.tier_year_start.split("-")
        return int(month), int(day)

    @property
    def money(self) -> MoneySettings:
        return MoneySettings(
            currency=self.currency, minor_places=self.minor_places, rounding=self.rounding
        )


def prepay_settings(extra: dict[str, Any], source: object = None) -> PrepaySettings:
    """Parse ``[prepay]``; ``ConfigError`` naming the file, the key and the problem."""
    where = f"{source}: " if source else ""
    try:
        return PrepaySettings.model_validate(extra.get("prepay", {}))
    except ValidationError as exc:
        lines = [
            f"{where}prepay.{'.'.join(str(p) for p in e['loc']) or '(section)'}: {e['msg']}"
            for e in exc.errors()
        ]
        raise ConfigError("\n".join(lines)) from None
