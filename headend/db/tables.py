"""Core tables: the meter archive, ingest bookkeeping, readings and events.

Archive tables (``gateways``, ``areas``, ``meters``) are effective-dated: a row is one version of
an object, valid over ``[valid_from, valid_to)``; ``valid_to`` NULL marks the current version.  A
change closes the current row and inserts the next one, so every past state stays answerable.

``readings`` is keyed for the API's queries: (meter, quantity, time, kind), where ``time`` is the
instant the value belongs to (the freeze time of a daily frozen value, else the gateway's reading
time).  ``value`` is the register value as exact text (Decimal string, integer counter or state);
multipliers are applied on the way out, never stored.  What is stored of each gateway stream is
the ``streams`` row: the gap-free run ``[base, upto]`` and the runs held beyond it (``ranges``),
written in the transaction that stores the records (``headend.ingest.streams``).
"""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.sql.expression import false
from sqlalchemy.types import BigInteger

from headend.db.types import UTCDateTime

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identity.
RowId = BigInteger().with_variant(Integer(), "sqlite")

schema_version = Table(
    "schema_version",
    metadata,
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("name", String(100), nullable=False),
    Column("applied_at", UTCDateTime, nullable=False),
)

# --- the meter archive (effective-dated) ------------------------------------------------------

gateways = Table(
    "gateways",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("location", String(200), nullable=False, default=""),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime, nullable=True),
    Column("changed_by", String(100), nullable=False, default=""),
    UniqueConstraint("id", "valid_from"),
    Index("ix_gateways_current", "id", "valid_to"),
)

areas = Table(
    "areas",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("id", String(64), nullable=False),
    Column("name", String(200), nullable=False, default=""),
    Column("gateway", String(64), nullable=True),
    Column("transformer", String(200), nullable=False, default=""),
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime, nullable=True),
    Column("changed_by", String(100), nullable=False, default=""),
    UniqueConstraint("id", "valid_from"),
    Index("ix_areas_current", "id", "valid_to"),
    Index("ix_areas_gateway", "gateway", "valid_to"),
)

meters = Table(
    "meters",
    metadata,
    Column("row_id", RowId, primary_key=True, autoincrement=True),
    Column("id", String(32), nullable=False),  # the id readings carry (contract MeterId)
    Column("point", String(64), nullable=False),  # metering point: survives a replacement
    Column("area", String(64), nullable=False),
    Column("bus", String(64), nullable=False),
    Column("protocol", String(16), nullable=False),
    Column("address", String(32), nullable=False),
    Column("model", String(100), nullable=True),
    Column("multiplier", String(40), nullable=False, default="1"),  # exact decimal text
    Column("role", String(16), nullable=False, default="customer"),
    Column("customer", String(200), nullable=False, default=""),
    Column("tariff_category", String(40), nullable=False, default=""),
    Column("keep_power", Boolean, nullable=False, default=False),
    Column("esam", Boolean, nullable=False, default=False, server_default=false()),  # ESAM flow
    Column("valid_from", UTCDateTime, nullable=False),
    Column("valid_to", UTCDateTime, nullable=True),
    Column("changed_by", String(100), nullable=False, default=""),
    # rooftop PV behind this meter: its export (reverse) register is read and counted (0008)
    Column("pv", Boolean, nullable=False, default=False, server_default=false()),
    UniqueConstraint("id", "valid_from"),
    Index("ix_meters_current", "id", "valid_to"),
    Index("ix_meters_area", "area", "valid_to"),
    Index("ix_meters_point", "point"),
)

