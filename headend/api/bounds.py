"""Bounded types for the API's query parameters and request bodies, and the CSV download header.

Out-of-range input is a 422 with FastAPI's validation-error list naming the bound, never an
``OverflowError`` from the database driver or from date arithmetic deep in a service:

- ``RowId``: a keyset cursor (``after``), 0 … 2**63 − 1 (the databases' signed 64-bit ids);
- ``Day``: a calendar day from 1970-01-01 to 2199-12-31, so a service can step a few days (or a
  year of baselines) either side and turn a local midnight into UTC without leaving ``date``;
- ``Instant``: a time in the same span (time-zone rules stay where they belong: the endpoint).

Page sizes stay per endpoint (``Query(ge=1, le=…)``): their limits differ by resource.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from urllib.parse import quote

from pydantic import Field

MAX_ROW_ID = 2**63 - 1
FIRST_DAY = date(1970, 1, 1)
LAST_DAY = date(2199, 12, 31)
FIRST_INSTANT = datetime(1970, 1, 1, tzinfo=UTC)
LAST_INSTANT = datetime(2200, 1, 1, tzinfo=UTC)

RowId = Annotated[
    int,
    Field(ge=0, le=MAX_ROW_ID, description="rows with an id greater than this (keyset paging)"),
]
Day = Annotated[
    date,
    Field(
        ge=FIRST_DAY,
        le=LAST_DAY,
        description=f"a calendar day, {FIRST_DAY.isoformat()} … {LAST_DAY.isoformat()}",
    ),
]
Instant = Annotated[
    datetime,
    Field(
        ge=FIRST_INSTANT,
        le=LAST_INSTANT,
        description="a time with its UTC offset, 1970-01-01T00:00:00Z … 2200-01-01T00:00:00Z",
    ),
]


def attachment(filename: str) -> str:
    """A ``Content-Disposition`` value for any file name: an ASCII fallback and RFC 5987's
    ``filename*=UTF-8''…`` (an area id in Chinese cannot travel in a Latin-1 header)."""
    fallback = "".join(c if " " <= c <= "~" and c not in '"\\%' else "_" for c in filename).strip()
    encoded = quote(filename, safe="")
    return f"attachment; filename=\"{fallback or 'download'}\"; filename*=UTF-8''{encoded}"


__all__ = [
    "FIRST_DAY",
    "LAST_DAY",
    "MAX_ROW_ID",
    "Day",
    "Instant",
    "RowId",
    "attachment",
]
