"""Per-action parameters of a command request, validated before anything is stored.

``read``:      ``{"quantities": [names…]?, "frozen": {"from": date, "to": date}?}`` — current
               values (the gateway's polled set unless ``quantities`` names some), or daily
               frozen values for the date range (at most 62 days: what meters keep).
``backfill``:  ``{"from": date, "to": date}`` — daily frozen values the gateway missed.
Every other action takes no parameters.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from headend.db.errors import InvalidRequest
from protocols.quantities import is_known
from protocols.uplink import CommandAction

MAX_FROZEN_DAYS = 62


class _Params(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class DateRange(_Params):
    """An inclusive range of local dates."""

    start: date = Field(alias="from")
    end: date = Field(alias="to")

    @model_validator(mode="after")
    def _order(self) -> DateRange:
        if self.end < self.start:
            raise ValueError("'to' is before 'from'")
        if (self.end - self.start).days >= MAX_FROZEN_DAYS:
            raise ValueError(f"at most {MAX_FROZEN_DAYS} days (meters keep no more)")
        return self


class ReadParams(_Params):
    """``read``: current values, or frozen values over a date range."""

    quantities: tuple[str, ...] | None = Field(default=None, min_length=1, max_length=64)
    frozen: DateRange | None = None

    @field_validator("quantities")
    @classmethod
    def _known(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = [q for q in value or () if not is_known(q)]
        if unknown:
            raise ValueError(f"unknown quantities {unknown} (see protocols/quantities.py)")
        return value


class NoParams(_Params):
    """Actions without parameters."""


SCHEMAS: dict[CommandAction, type[_Params]] = {
    CommandAction.READ: ReadParams,
    CommandAction.BACKFILL: DateRange,
}


def validate(action: CommandAction, params: dict[str, Any] | None) -> dict[str, Any]:
    """The parameters in canonical JSON form; ``InvalidRequest`` naming the bad field."""
    schema = SCHEMAS.get(action, NoParams)
    try:
        parsed = schema.model_validate(params or {})
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "params"
        raise InvalidRequest(f"{action} params: {where}: {first['msg']}") from None
    return parsed.model_dump(mode="json", by_alias=True, exclude_none=True)