meter_replacements = Table(
    "meter_replacements",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("point", String(64), nullable=False),
    Column("old_meter", String(32), nullable=False),
    Column("new_meter", String(32), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("old_final", Text, nullable=False),  # JSON {quantity: exact value}
    Column("new_start", Text, nullable=False),
    Column("reason", String(500), nullable=False, default=""),
    Column("recorded_by", String(100), nullable=False, default=""),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_meter_replacements_point", "point", "at"),
)

archive_versions = Table(
    "archive_versions",
    metadata,
    Column("gateway", String(64), primary_key=True),
    Column("version", Integer, primary_key=True, autoincrement=False),
    Column("issued", UTCDateTime, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("body", LargeBinary, nullable=False),  # the encoded ArchivePush
    Column("meters", Integer, nullable=False),
)

# --- what gateways report ---------------------------------------------------------------------

gateway_state = Table(
    "gateway_state",
    metadata,
    Column("gateway", String(64), primary_key=True),
    Column("online", Boolean, nullable=False),
    Column("since", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("software", String(100), nullable=True),
    Column("config_hash", String(100), nullable=True),
    Column("archive_version", Integer, nullable=True),
    Column("epoch", String(32), nullable=True),
    Column("clock_synced", Boolean, nullable=True),
    Column("health", Text, nullable=False, default="{}"),
)

gateway_sessions = Table(
    "gateway_sessions",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("gateway", String(64), nullable=False),
    Column("state", String(8), nullable=False),  # online | offline
    Column("at", UTCDateTime, nullable=False),  # the gateway's time, else when received
    Column("received", UTCDateTime, nullable=False),
    Column("software", String(100), nullable=True),
    Column("archive_version", Integer, nullable=True),
    Column("epoch", String(32), nullable=True),
    Index("ix_gateway_sessions_gateway", "gateway", "received"),
)

# --- ingest bookkeeping -----------------------------------------------------------------------

streams = Table(
    "streams",
    metadata,
    Column("gateway", String(64), primary_key=True),
    Column("epoch", String(32), primary_key=True),
    Column("base", BigInteger, nullable=False),  # first seq seen: earlier ones were acked before
    Column("upto", BigInteger, nullable=False),  # every seq in [base, upto] is stored
    Column("highest", BigInteger, nullable=False),
    # the runs held beyond ``upto`` (stored or announced lost), "first-last,…" (migration 0010)
    Column("ranges", Text, nullable=False, default="", server_default=""),
    Column("first_received", UTCDateTime, nullable=False),
    Column("last_received", UTCDateTime, nullable=False),
)

gaps = Table(
    "gaps",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("gateway", String(64), nullable=False),
    Column("epoch", String(32), nullable=False),
    Column("seq", BigInteger, nullable=False),  # the gap record's own seq
    Column("first", BigInteger, nullable=False),
    Column("last", BigInteger, nullable=False),
    Column("reason", String(200), nullable=False),
    Column("readings", Integer, nullable=False),
    Column("events", Integer, nullable=False),
    Column("received", UTCDateTime, nullable=False),
    UniqueConstraint("gateway", "epoch", "seq"),
)

dead_letters = Table(
    "dead_letters",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("topic", String(300), nullable=False),
    Column("gateway", String(64), nullable=True),
    Column("reason", String(1000), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("received", UTCDateTime, nullable=False),
    Index("ix_dead_letters_received", "received"),
)

unregistered = Table(
    "unregistered",
    metadata,
    Column("gateway", String(64), primary_key=True),
    Column("meter", String(32), primary_key=True),
    Column("first_seen", UTCDateTime, nullable=False),
    Column("last_seen", UTCDateTime, nullable=False),
    Column("records", BigInteger, nullable=False),
    Column("resolved_at", UTCDateTime, nullable=True),
    Column("resolved_by", String(100), nullable=True),
    Column("resolution", String(500), nullable=True),
)

mqtt_outbox = Table(
    "mqtt_outbox",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("topic", String(300), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("qos", Integer, nullable=False, default=1),
    Column("retain", Boolean, nullable=False, default=False),
    Column("created", UTCDateTime, nullable=False),
    Column("published_at", UTCDateTime, nullable=True),
    Index("ix_mqtt_outbox_pending", "published_at", "id"),
)

gateway_keys = Table(  # created by migration 0012_gateway_keys (not part of CORE_TABLES)
    "gateway_keys",
    metadata,
    Column("gateway", String(64), primary_key=True),
    Column("key_id", String(16), primary_key=True),  # protocols.uplink.envelope.key_id
    Column("public_key", LargeBinary, nullable=False),  # raw Ed25519, 32 bytes
    Column("registered", UTCDateTime, nullable=False),
    Column("revoked", UTCDateTime, nullable=True),  # NULL: the gateway signs with it now
    Column("registered_by", String(100), nullable=False, default=""),
)

# --- measurements -----------------------------------------------------------------------------

readings = Table(
    "readings",
    metadata,
    Column("meter", String(32), primary_key=True),
    Column("quantity", String(64), primary_key=True),
    Column("time", UTCDateTime, primary_key=True),
    Column("kind", String(16), primary_key=True),
    Column("value", String(64), nullable=False),
    Column("gateway", String(64), nullable=False),
    Column("gateway_time", UTCDateTime, nullable=False),
    Column("meter_time", UTCDateTime, nullable=True),
    Column("meter_time_raw", String(40), nullable=True),  # as the meter reported it, with offset
    Column("freeze_time", UTCDateTime, nullable=True),
    Column("flags", String(200), nullable=False, default=""),
    Column("command", String(64), nullable=True),
)

# What each write of readings covered (created by migration 0019, not part of CORE_TABLES): the
# earliest and latest reading time of one ``bulk.write_readings``.  Derived facts of a period
# (``analytics_interval_days``) are invalidated by the spans written since, which their consumer
# then deletes (headend.analytics.aggregates.invalidate).
reading_spans = Table(
    "reading_spans",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("t_min", UTCDateTime, nullable=False),
    Column("t_max", UTCDateTime, nullable=False),
)

events = Table(
    "events",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("key", String(300), nullable=False, unique=True),
    Column("gateway", String(64), nullable=False),
    Column("meter", String(32), nullable=False),  # empty for gateway-level events
    Column("type", String(40), nullable=False),
    Column("time", UTCDateTime, nullable=False),  # start, else detected, else received
    Column("start", UTCDateTime, nullable=True),
    Column("end", UTCDateTime, nullable=True),
    Column("detected", UTCDateTime, nullable=True),
    Column("details", Text, nullable=False, default="{}"),
    Column("received", UTCDateTime, nullable=False),
    Index("ix_events_meter_time", "meter", "time"),
    Index("ix_events_type_time", "type", "time"),
    Index("ix_events_time", "time"),
)

CORE_TABLES = [
    gateways,
    areas,
    meters,
    meter_replacements,
    archive_versions,
    gateway_state,
    gateway_sessions,
    streams,
    gaps,
    dead_letters,
    unregistered,
    mqtt_outbox,
    readings,
    events,
]
