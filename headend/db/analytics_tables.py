"""Analytics tables: stored results of the daily job, targets, inspections and the job's claims.

Days are ISO dates (``YYYY-MM-DD``) in the analytics zone; energies, rates and coverage are exact
decimal text (never floats).  Results are keyed so that recomputing a day upserts the same rows:
the job is idempotent, and two head-end instances computing the same day write the same thing.
"""

from __future__ import annotations

from sqlalchemy import Column, Index, Integer, String, Table, Text

from headend.db.tables import RowId, metadata
from headend.db.types import UTCDateTime

Day = String(10)
Num = String(40)

analytics_lineloss = Table(
    "analytics_lineloss",
    metadata,
    Column("area", String(64), primary_key=True),
    Column("period", String(8), primary_key=True),  # day | month
    Column("start", Day, primary_key=True),
    Column("end", Day, nullable=False),  # exclusive
    Column("supply", Num, nullable=True),
    Column("sales", Num, nullable=True),
    Column("loss", Num, nullable=True),
    Column("rate", Num, nullable=True),
    Column("coverage", Num, nullable=False),
    Column("points_total", Integer, nullable=False),
    Column("points_valid", Integer, nullable=False),
    Column("method", String(16), nullable=True),
    Column("flags", String(200), nullable=False, default=""),
    Column("target", Num, nullable=True),
    Column("detail", Text, nullable=False, default="{}"),  # points: energy, method, reason
    Column("computed_at", UTCDateTime, nullable=False),
    Index("ix_analytics_lineloss_period", "period", "start"),
)

analytics_suspects = Table(
    "analytics_suspects",
    metadata,
    Column("area", String(64), primary_key=True),
    Column("day", Day, primary_key=True),  # as of the end of this day
    Column("meter", String(32), primary_key=True),
    Column("point", String(64), nullable=False),
    Column("rank", Integer, nullable=False),
    Column("score", Num, nullable=False),
    Column("evidence", Text, nullable=False),  # JSON list of evidence
    Column("computed_at", UTCDateTime, nullable=False),
)

analytics_inspections = Table(
    "analytics_inspections",
    metadata,
    Column("id", RowId, primary_key=True, autoincrement=True),
    Column("meter", String(32), nullable=False),
    Column("point", String(64), nullable=False),
    Column("area", String(64), nullable=False),
    Column("at", UTCDateTime, nullable=False),
    Column("outcome", String(32), nullable=False),
    Column("note", String(2000), nullable=False, default=""),
    Column("inspected_by", String(100), nullable=False),
    Column("recorded_at", UTCDateTime, nullable=False),
    Index("ix_analytics_inspections_meter", "meter", "at"),
)

analytics_collection = Table(
    "analytics_collection",
    metadata,
    Column("scope", String(8), primary_key=True),  # area | gateway
    Column("key", String(64), primary_key=True),
    Column("day", Day, primary_key=True),  # freeze date
    Column("due", Integer, nullable=False),
    Column("first_sweep", Integer, nullable=False),
    Column("obtained", Integer, nullable=False),
    Column("rate_first", Num, nullable=True),
    Column("rate_obtained", Num, nullable=True),
    Column("online_rate", Num, nullable=True),
    Column("missing", Text, nullable=False, default="[]"),
    Column("computed_at", UTCDateTime, nullable=False),
)

analytics_quality = Table(
    "analytics_quality",
    metadata,
    Column("area", String(64), primary_key=True),
    Column("day", Day, primary_key=True),  # as of
    Column("meter", String(32), primary_key=True),
    Column("kind", String(16), primary_key=True),  # backwards | jump | stopped | failing
    Column("detail", Text, nullable=False, default="{}"),
    Column("computed_at", UTCDateTime, nullable=False),
)

analytics_targets = Table(
    "analytics_targets",
    metadata,
    Column("area", String(64), primary_key=True),
    Column("target", Num, nullable=False),  # loss-rate fraction, e.g. 0.06: the band's top
    Column("low", Num, nullable=True),  # the band's bottom (NULL: the configured default; 0008)
    Column("updated_by", String(100), nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)

analytics_runs = Table(
    "analytics_runs",
    metadata,
    Column("day", Day, primary_key=True),  # the job's day (one claim per day)
    Column("claimed_by", String(100), nullable=False),
    Column("claimed_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    Column("summary", Text, nullable=False, default="{}"),
)

ANALYTICS_TABLES = [
    analytics_lineloss,
    analytics_suspects,
    analytics_inspections,
    analytics_collection,
    analytics_quality,
    analytics_targets,
    analytics_runs,
]

# per meter and local day, the interval facts the suspects read (headend.analytics.aggregates;
# migration 0017): valid while the day's raw interval readings still number ``readings``
analytics_interval_days = Table(
    "analytics_interval_days",
    metadata,
    Column("meter", String(32), primary_key=True),
    Column("day", Day, primary_key=True),
    Column("zone", String(64), nullable=False),  # the day's zone and the interval step:
    Column("step_s", Integer, nullable=False),  # facts of another basis are recomputed
    Column("readings", Integer, nullable=False),  # raw rows counted (before 0019; now 0)
    Column("facts", Text, nullable=False),  # JSON, see aggregates.encode
    Column("computed_at", UTCDateTime, nullable=False),
    Index("ix_analytics_interval_days_day", "day"),  # invalidation by day (migration 0019)
)
