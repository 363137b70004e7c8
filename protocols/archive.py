"""The meter archive as a CSV file: what ``taiqu field search`` writes and the head-end imports.

One header row naming columns from ``COLUMNS`` (order free; ``REQUIRED`` ones must be there),
then one meter a row.  ``keep_power``, ``pv`` and ``esam`` are true/false.  The gateway writes
such files and the head-end reads and exports them; neither imports the other, both import this.
"""

from __future__ import annotations

from typing import Final

COLUMNS: Final = (
    "id",
    "point",
    "area",
    "bus",
    "protocol",
    "address",
    "model",
    "multiplier",
    "role",
    "customer",
    "tariff_category",
    "keep_power",
    "pv",
    "esam",
)
REQUIRED: Final = ("id", "area", "bus", "address")
FLAGS: Final = ("keep_power", "pv", "esam")

__all__ = ["COLUMNS", "FLAGS", "REQUIRED"]
