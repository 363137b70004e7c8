"""The operations tables: users, commands (with per-gateway dispatches and per-meter targets),
guard-rail switches and the hash-chained audit log.  Declared on the shared ``headend.db`` metadata
and created by migration ``0002_ops``.

Times are aware UTC (``UTCDateTime``); area scopes and command areas are JSON lists; the audit
row's ``detail`` is the canonical JSON text its hash covers.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
)

from headend.db import metadata
from headend.db.types import UTCDateTime

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("name", String(64), nullable=False, unique=True),
    Column("role", String(16), nullable=False),
    Column("areas", JSON, nullable=True),  # None: every area
    Column("password_hash", String(255), nullable=False),
    Column("token_version", Integer, nullable=False, default=0),  # bump to revoke tokens
    Column("disabled", Boolean, nullable=False, default=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("last_login_at", UTCDateTime, nullable=True),
    # The console's language (zh|en) and IANA time zone for this user (migration 0006).
    Column("language", String(8), nullable=False, default="zh", server_default="zh"),
    Column(
        "timezone",
        String(64),
        nullable=False,
        default="Asia/Shanghai",
        server_default="Asia/Shanghai",
    ),
)

commands = Table(
    "commands",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("action", String(32), nullable=False),
    Column("params", JSON, nullable=False),
    Column("state", String(24), nullable=False),
    Column("note", Text, nullable=True),  # the operator's reason
    Column("areas", JSON, nullable=False),  # sorted areas of the targets ("" = none)
    Column("meter_count", Integer, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("valid_until", UTCDateTime, nullable=False),
    Column("approval_rule", String(40), nullable=True),  # why approval is needed
    Column("approved_by", String(64), nullable=True),
    Column("approved_at", UTCDateTime, nullable=True),
    Column("cancelled_by", String(64), nullable=True),
    Column("cancelled_at", UTCDateTime, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("received_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("reason", Text, nullable=True),  # why it failed / expired / was cancelled
)
Index("ix_commands_state", commands.c.state)
Index("ix_commands_created", commands.c.created_at)

command_dispatches = Table(
    "command_dispatches",
    metadata,
    Column("id", String(64), primary_key=True),  # the contract Command.id
    Column("command_id", String(40), ForeignKey("commands.id"), nullable=False),
    Column("gateway", String(64), nullable=False),
    Column("state", String(24), nullable=False),
    Column("nonce", String(64), nullable=False),
    Column("claim", String(64), nullable=True),  # who is publishing it (SQLite claim token)
    Column("claimed_at", UTCDateTime, nullable=True),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("received_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("reason", Text, nullable=True),
)
Index("ix_dispatches_command", command_dispatches.c.command_id)
Index("ix_dispatches_state", command_dispatches.c.state)

command_targets = Table(
    "command_targets",
    metadata,
    Column("command_id", String(40), ForeignKey("commands.id"), primary_key=True),
    Column("meter", String(32), primary_key=True),
    Column("gateway", String(64), nullable=False),
    Column("area", String(64), nullable=True),
    Column("dispatch_id", String(64), nullable=False),
    Column("state", String(24), nullable=False),
    Column("at", UTCDateTime, nullable=True),
    Column("reason", Text, nullable=True),
    Column("detail", JSON, nullable=True),
)
Index("ix_targets_dispatch", command_targets.c.dispatch_id)

guard_switches = Table(
    "guard_switches",
    metadata,
    Column("name", String(32), primary_key=True),  # "pause"
    Column("on", Boolean, nullable=False),
    Column("reason", Text, nullable=True),
    Column("set_by", String(64), nullable=False),
    Column("set_at", UTCDateTime, nullable=False),
)

extreme_weather_days = Table(
    "extreme_weather_days",
    metadata,
    Column("day", Date, primary_key=True),  # the utility's local date
    Column("reason", Text, nullable=True),
    Column("declared_by", String(64), nullable=False),
    Column("declared_at", UTCDateTime, nullable=False),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),  # gap-free, assigned on append
    Column("at", UTCDateTime, nullable=False),
    Column("actor", String(64), nullable=False),
    Column("action", String(64), nullable=False),
    Column("subject", String(200), nullable=False),
    Column("detail", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
)
Index("ix_audit_action", audit_log.c.action)
Index("ix_audit_at", audit_log.c.at)

# One row (id 1): the chain's head.  Appends lock it first, which serialises them across
# processes (a row lock on PostgreSQL, the write lock on SQLite).
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("last_id", Integer, nullable=False),
    Column("last_hash", String(64), nullable=False),
)

esam_steps = Table(  # created by migration 0011_esam (not part of 0002's OPS_TABLES)
    "esam_steps",
    metadata,
    Column("id", String(64), primary_key=True),  # the step's contract Command.id
    Column("dispatch_id", String(64), nullable=False),
    Column("command_id", String(40), nullable=False),
    Column("meter", String(32), nullable=False),
    Column("gateway", String(64), nullable=False),
    Column("kind", String(16), nullable=False),  # authenticate | control | write
    Column("attempt", Integer, nullable=False),  # authentications so far for this meter
    Column("session", String(32), nullable=False),
    Column("state", String(24), nullable=False),  # approved | sent | executed | failed
    Column("params", JSON, nullable=False),  # the contract step (never a key)
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("session_until", UTCDateTime, nullable=True),
    Column("reason", Text, nullable=True),
    Column("detail", JSON, nullable=True),
)
Index("ix_esam_steps_target", esam_steps.c.dispatch_id, esam_steps.c.meter)
Index("ix_esam_steps_state", esam_steps.c.state)

OPS_TABLES = (
    users,
    commands,
    command_dispatches,
    command_targets,
    guard_switches,
    extreme_weather_days,
    audit_log,
    audit_head,
)
