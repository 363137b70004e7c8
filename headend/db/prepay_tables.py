"""Prepayment tables: tariffs, accounts and their metering points, charges, the ledger, payments,
reminders, notifications, disconnect/reconnect actions, postpaid bills and job leases.  Declared
on the shared metadata and created by migration ``0003_prepay``.

Money is stored as integer micro-units (``*_micro``: 10⁻⁶ of the currency unit; see
``headend.prepay.money``) so that sums are exact on both backends; energy as exact decimal text.
Idempotency lives in unique constraints: a charge per ``(point, start, end)``, a ledger entry per
``(kind, reference)``, a payment per external reference, a reminder per ``(account, cycle, key)``,
a notification per ``dedupe`` key.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from headend.db.tables import RowId, metadata
from headend.db.types import UTCDateTime

prepay_tariffs = Table(
    "prepay_tariffs",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("definition", JSON, nullable=False),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    UniqueConstraint("id", "valid_from"),
)

prepay_accounts = Table(
    "prepay_accounts",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(200), nullable=False, default=""),
    Column("mode", String(16), nullable=False),  # prepaid | postpaid
    Column("area", String(64), nullable=True),  # for area scoping (the points' area)
    Column("language", String(8), nullable=False, default="zh"),
    Column("contacts", JSON, nullable=False),  # apprise URLs
    Column("overdraft_micro", BigInteger, nullable=False, default=0),  # allowed overdraft ≥ 0
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("closed_at", UTCDateTime, nullable=True),
    # Reminder state machine (headend.prepay.reminders): stage, cycle, the planned disconnect.
    Column("stage", String(16), nullable=False, default="ok"),
    Column("cycle", Integer, nullable=False, default=0),
    Column("final_notice_at", UTCDateTime, nullable=True),
    Column("disconnect_at", UTCDateTime, nullable=True),
    Column("supply", String(16), nullable=False, default="on"),  # on | off | armed (reported)
    # The late-fee rule ([prepay.late_fees]) of the account: residential, commercial, …
    Column("customer_class", String(32), nullable=False, default="residential"),
    # The account's own tier allowance (多人口家庭): kWh per tier period added to every step.
    Column("tier_extra", String(40), nullable=False, default="0"),
)

prepay_account_points = Table(
    "prepay_account_points",
    metadata,
    Column("account", String(64), primary_key=True),
    Column("point", String(64), primary_key=True),
    Column("valid_from", UTCDateTime, primary_key=True),
    Column("valid_to", UTCDateTime, nullable=True),
    Column("tariff", String(64), nullable=True),  # None: the meter's tariff_category
    Column("split", JSON, nullable=True),
    Index("ix_prepay_account_points_point", "point", "valid_from"),
)

prepay_charges = Table(
    "prepay_charges",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("point", String(64), nullable=False),
    Column("meter", String(32), nullable=False),
    Column("start", UTCDateTime, nullable=False),
    Column("end", UTCDateTime, nullable=False),
    Column("start_value", String(64), nullable=False),
    Column("end_value", String(64), nullable=False),
    Column("multiplier", String(40), nullable=False),
    Column("energy", String(64), nullable=False),
    Column("amount_micro", BigInteger, nullable=False),
    Column("lines", JSON, nullable=False),
    Column("state", String(16), nullable=False, default="active"),  # active | reversed
    Column("created_at", UTCDateTime, nullable=False),
    Column("reversed_at", UTCDateTime, nullable=True),
    UniqueConstraint("point", "start", "end"),
    Index("ix_prepay_charges_point_end", "point", "end"),
    Index("ix_prepay_charges_account", "account", "start"),
)

prepay_ledger = Table(
    "prepay_ledger",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    # charge reversal topup adjustment fee late_fee payment_reversal
    Column("kind", String(16), nullable=False),
    Column("amount_micro", BigInteger, nullable=False),  # + credit, − debit
    Column("at", UTCDateTime, nullable=False),  # the business time (interval end, payment time)
    Column("reference", String(128), nullable=False),
    Column("reason", Text, nullable=True),
    Column("period_start", UTCDateTime, nullable=True),  # an adjustment's corrected period
    Column("period_end", UTCDateTime, nullable=True),
    Column("created_by", String(64), nullable=False),
    Column("created_at", UTCDateTime, nullable=False),
    Column("bill", String(80), nullable=True),  # the postpaid bill that carries this row
    UniqueConstraint("kind", "reference"),
    Index("ix_prepay_ledger_account", "account", "id"),
    Index("ix_prepay_ledger_unbilled", "account", "bill"),
)

prepay_payments = Table(
    "prepay_payments",
    metadata,
    Column("reference", String(128), primary_key=True),  # the payment's external reference
    Column("account", String(64), nullable=False),
    Column("amount_micro", BigInteger, nullable=False),
    Column("channel", String(64), nullable=False, default=""),
    Column("paid_at", UTCDateTime, nullable=False),  # when the payer paid (their system's time)
    Column("received_at", UTCDateTime, nullable=False),
    Column("state", String(16), nullable=False),  # credited | rejected | reversed (冲正)
    Column("reason", Text, nullable=True),
    Column("ledger_id", BigInteger, nullable=True),
    Column("received_by", String(64), nullable=False),
    Index("ix_prepay_payments_received", "received_at"),
)

prepay_reminders = Table(
    "prepay_reminders",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("cycle", Integer, nullable=False),
    Column("key", String(64), nullable=False),  # balance:50, days:3, final, arrears:<bill>
    Column("at", UTCDateTime, nullable=False),
    Column("detail", JSON, nullable=False),
    UniqueConstraint("account", "cycle", "key"),
)

notifications = Table(
    "notifications",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("dedupe", String(200), nullable=False, unique=True),
    Column("template", String(64), nullable=False),
    Column("language", String(8), nullable=False),
    Column("target", String(500), nullable=False),  # the apprise URL, password removed
    Column("url", Text, nullable=False),
    Column("title", Text, nullable=False),
    Column("body", Text, nullable=False),
    Column("state", String(16), nullable=False),  # pending | sent | failed
    Column("attempts", Integer, nullable=False, default=0),
    Column("not_before", UTCDateTime, nullable=False),  # quiet hours and retry back-off
    Column("last_error", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime, nullable=True),
    Index("ix_notifications_account", "account", "id"),
    Index("ix_notifications_due", "state", "not_before"),
)

prepay_actions = Table(
    "prepay_actions",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("account", String(64), nullable=False),
    Column("action", String(16), nullable=False),  # disconnect | reconnect
    Column("state", String(16), nullable=False),  # waiting | requested | done | failed | dropped
    Column("command_id", String(40), nullable=True),
    Column("attempts", Integer, nullable=False, default=0),
    Column("next_try", UTCDateTime, nullable=True),
    Column("rule", String(64), nullable=True),  # why it waits (a guard rule, stale_data, …)
    Column("message", Text, nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
    Column("history", JSON, nullable=False),  # every attempt: at, outcome, rule, message
    Index("ix_prepay_actions_open", "state", "next_try"),
    Index("ix_prepay_actions_account", "account", "id"),
)

prepay_bills = Table(
    "prepay_bills",
    metadata,
    Column("id", String(80), primary_key=True),  # <account>:<YYYY-MM>
    Column("account", String(64), nullable=False),
    Column("period", String(7), nullable=False),
    Column("period_start", UTCDateTime, nullable=False),
    Column("period_end", UTCDateTime, nullable=False),
    Column("energy", String(64), nullable=False),
    Column("amount_micro", BigInteger, nullable=False),  # rounded to the minor unit
    Column("lines", JSON, nullable=False),
    Column("issued_at", UTCDateTime, nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Index("ix_prepay_bills_account", "account", "period"),
)

prepay_leases = Table(
    "prepay_leases",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("holder", String(64), nullable=False),
    Column("until", UTCDateTime, nullable=False),
)

PREPAY_TABLES = (
    prepay_tariffs,
    prepay_accounts,
    prepay_account_points,
    prepay_charges,
    prepay_ledger,
    prepay_payments,
    prepay_reminders,
    notifications,
    prepay_actions,
    prepay_bills,
    prepay_leases,
)
