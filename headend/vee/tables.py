"""VEE tables: validation failures with their resolutions, and per-point contract capacities.

Declared on the shared metadata and created by migration ``0007_money``.  A failure row is keyed by
``(meter, time, rule)``; re-validating the same readings upserts the same rows (two head-end
instances write the same thing).  Values are exact decimal text.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text, UniqueConstraint

from headend.db.tables import RowId, metadata
from headend.db.types import UTCDateTime

Num = String(40)

vee_flags = Table(
    "vee_flags",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("meter", String(32), nullable=False),
    Column("point", String(64), nullable=False),
    Column("time", UTCDateTime, nullable=False),  # the reading's instant
    Column("value", Num, nullable=False),  # as read
    Column("rule", String(32), nullable=False),
    Column("detail", Text, nullable=False),
    Column("previous_time", UTCDateTime, nullable=True),  # the reference it was compared with
    Column("previous_value", Num, nullable=True),
    # open | accepted | corrected | rejected | cleared (passes the rules after a later decision)
    Column("state", String(16), nullable=False),
    Column("corrected_value", Num, nullable=True),
    Column("reason", Text, nullable=True),
    Column("resolved_by", String(64), nullable=True),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("meter", "time", "rule"),
    Index("ix_vee_flags_state", "state", "time"),
    Index("ix_vee_flags_point", "point", "time"),
)

vee_limits = Table(
    "vee_limits",
    metadata,
    Column("point", String(64), primary_key=True),
    Column("contract_kva", Num, nullable=True),  # 报装容量 (primary side)
    Column("max_kw", Num, nullable=True),  # an explicit maximum power (primary side)
    Column("set_by", String(64), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
)

VEE_TABLES = (vee_flags, vee_limits)
