"""VEE tables: validation failures with their resolutions, and per-point contract capacities.

Declared on the shared metadata and created by migration ``0007_money``.  A failure row is keyed by
``(meter, time, rule)``; re-validating the same readings upserts the same rows (two head-end
instances write the same thing).  Values are exact decimal text.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Index,
    String,
    Table,
    Text,
    UniqueConstraint,
)

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

# Estimated intervals of an open gap (headend.vee.estimate, headend.prepay.estimates), created by
# migration ``0013_estimates``.  Kept apart from ``prepay_charges`` so actual charges are exactly
# what they would be without estimates; an estimate is trued up when an actual reading arrives.
vee_estimates = Table(
    "vee_estimates",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("point", String(64), nullable=False),
    Column("meter", String(32), nullable=False),
    Column("origin", UTCDateTime, nullable=False),  # the last validated reading it starts from
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("start_value", Num, nullable=False),  # the register: validated or estimated
    Column("end_value", Num, nullable=False),  # the estimated register value
    Column("multiplier", Num, nullable=False),
    Column("energy", Num, nullable=False),
    Column("rate", Num, nullable=False),  # register units an hour
    Column("method", String(32), nullable=False),
    Column("amount_micro", BigInteger, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("charged", Boolean, nullable=False),  # posted to the ledger (the policy allowed it)
    Column("state", String(16), nullable=False),  # active | trued_up
    Column("created_at", UTCDateTime, nullable=False),
    Column("trued_up_at", UTCDateTime, nullable=True),
    Column("actual_until", UTCDateTime, nullable=True),  # the actual reading that replaced it
    UniqueConstraint("point", "origin", "start", "end"),  # re-estimated after a newer reading
    Index("ix_vee_estimates_point", "point", "state", "start"),
    Index("ix_vee_estimates_account", "account", "state"),
)

VEE_TABLES = (vee_flags, vee_limits)
ESTIMATE_TABLES = (vee_estimates,)
