"""The gateway's local SQLite store: outbox of numbered records, acknowledgement, disk budget.

See ``gateway.store.store`` for the life of a record (``gateway.store.records`` for the values
it hands out), ``gateway.store.schema`` for the file and its durability settings,
``gateway.store.budget`` for what is sacrificed when the disk budget runs out, and
docs/gateway-store.md for the guarantees and the sizing.
"""

from gateway.store.store import (
    DEFAULT_BUDGET_BYTES,
    AckOutcome,
    Store,
    StoredRecord,
    StoreStats,
)

__all__ = ["DEFAULT_BUDGET_BYTES", "AckOutcome", "Store", "StoreStats", "StoredRecord"]
